// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_list - unlinking a list entry twice.
 *
 * list_del() leaves LIST_POISON1/2 in the removed entry. With CONFIG_DEBUG_LIST
 * (and, from 6.6, CONFIG_LIST_HARDENED) the second list_del() of the same
 * entry is caught by the list checks ("list_del corruption, ...->next is
 * LIST_POISON1"), and CONFIG_BUG_ON_DATA_CORRUPTION turns the report into a
 * BUG in lib/list_debug.c. The checker fired; crashlab_forget is to blame.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

struct crashlab_node {
	struct list_head link;
	int key;
};

static LIST_HEAD(crashlab_nodes);

/* Removes a node from the list: called twice for the same node. */
static noinline __noclone void crashlab_forget(struct crashlab_node *node)
{
	list_del(&node->link); /* KDX-CRASH-LINE */
	barrier();
	pr_info("crashlab_list: forgot node %d\n", node->key);
}

static int __init crashlab_list_init(void)
{
	struct crashlab_node *node, *tmp;
	int i;

	for (i = 0; i < 3; i++) {
		node = kmalloc(sizeof(*node), GFP_KERNEL);
		if (!node)
			break;
		node->key = i;
		list_add_tail(&node->link, &crashlab_nodes);
	}
	node = list_first_entry(&crashlab_nodes, struct crashlab_node, link);
	crashlab_forget(node);
	crashlab_forget(node);
	/* Only reached if the list checks did not stop the kernel. */
	list_for_each_entry_safe(node, tmp, &crashlab_nodes, link) {
		list_del(&node->link);
		kfree(node);
	}
	return -EINVAL;
}
module_init(crashlab_list_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: list corruption caught by the list checks");

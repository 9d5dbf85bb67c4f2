// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_gpf - following a stale list pointer into a poison value.
 *
 * It demonstrates a general protection fault on a non-canonical address:
 * list_del() leaves LIST_POISON1 (0xdead000000000100 on x86-64) in the removed
 * entry's next pointer, and code that keeps walking from the removed entry
 * loads from 0xdead000000000100 + offsetof(value). That address is
 * non-canonical, so the CPU raises #GP (not a page fault) and the kernel
 * prints "general protection fault, probably for non-canonical address ...".
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

struct crashlab_entry {
	struct list_head list;
	int value;
};

static LIST_HEAD(crashlab_list);

/*
 * Returns the value of the entry after @entry. The bug is the caller's: it
 * passes an entry that was already unlinked. noinline and __noclone keep the
 * function a real frame named crashlab_walk.
 */
static noinline __noclone int crashlab_walk(struct crashlab_entry *entry)
{
	struct crashlab_entry *next = list_next_entry(entry, list);

	return next->value; /* KDX-CRASH-LINE */
}

static void crashlab_free_all(void)
{
	struct crashlab_entry *entry, *tmp;

	list_for_each_entry_safe(entry, tmp, &crashlab_list, list) {
		list_del(&entry->list);
		kfree(entry);
	}
}

static int __init crashlab_gpf_init(void)
{
	struct crashlab_entry *entry, *victim;
	int i, value;

	for (i = 0; i < 4; i++) {
		entry = kmalloc(sizeof(*entry), GFP_KERNEL);
		if (!entry) {
			crashlab_free_all();
			return -ENOMEM;
		}
		entry->value = i * 10;
		list_add_tail(&entry->list, &crashlab_list);
	}

	/* Unlink the second entry, then keep using it as if it were still linked. */
	victim = list_next_entry(list_first_entry(&crashlab_list, struct crashlab_entry, list),
				 list);
	list_del(&victim->list);
	pr_info("crashlab_gpf: removed entry %d, now reading its successor\n", victim->value);
	value = crashlab_walk(victim);

	/* Only reached if the poisoned load did not fault. */
	pr_info("crashlab_gpf: successor value %d\n", value);
	kfree(victim);
	crashlab_free_all();
	return -EINVAL;
}
module_init(crashlab_gpf_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: general protection fault through LIST_POISON1");

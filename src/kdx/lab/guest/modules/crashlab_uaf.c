// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_uaf - reading through a pointer member of a freed slab object.
 *
 * The module keeps its objects in a cache of its own, crashlab_uaf, which the
 * scenario boots with slub_debug=FZPU,crashlab_uaf: freeing an object fills it
 * with POISON_FREE (0x6b) and SLUB records who allocated and who freed it. The
 * bug is a release followed by a use through a stale pointer: the object's
 * "peer" member now reads 0x6b6b6b6b6b6b6b6b, and loading peer->value from
 * that non-canonical address raises a general protection fault.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

struct crashlab_peer {
	unsigned long flags;
	int value;
};

struct crashlab_item {
	int id;
	char name[20];
	struct crashlab_peer *peer;
	unsigned long generation;
};

static struct kmem_cache *crashlab_cache;
static struct crashlab_peer crashlab_the_peer = { .value = 42 };

/* Allocates one item; noinline so SLUB's allocation track names this function. */
static noinline __noclone struct crashlab_item *crashlab_item_new(int id)
{
	struct crashlab_item *item = kmem_cache_alloc(crashlab_cache, GFP_KERNEL);

	if (item) {
		item->id = id;
		snprintf(item->name, sizeof(item->name), "item-%d", id);
		item->peer = &crashlab_the_peer;
		item->generation = 1;
	}
	return item;
}

/* Drops an item; the free track names this function. */
static noinline __noclone void crashlab_item_release(struct crashlab_item *item)
{
	kmem_cache_free(crashlab_cache, item);
	barrier();
}

/* Reads the item's peer value: called with an item that was already released. */
static noinline __noclone int crashlab_item_peer_value(struct crashlab_item *item)
{
	return item->peer->value; /* KDX-CRASH-LINE */
}

static int __init crashlab_uaf_init(void)
{
	struct crashlab_item *keep, *victim;
	int value;

	crashlab_cache = kmem_cache_create("crashlab_uaf", sizeof(struct crashlab_item), 0,
					   0, NULL);
	if (!crashlab_cache)
		return -ENOMEM;
	/* A live neighbour keeps the slab from being emptied and discarded. */
	keep = crashlab_item_new(1);
	victim = crashlab_item_new(2);
	if (!keep || !victim)
		goto out;
	crashlab_item_release(victim);
	pr_info("crashlab_uaf: released item 2, now reading its peer\n");
	value = crashlab_item_peer_value(victim);
	/* Only reached if the poisoned load did not fault. */
	pr_info("crashlab_uaf: peer value %d\n", value);
	victim = NULL;
out:
	if (victim)
		kmem_cache_free(crashlab_cache, victim);
	if (keep)
		kmem_cache_free(crashlab_cache, keep);
	kmem_cache_destroy(crashlab_cache);
	return -EINVAL;
}
module_init(crashlab_uaf_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: use-after-free of a poisoned slab object");

// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_dfree - freeing one kmalloc object twice.
 *
 * With CONFIG_SLAB_FREELIST_HARDENED (Debian's kernels have it), SLUB refuses
 * to link an object onto a freelist whose head is that same object: the
 * second kfree() of an object just freed hits BUG_ON(object == fp) in
 * set_freepointer(), "kernel BUG at mm/slub.c". The BUG fires inside kfree(),
 * but the bug is the caller's: crashlab_drop_twice frees the buffer twice.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

struct crashlab_buffer {
	int id;
	char data[40];
};

/* Releases a buffer, then (the bug) releases it again on an "error path". */
static noinline __noclone int crashlab_drop_twice(struct crashlab_buffer *buf)
{
	int id = buf->id;

	kfree(buf);
	barrier();
	kfree(buf); /* KDX-CRASH-LINE */
	/* Keeps the second kfree() a call, not a tail jump that would hide this frame. */
	pr_info("crashlab_dfree: buffer %d freed twice\n", id);
	return id;
}

static int __init crashlab_dfree_init(void)
{
	struct crashlab_buffer *buf = kmalloc(sizeof(*buf), GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	buf->id = 7;
	crashlab_drop_twice(buf);
	return -EINVAL;
}
module_init(crashlab_dfree_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: double kfree() caught by the hardened freelist");

// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_refcount - dropping a reference that was never taken.
 *
 * refcount_t saturates instead of wrapping: a decrement from zero makes
 * refcount_warn_saturate() WARN "refcount_t: underflow; use-after-free.", and
 * panic_on_warn=1 makes that fatal. The WARN is the checker's; the bug is in
 * crashlab_session_put, which is called once more than the session was got.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/refcount.h>
#include <linux/slab.h>

struct crashlab_session {
	refcount_t refs;
	int id;
};

/* Drops one reference; the last one frees nothing here, so the demo stays simple. */
static noinline __noclone bool crashlab_session_put(struct crashlab_session *s)
{
	bool last = refcount_dec_and_test(&s->refs); /* KDX-CRASH-LINE */

	barrier();
	if (last)
		pr_info("crashlab_refcount: session %d released\n", s->id);
	return last;
}

static int __init crashlab_refcount_init(void)
{
	struct crashlab_session *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return -ENOMEM;
	refcount_set(&s->refs, 1);
	s->id = 3;
	crashlab_session_put(s);
	crashlab_session_put(s);
	kfree(s);
	return -EINVAL;
}
module_init(crashlab_refcount_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: refcount_t underflow caught by refcount_warn_saturate");

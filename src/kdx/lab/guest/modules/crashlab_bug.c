// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_bug - a BUG_ON() assertion that fails at run time.
 *
 * It demonstrates "kernel BUG at <file>:<line>!" followed by an
 * "invalid opcode" oops: BUG_ON() compiles to a ud2 instruction plus a
 * __bug_table entry carrying file and line, so the console names the exact
 * source line and the oops RIP points at the ud2 inside
 * crashlab_check_state(), one call below the module's init function.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

/*
 * A reference count the init code "forgets" to take. It lives in a variable
 * (not a constant) so the compiler must test it at run time, as a real
 * assertion would.
 */
static unsigned int crashlab_refcount;

/*
 * noinline and __noclone keep this a real call frame with its own symbol name
 * (no .constprop/.isra clone), so the culprit function is stable.
 */
static noinline __noclone void crashlab_check_state(void)
{
	/* Using an object nobody holds a reference to is a bug: stop here. */
	BUG_ON(READ_ONCE(crashlab_refcount) == 0); /* KDX-CRASH-LINE */
}

static int __init crashlab_bug_init(void)
{
	pr_info("crashlab_bug: checking state with refcount %u\n", crashlab_refcount);
	crashlab_check_state();
	return -EINVAL;	/* Not reached on a kernel with CONFIG_BUG. */
}
module_init(crashlab_bug_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: BUG_ON() in a helper called from module init");

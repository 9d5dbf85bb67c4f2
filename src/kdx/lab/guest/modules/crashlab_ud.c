// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_ud - the CPU executes an instruction that is defined to be invalid.
 *
 * It demonstrates the x86 #UD exception in kernel mode outside a BUG() site:
 * the module runs ud2 itself, with no __bug_table entry, so report_bug() finds
 * nothing, handle_bug() declines it and the trap handler oopses with "invalid
 * opcode: 0000 [#1] ..." ("Oops: invalid opcode: ..." on 6.11 and later), as
 * a jump into data or a corrupted text page would.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int crashlab_mode = 3;	/* The bug: a mode the dispatcher has no case for. */

/* noinline and __noclone keep this a real, stably named frame. */
static noinline __noclone int crashlab_dispatch(void)
{
	switch (READ_ONCE(crashlab_mode)) {
	case 0:
		return 10;
	case 1:
		return 20;
	default:
		asm volatile("ud2"); /* KDX-CRASH-LINE */
	}
	return 0;
}

static int __init crashlab_ud_init(void)
{
	pr_info("crashlab_ud: dispatching mode %d\n", crashlab_mode);
	pr_info("crashlab_ud: result %d\n", crashlab_dispatch());
	return -EINVAL;	/* Only reached if the instruction did not trap. */
}
module_init(crashlab_ud_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: invalid opcode from a stray ud2");

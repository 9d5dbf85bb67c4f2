// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_warn - a WARN_ON() that fires, turned into a panic by panic_on_warn=1.
 *
 * It demonstrates "WARNING: CPU: N PID: P at <file>:<line> <function>+off/len":
 * on x86 WARN_ON() is a ud2 with a __bug_table entry flagged as a warning, so
 * the trap handler prints the warning and normally resumes; with
 * panic_on_warn=1 the kernel instead panics ("kernel: panic_on_warn set ...")
 * while the warning's registers and backtrace are still on screen.
 */
#include <linux/bug.h>
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

/* How many buffers are in use versus how many exist; the init "leaks" one too many. */
static unsigned int crashlab_in_use = 5;
static unsigned int crashlab_capacity = 4;

/*
 * A sanity check that should never trigger. noinline and __noclone keep it a
 * real, stably named frame.
 */
static noinline __noclone void crashlab_check_budget(void)
{
	WARN_ON(READ_ONCE(crashlab_in_use) > READ_ONCE(crashlab_capacity)); /* KDX-CRASH-LINE */
}

static int __init crashlab_warn_init(void)
{
	pr_info("crashlab_warn: %u of %u buffers in use\n", crashlab_in_use, crashlab_capacity);
	crashlab_check_budget();
	/* Without panic_on_warn the warning is survivable: refuse to load instead. */
	return -EINVAL;
}
module_init(crashlab_warn_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: WARN_ON() escalated by panic_on_warn");

// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_div - integer division by a divisor that is zero at run time.
 *
 * It demonstrates the x86 #DE exception in kernel mode: the idiv instruction
 * traps and the kernel oopses with "divide error: 0000 [#1] ..." ("Oops:
 * divide error: ..." on 6.11 and later). The divisor is read from memory at
 * run time, as a real bug's would be, so gcc cannot see the zero and must
 * emit the division.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int crashlab_total = 4096;
static int crashlab_buckets;	/* The bug: never configured, so zero. */

/* noinline and __noclone keep this a real, stably named frame. */
static noinline __noclone int crashlab_divide(void)
{
	int total = READ_ONCE(crashlab_total);
	int buckets = READ_ONCE(crashlab_buckets);

	return total / buckets; /* KDX-CRASH-LINE */
}

static int __init crashlab_div_init(void)
{
	int per_bucket;

	pr_info("crashlab_div: spreading %d items over %d buckets\n", crashlab_total,
		crashlab_buckets);
	per_bucket = crashlab_divide();
	pr_info("crashlab_div: %d items per bucket\n", per_bucket);
	return -EINVAL;	/* Only reached if the division did not trap. */
}
module_init(crashlab_div_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: divide error from a zero divisor");

// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_canary - a stack buffer overflow caught by the stack protector.
 *
 * It demonstrates -fstack-protector-strong, which the kernel is built with: a
 * function with a local array gets a canary between its locals and its return
 * address, checked before it returns. crashlab_fill_name copies a name into a
 * 16-byte local buffer with a length that is 8 bytes too long, so the copy
 * overwrites the canary (and nothing beyond it). At the function's return the
 * check fails and __stack_chk_fail() panics with "stack-protector: Kernel
 * stack is corrupted in: crashlab_fill_name+0x../0x.. [crashlab_canary]".
 *
 * The copy is a byte loop through a pointer hidden from the optimiser, so gcc
 * neither proves the overflow at compile time nor turns it into a fortified
 * memcpy (which would report a different error).
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

#define CRASHLAB_NAME_LEN 16

/* The bug: the length is the buffer's plus a word, as an off-by-a-field would be. */
static unsigned int crashlab_copy_len = CRASHLAB_NAME_LEN + sizeof(long);

/* noinline and __noclone keep this a real, stably named frame. */
static noinline __noclone int crashlab_fill_name(void)
{
	char name[CRASHLAB_NAME_LEN];
	char *p = name;
	unsigned int i, n = READ_ONCE(crashlab_copy_len);

	OPTIMIZER_HIDE_VAR(p);
	for (i = 0; i < n; i++)
		p[i] = 'A';
	return name[0];
} /* KDX-CRASH-LINE */

static int __init crashlab_canary_init(void)
{
	pr_info("crashlab_canary: filling a %d-byte name with %u bytes\n", CRASHLAB_NAME_LEN,
		crashlab_copy_len);
	pr_info("crashlab_canary: name starts with %c\n", crashlab_fill_name());
	return -EINVAL;	/* Only reached if the canary check did not fire. */
}
module_init(crashlab_canary_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: stack-protector failure from a stack buffer overflow");

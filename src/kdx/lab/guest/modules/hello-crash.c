// SPDX-License-Identifier: GPL-2.0
/*
 * hello_crash - the classic first kernel crash: a module whose init function
 * writes through a NULL pointer.
 *
 * It demonstrates the simplest oops: "BUG: kernel NULL pointer dereference,
 * address: 0000000000000000" raised in process context by insmod, with the
 * faulting RIP inside the module's (still present) init section. The kernel
 * builds with -fno-delete-null-pointer-checks, so the store below really is
 * emitted as a store to address 0 rather than folded into a trap.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init hello_init(void)
{
	char *p = NULL;

	pr_info("hello_crash: hello, world; about to write through a NULL pointer\n");
	*p = 1; /* KDX-CRASH-LINE */
	return 0;
}
module_init(hello_init);

/* No module_exit: the init never returns, and a permanent module cannot be unloaded. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: NULL pointer store in a module init function");

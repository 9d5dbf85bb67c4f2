// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_stack - unbounded recursion that runs off the end of the kernel stack.
 *
 * It demonstrates a kernel stack overflow on x86-64 with CONFIG_VMAP_STACK:
 * the stack is followed by an unmapped guard page, the first write into it
 * page-faults, the CPU cannot push the page-fault frame onto the exhausted
 * stack and escalates to a double fault on its own IST stack, and the
 * double-fault handler reports "BUG: TASK stack guard page was hit at ..."
 * and dies with "stack guard page".
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

#define CRASHLAB_FRAME_BYTES 1024

/* Never set. It only keeps gcc from proving the recursion infinite (-Winfinite-recursion). */
static int crashlab_stop;

/*
 * Each level fills a 1 KiB local buffer, then calls itself. Those are the only
 * memory writes a level makes: the buffer stores, from the lowest address up,
 * and the call's return-address push just below the buffer. So the write that
 * first lands in the guard page is a store of the fill loop or, when a frame
 * happens to end exactly on the guard page, the push of the recursive call;
 * which one depends on the random stack offset this syscall got
 * (CONFIG_RANDOMIZE_KSTACK_OFFSET). Both are on the marked line, which is
 * written as one line on purpose so the faulting line is the same either way.
 *
 * __uninitialized stops CONFIG_INIT_STACK_ALL_ZERO from zeroing the buffer
 * first (a zeroing store or memset call elsewhere would be the faulting
 * write), __no_stack_protector drops the canary store at the top of the frame,
 * volatile keeps the stores and the read after the call, which is what makes
 * the recursion non-tail.
 */
static noinline __noclone __no_stack_protector int crashlab_recurse(int depth)
{
	volatile char frame[CRASHLAB_FRAME_BYTES] __uninitialized;
	unsigned int i;

	if (READ_ONCE(crashlab_stop))
		return depth;
	for (i = 0; i < CRASHLAB_FRAME_BYTES; i++) { frame[i] = depth; } crashlab_recurse(depth + 1); /* KDX-CRASH-LINE */
	return frame[0];
}

static int __init crashlab_stack_init(void)
{
	pr_info("crashlab_stack: recursing until the stack runs out\n");
	crashlab_recurse(0);
	return -EINVAL;	/* Not reached. */
}
module_init(crashlab_stack_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: kernel stack overflow into the guard page");

// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_timer - a NULL pointer dereference in a timer callback.
 *
 * It demonstrates an oops in interrupt (softirq) context: the timer callback
 * runs from the TIMER_SOFTIRQ on whatever task happens to be on the CPU, so the
 * "current" task of the oops is an innocent bystander (often the idle task
 * swapper/N). An oops in interrupt context is always fatal: oops_end() hands it
 * to kdump even without oops=panic (otherwise it would panic with "Fatal
 * exception in interrupt"). The timer is pinned so it fires on the CPU that
 * armed it; 6.9+ kernels may otherwise expire an idle CPU's timers elsewhere.
 */
#include <linux/container_of.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/timer.h>

struct crashlab_timer_ctx {
	struct timer_list timer;
	unsigned long *counter;	/* The bug: never allocated, so it stays NULL. */
};

static struct crashlab_timer_ctx crashlab_ctx;

/*
 * container_of() rather than from_timer(): from_timer() became
 * timer_container_of() in 6.16, while container_of() works on every kernel.
 */
static void crashlab_timer_fn(struct timer_list *t)
{
	struct crashlab_timer_ctx *ctx = container_of(t, struct crashlab_timer_ctx, timer);

	(*ctx->counter)++; /* KDX-CRASH-LINE */
}

static int __init crashlab_timer_init(void)
{
	timer_setup(&crashlab_ctx.timer, crashlab_timer_fn, TIMER_PINNED);
	mod_timer(&crashlab_ctx.timer, jiffies + msecs_to_jiffies(200));
	pr_info("crashlab_timer: timer armed on CPU %d\n", raw_smp_processor_id());
	return 0;
}
module_init(crashlab_timer_init);

/* No module_exit: the armed timer points into this module, so it must never be unloaded. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: NULL pointer dereference in a timer callback");

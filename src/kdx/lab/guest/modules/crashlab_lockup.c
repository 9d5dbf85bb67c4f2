// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_lockup - a kernel thread that spins forever with preemption off.
 *
 * It demonstrates the soft-lockup watchdog: the thread "crashlab_spin", bound
 * to one CPU, never schedules, so that CPU's watchdog stopper work never runs
 * and its hrtimer reports "watchdog: BUG: soft lockup - CPU#N stuck for Ns!
 * [crashlab_spin:PID]"; with softlockup_panic=1 it then panics from the timer
 * interrupt, with the spinning thread as the current task. Interrupts stay
 * enabled and the other CPU stays free, so the rest of the guest keeps working
 * until the watchdog fires.
 */
#include <linux/compiler.h>
#include <linux/cpumask.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/preempt.h>
#include <linux/printk.h>
#include <linux/sched.h>

static unsigned int cpu = 1;
module_param(cpu, uint, 0444);
MODULE_PARM_DESC(cpu, "CPU the spinning thread is bound to (default 1)");

/*
 * The bug: a busy-wait for a condition that never comes, with preemption
 * disabled, so the scheduler can never take the CPU back. noinline and
 * __noclone keep it a real, stably named frame for the backtrace.
 *
 * The loop is one line on purpose: the watchdog interrupt lands on either the
 * pause (cpu_relax) or the jump back, and gcc 14 gives the jump the line of
 * the for statement, so only a one-line loop maps both to the marked line.
 */
static noinline __noclone void crashlab_spin_forever(void)
{
	preempt_disable();
	for (;;) cpu_relax(); /* KDX-CRASH-LINE */
}

static int crashlab_spin_fn(void *unused)
{
	crashlab_spin_forever();
	return 0;
}

static int __init crashlab_lockup_init(void)
{
	struct task_struct *task;

	/* Spinning on the only CPU would hang the guest before the watchdog can report. */
	if (cpu >= nr_cpu_ids || !cpu_online(cpu)) {
		pr_err("crashlab_lockup: CPU %u is not online\n", cpu);
		return -EINVAL;
	}
	task = kthread_create(crashlab_spin_fn, NULL, "crashlab_spin");
	if (IS_ERR(task))
		return PTR_ERR(task);
	kthread_bind(task, cpu);
	pr_info("crashlab_lockup: starting crashlab_spin on CPU %u\n", cpu);
	wake_up_process(task);
	return 0;
}
module_init(crashlab_lockup_init);

/* No module_exit: the thread never stops, so the module must never be unloaded. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: soft lockup from a kthread spinning with preemption off");

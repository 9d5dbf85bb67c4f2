// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_rcu - a kthread spins inside an RCU read-side critical section.
 *
 * It demonstrates the RCU CPU stall detector: "crashlab_rcu", bound to CPU 1,
 * enters rcu_read_lock(), disables preemption and busy-waits for a flag that
 * is never set. CPU 1 can then never report a quiescent state, so the grace
 * period that started after it cannot end; after rcu_cpu_stall_timeout seconds
 * the kernel reports "rcu: INFO: rcu_preempt self-detected stall on CPU" (or
 * "detected stalls on CPUs/tasks" from the other CPU) naming CPU 1, and with
 * panic_on_rcu_stall=1 it panics. Interrupts stay enabled, so the scheduler
 * tick keeps running on CPU 1 and the detector can see the stall.
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
#include <linux/rcupdate.h>
#include <linux/sched.h>

static unsigned int cpu = 1;
module_param(cpu, uint, 0444);
MODULE_PARM_DESC(cpu, "CPU the spinning reader is bound to (default 1)");

static bool crashlab_done;	/* The bug: nobody ever sets it. */

/*
 * The bug: a reader that waits for a condition inside its read-side critical
 * section, with preemption off. The loop is one line so that wherever the tick
 * lands (the pause or the jump back) it maps to the marked line.
 */
static noinline __noclone void crashlab_rcu_spin(void)
{
	rcu_read_lock();
	preempt_disable();
	while (!READ_ONCE(crashlab_done)) cpu_relax(); /* KDX-CRASH-LINE */
	preempt_enable();
	rcu_read_unlock();
}

static int crashlab_rcu_fn(void *unused)
{
	crashlab_rcu_spin();
	return 0;
}

static int __init crashlab_rcu_init(void)
{
	struct task_struct *task;

	/* Spinning on the only CPU would hang the guest before the detector can report. */
	if (cpu >= nr_cpu_ids || !cpu_online(cpu)) {
		pr_err("crashlab_rcu: CPU %u is not online\n", cpu);
		return -EINVAL;
	}
	task = kthread_create(crashlab_rcu_fn, NULL, "crashlab_rcu");
	if (IS_ERR(task))
		return PTR_ERR(task);
	kthread_bind(task, cpu);
	pr_info("crashlab_rcu: starting crashlab_rcu on CPU %u\n", cpu);
	wake_up_process(task);
	return 0;
}
module_init(crashlab_rcu_init);

/* No module_exit: the thread never leaves its critical section. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: RCU CPU stall from a spinning reader");

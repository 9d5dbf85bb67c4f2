// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_abba - two kernel threads deadlock on two mutexes taken in opposite orders.
 *
 * It demonstrates the ABBA deadlock: "crashlab_a" takes crashlab_lock_a and
 * then wants crashlab_lock_b; "crashlab_b" takes crashlab_lock_b and then
 * wants crashlab_lock_a. Completions make the interleaving deterministic: each
 * thread takes its first lock before either asks for its second, and
 * crashlab_a blocks first (crashlab_b sleeps a little before asking), so the
 * hung-task detector, which walks tasks in creation order, reports crashlab_a
 * first: "INFO: task crashlab_a:PID blocked for more than N seconds." With
 * hung_task_panic=1 khungtaskd then panics. Both threads sleep in
 * TASK_UNINTERRUPTIBLE inside mutex_lock(), each holding the lock the other
 * waits for: the wait-for graph has the cycle a -> lock_b -> b -> lock_a -> a.
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>

static DEFINE_MUTEX(crashlab_lock_a);
static DEFINE_MUTEX(crashlab_lock_b);
static DECLARE_COMPLETION(crashlab_a_holds);
static DECLARE_COMPLETION(crashlab_b_holds);

/* The first half of the bug: A before B. Reported first, so it is the culprit. */
static int crashlab_a_fn(void *unused)
{
	mutex_lock(&crashlab_lock_a);
	complete(&crashlab_a_holds);
	wait_for_completion(&crashlab_b_holds);
	mutex_lock(&crashlab_lock_b); /* KDX-CRASH-LINE */
	mutex_unlock(&crashlab_lock_b);
	mutex_unlock(&crashlab_lock_a);
	return 0;
}

/* The other half: B before A. It asks a moment later, so crashlab_a blocks first. */
static int crashlab_b_fn(void *unused)
{
	wait_for_completion(&crashlab_a_holds);
	mutex_lock(&crashlab_lock_b);
	complete(&crashlab_b_holds);
	msleep(100);
	mutex_lock(&crashlab_lock_a);
	mutex_unlock(&crashlab_lock_a);
	mutex_unlock(&crashlab_lock_b);
	return 0;
}

static int __init crashlab_abba_init(void)
{
	struct task_struct *task;

	/* crashlab_a is created first, so it comes first in the task list. */
	task = kthread_run(crashlab_a_fn, NULL, "crashlab_a");
	if (IS_ERR(task))
		return PTR_ERR(task);
	task = kthread_run(crashlab_b_fn, NULL, "crashlab_b");
	if (IS_ERR(task))
		return PTR_ERR(task);
	pr_info("crashlab_abba: crashlab_a and crashlab_b are taking their locks\n");
	return 0;
}
module_init(crashlab_abba_init);

/* No module_exit: both threads block forever, so the module must never be unloaded. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: ABBA deadlock between two kthreads");

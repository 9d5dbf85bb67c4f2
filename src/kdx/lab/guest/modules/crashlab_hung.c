// SPDX-License-Identifier: GPL-2.0
/*
 * crashlab_hung - a task stuck in D state behind a mutex that is never released.
 *
 * It demonstrates the hung-task detector: "crashlab_hold" takes a mutex and
 * then sleeps interruptibly forever while holding it; "crashlab_wait" blocks
 * in mutex_lock() in TASK_UNINTERRUPTIBLE. After hung_task_timeout_secs
 * khungtaskd reports "INFO: task crashlab_wait:PID blocked for more than N
 * seconds." and, with hung_task_panic=1, panics with "hung_task: blocked
 * tasks". The panicking task is khungtaskd; the culprit is the waiter, whose
 * saved stack runs schedule <- mutex_lock <- crashlab_wait_fn.
 */
#include <linux/completion.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/sched.h>

static DEFINE_MUTEX(crashlab_mutex);
static DECLARE_COMPLETION(crashlab_held);

/* The bug: a lock holder that goes to sleep for good without unlocking. */
static int crashlab_hold_fn(void *unused)
{
	mutex_lock(&crashlab_mutex);
	complete(&crashlab_held);
	for (;;)
		schedule_timeout_interruptible(MAX_SCHEDULE_TIMEOUT);
	return 0;
}

/* The victim: an uninterruptible wait that can never be satisfied. */
static int crashlab_wait_fn(void *unused)
{
	mutex_lock(&crashlab_mutex); /* KDX-CRASH-LINE */
	mutex_unlock(&crashlab_mutex);
	return 0;
}

static int __init crashlab_hung_init(void)
{
	struct task_struct *task;

	task = kthread_run(crashlab_hold_fn, NULL, "crashlab_hold");
	if (IS_ERR(task))
		return PTR_ERR(task);
	/* Start the waiter only once the mutex is surely held, so it must block. */
	wait_for_completion(&crashlab_held);
	task = kthread_run(crashlab_wait_fn, NULL, "crashlab_wait");
	if (IS_ERR(task))
		return PTR_ERR(task);
	pr_info("crashlab_hung: crashlab_wait is now blocked on crashlab_mutex\n");
	return 0;
}
module_init(crashlab_hung_init);

/* No module_exit: both threads live forever, so the module must never be unloaded. */
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdx crash lab: hung task blocked on a mutex held by a sleeper");

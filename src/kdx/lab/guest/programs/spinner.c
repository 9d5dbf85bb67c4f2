// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * spinner - a user process that burns CPU forever.
 *
 * It gives the lab guest a runnable, CPU-bound task with a recognisable name,
 * so a vmcore's process list, run queues and per-CPU "current" tasks show
 * something other than sleepers and the idle task. It makes no system calls
 * in its loop, so it is always found running in user mode. Built with
 * gcc -static -O1.
 */
#include <stdio.h>

/* volatile: the loop must really execute, not be folded away by the optimiser. */
static volatile unsigned long spinner_count;

int main(void)
{
	printf("spinner: spinning\n");
	fflush(stdout);
	for (;;)
		spinner_count++;
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * memhog - allocate and touch anonymous memory until the kernel runs out.
 *
 * Used by the "oom" crash-lab scenario with vm.panic_on_oom=1: the page fault
 * that finds no free memory calls out_of_memory(), which panics instead of
 * killing anyone, so the vmcore shows memhog as the allocating task. Every
 * page is written, not just mapped, because untouched anonymous memory costs
 * nothing and would never exhaust RAM. Built with gcc -static -O1.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_BYTES (4UL << 20)	/* Small chunks: overcommit heuristics never refuse them. */
#define REPORT_EVERY (16UL)	/* Chunks between progress lines (64 MiB). */

int main(void)
{
	unsigned long chunks = 0;
	long page = sysconf(_SC_PAGESIZE);

	if (page <= 0)
		page = 4096;
	for (;;) {
		char *p = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned long off;

		if (p == MAP_FAILED) {
			/* Address space or overcommit limit: wait for the OOM path, don't exit. */
			fprintf(stderr, "memhog: mmap: %s\n", strerror(errno));
			sleep(1);
			continue;
		}
		for (off = 0; off < CHUNK_BYTES; off += (unsigned long)page)
			p[off] = (char)(off >> 12 | 1);
		chunks++;
		if (chunks % REPORT_EVERY == 0) {
			printf("memhog: %lu MiB touched\n", chunks * (CHUNK_BYTES >> 20));
			fflush(stdout);
		}
	}
	return 0;
}

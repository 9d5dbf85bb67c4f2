// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fileholder - open a handful of files of different kinds, then sleep forever.
 *
 * It gives the lab guest a task whose file table has something to show: a
 * procfs file, a regular file on tmpfs that it created and wrote, /dev/null, both
 * ends of a pipe with unread data in it, and any paths named on the command line.
 * Its working directory is /tmp. It sleeps in pause(), an interruptible sleep,
 * so it never looks hung. Built with gcc -static -O1.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define OWN_FILE "/tmp/kdx-fileholder.txt"

static int open_or_warn(const char *path, int flags)
{
	int fd = open(path, flags, 0644);

	if (fd < 0)
		perror(path);
	return fd;
}

int main(int argc, char **argv)
{
	static const char note[] = "kdx fileholder keeps this file open\n";
	static const char piped[] = "unread bytes waiting in a pipe\n";
	int pipefd[2];
	int fd, i;

	if (chdir("/tmp") != 0)
		perror("/tmp");
	open_or_warn("/proc/version", O_RDONLY);
	fd = open_or_warn(OWN_FILE, O_RDWR | O_CREAT | O_TRUNC);
	if (fd >= 0 && write(fd, note, strlen(note)) < 0)
		perror(OWN_FILE);
	open_or_warn("/dev/null", O_WRONLY);
	if (pipe(pipefd) != 0)
		perror("pipe");
	else if (write(pipefd[1], piped, strlen(piped)) < 0)
		perror("pipe write");
	for (i = 1; i < argc; i++)
		open_or_warn(argv[i], O_RDONLY);

	printf("fileholder: holding files\n");
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}

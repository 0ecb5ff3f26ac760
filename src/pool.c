/*
 * pool: spawn, reap and describe worker processes.  Main thread only (the parent-death
 * signal a worker sets is tied to the thread that created it, so that must be the thread
 * that lives longest: the main one).
 */
#define _GNU_SOURCE
#include "thumbr/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "thumbr/shm.h"
#include "thumbr/util.h"

extern char **environ;

static int exe_fd = -1;

int
pool_init(char *err, size_t errsz)
{
	/* our own image, held open: a replacement worker runs the same binary even if the file
	 * is replaced during the run, and a tool that runs us (valgrind) is followed through
	 * the path /proc/self/fd/N where /proc/self/exe would name the tool itself */
	exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (exe_fd < 0) {
		errf(err, errsz, "cannot open /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
pool_spawn(unsigned k, int shmfd, pid_t *pid, char *err, size_t errsz)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	char karg[16], parg[24], exe[48];
	char *argv[] = { "thumbr", POOL_WORKER_ARG, karg, parg, NULL };
	int rc;

	snprintf(karg, sizeof(karg), "%u", k);
	snprintf(parg, sizeof(parg), "%ld", (long)getpid());
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGCHLD);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, shmfd, SHM_WORKER_FD);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	snprintf(exe, sizeof(exe), "/proc/self/fd/%d", exe_fd);
	rc = posix_spawn(pid, exe, &fa, &at, argv, environ);   /* pool_init has opened it */
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		errf(err, errsz, "cannot start worker %u: %s", k, strerror(rc));
		return -1;
	}
	return 0;
}

pid_t
pool_reap(int *status)
{
	pid_t pid;

	do
		pid = waitpid(-1, status, WNOHANG);
	while (pid < 0 && errno == EINTR);
	return pid;
}

void
pool_describe(int status, char *buf, size_t n)
{
	if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (SIG%s)%s", WTERMSIG(status),
		    sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
		    WCOREDUMP(status) ? ", core dumped" : "");
	else if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(buf, n, "ended with wait status %#x", (unsigned)status);
}

/*
 * Guest-memory access guard. Security model: the front-end owns the fds
 * behind guest memory and can shrink them (ftruncate) after we mapped
 * them; touching a page past the new end raises SIGBUS. Any code path that
 * reads or writes guest memory runs under viod_guard_run(), which turns
 * that SIGBUS into an error for the caller (the ring is then broken) instead
 * of the death of the whole daemon. A SIGBUS outside a guarded section is
 * a real bug and keeps its default action.
 */
#include "vhost.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static __thread sigjmp_buf *guard_jmp;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
	sigjmp_buf *jb = guard_jmp;

	if (jb) {
		guard_jmp = NULL;
		siglongjmp(*jb, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

int viod_guard_run(void (*fn)(void *), void *arg)
{
	sigjmp_buf jb;
	sigjmp_buf *volatile saved = guard_jmp;

	pthread_once(&guard_once, guard_install);
	/* No mask to save: SA_NODEFER leaves SIGBUS unblocked in the
	 * handler, so the mask is the same after the jump (and saving it
	 * would cost two system calls per guarded call). */
	if (sigsetjmp(jb, 0)) {
		guard_jmp = saved;
		return -EFAULT;
	}
	guard_jmp = &jb;
	fn(arg);
	guard_jmp = saved;
	return 0;
}

/*
 * nlpoke: disturbs the netlink traffic between dm-log-userspace and its log
 * server inside the test VM (tests/vm/guest/t-handover.sh).  Built on the
 * host with `gcc -static` by tests/vm/lib.sh and put in the VM's /sbin.
 *
 *   nlpoke flood
 *     Multicasts junk to NETLINK_CONNECTOR group 7 (CN_IDX_DM) until the
 *     log server's socket has dropped a datagram: its receive queue is then
 *     full and marked congested, and every request the kernel broadcasts
 *     fails to deliver (dm_consult_userspace gets -ESRCH at once) until the
 *     server has read its whole queue.  The junk is harmless otherwise: its
 *     sender port is ours, not the kernel's (0), so a server drops it, and
 *     its nlmsg_len (16) leaves no room for a cn_msg, so the connector's
 *     kernel socket (which gets a unicast copy of every multicast sent from
 *     userspace) ignores it too.
 *
 *   nlpoke swallow PID TYPE UUID
 *     Traces PID (the server) until it is about to send its reply to a
 *     request of TYPE for UUID, skips that one send (the server sees it
 *     succeed; the kernel never gets the reply, keeps waiting, and resends
 *     the request after its 15 s timeout), then keeps the server stopped
 *     until nlpoke gets SIGTERM (or 120 s pass), and lets it go.  Prints
 *     "attached" once tracing, "held" once the reply is swallowed.
 *
 * x86_64 Linux >= 5.3 (PTRACE_GET_SYSCALL_INFO).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define CN_IDX_DM 7
#define JUNK_LEN 16000
#define MAX_JUNK 20000

/* Offsets in a reply datagram: nlmsghdr (16) + cn_msg (20) + dm_ulog_request. */
#define ULOG_OFF (16 + 20)
#define UUID_OFF (ULOG_OFF + 8)
#define UUID_LEN 129
#define TYPE_OFF (ULOG_OFF + 152)
#define REPLY_MIN (ULOG_OFF + 160)

/* The kernel's struct ptrace_syscall_info, up to the entry arguments
 * (spelled out: C library headers name it differently or not at all). */
#define GET_SYSCALL_INFO 0x420e
#define SYSCALL_INFO_ENTRY 1
struct syscall_info {
	uint8_t op;
	uint8_t pad[3];
	uint32_t arch;
	uint64_t instruction_pointer;
	uint64_t stack_pointer;
	struct {
		uint64_t nr;
		uint64_t args[6];
	} entry;
	uint64_t more[2];
};

static void die(const char *what)
{
	fprintf(stderr, "nlpoke: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* The drop count and port of the first connector socket (other than
 * `self`) that listens to group CN_IDX_DM; 0 when there is none. */
static int server_drops(unsigned self, unsigned *port, unsigned long *drops, long *rmem)
{
	char line[512];
	FILE *f = fopen("/proc/net/netlink", "r");
	int found = 0;

	if (!f)
		die("/proc/net/netlink");
	while (fgets(line, sizeof line, f)) {
		unsigned long long sk;
		unsigned long ino, dr;
		int eth, dump, locks;
		unsigned pid, groups;
		long rm, wm;

		if (sscanf(line, "%llx %d %u %x %ld %ld %d %d %lu %lu", &sk, &eth, &pid, &groups, &rm, &wm,
			   &dump, &locks, &dr, &ino) != 10)
			continue;
		if (eth != NETLINK_CONNECTOR || pid == 0 || pid == self || !(groups & (1u << (CN_IDX_DM - 1))))
			continue;
		*port = pid;
		*drops = dr;
		*rmem = rm;
		found = 1;
		break;
	}
	fclose(f);
	return found;
}

static int flood(void)
{
	struct sockaddr_nl me = { .nl_family = AF_NETLINK }, to = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof me;
	static char junk[JUNK_LEN];
	struct nlmsghdr *h = (struct nlmsghdr *)junk;
	unsigned port, port2;
	unsigned long drops0, drops;
	long rmem;
	int fd, n;

	fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
	if (fd < 0)
		die("socket");
	if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0 || getsockname(fd, (struct sockaddr *)&me, &len) < 0)
		die("bind");
	if (!server_drops(me.nl_pid, &port, &drops0, &rmem)) {
		fprintf(stderr, "nlpoke: no socket listens to connector group %d\n", CN_IDX_DM);
		return 1;
	}
	memset(junk, 0xa5, sizeof junk);
	h->nlmsg_len = NLMSG_HDRLEN;
	h->nlmsg_type = NLMSG_DONE;
	h->nlmsg_flags = 0;
	h->nlmsg_seq = 0;
	h->nlmsg_pid = me.nl_pid;
	to.nl_groups = 1u << (CN_IDX_DM - 1);
	for (n = 1; n <= MAX_JUNK; n++) {
		if (sendto(fd, junk, sizeof junk, 0, (struct sockaddr *)&to, sizeof to) < 0)
			die("sendto group 7");
		if (!server_drops(me.nl_pid, &port2, &drops, &rmem) || port2 != port) {
			fprintf(stderr, "nlpoke: the server socket (port %u) went away\n", port);
			return 1;
		}
		if (drops > drops0) {
			printf("flood: %d datagrams of %d bytes; server port %u: %ld bytes queued, %lu dropped\n", n,
			       JUNK_LEN, port, rmem, drops - drops0);
			return 0;
		}
	}
	fprintf(stderr, "nlpoke: %d datagrams sent, server port %u never dropped one (%ld bytes queued)\n", MAX_JUNK,
		port, rmem);
	return 1;
}

static int waitstop(pid_t pid)
{
	int st;

	for (;;) {
		if (waitpid(pid, &st, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			die("waitpid");
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			fprintf(stderr, "nlpoke: traced process %d ended\n", (int)pid);
			exit(1);
		}
		return st;
	}
}

static int readmem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

/* The reply about to be sent, when this syscall-entry is a send to netlink:
 * sendto(fd, buf, len, ...) or sendmsg(fd, msg, ...) with its first iovec. */
static int reply_of(pid_t pid, const struct syscall_info *si, unsigned char *reply, uint64_t *len)
{
	uint64_t buf;

	if (si->entry.nr == SYS_sendto) {
		buf = si->entry.args[1];
		*len = si->entry.args[2];
	} else if (si->entry.nr == SYS_sendmsg) {
		struct msghdr m;
		struct iovec v;

		if (readmem(pid, si->entry.args[1], &m, sizeof m) || m.msg_iovlen < 1 ||
		    readmem(pid, (uint64_t)(uintptr_t)m.msg_iov, &v, sizeof v))
			return -1;
		buf = (uint64_t)(uintptr_t)v.iov_base;
		*len = v.iov_len;
	} else {
		return -1;
	}
	if (*len < REPLY_MIN || readmem(pid, buf, reply, REPLY_MIN))
		return -1;
	return 0;
}

static void detach(pid_t pid)
{
	if (ptrace(PTRACE_DETACH, pid, 0, 0) < 0)
		die("PTRACE_DETACH");
}

static volatile sig_atomic_t timed_out;
static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

static int swallow(pid_t pid, unsigned type, const char *uuid)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct syscall_info si;
	struct user_regs_struct regs;
	unsigned char reply[REPLY_MIN];
	uint64_t len;
	sigset_t set;
	int st, sig = 0;

	/* SIGTERM releases the server only once it is held; until then it
	 * waits in the signal mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: waitpid returns EINTR */
	alarm(120);

	if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD) < 0)
		die("PTRACE_SEIZE");
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0)
		die("PTRACE_INTERRUPT");
	waitstop(pid);
	printf("attached\n");
	fflush(stdout);
	for (;;) {
		if (ptrace(PTRACE_SYSCALL, pid, 0, sig) < 0)
			die("PTRACE_SYSCALL");
		sig = 0;
		for (;;) {
			if (waitpid(pid, &st, __WALL) >= 0)
				break;
			if (errno != EINTR)
				die("waitpid");
			if (timed_out) {
				fprintf(stderr, "nlpoke: no reply of type %u for %s within 120 s\n", type, uuid);
				ptrace(PTRACE_INTERRUPT, pid, 0, 0);
				waitstop(pid);
				detach(pid);
				return 1;
			}
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			fprintf(stderr, "nlpoke: traced process %d ended\n", (int)pid);
			return 1;
		}
		if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
			/* signal-delivery-stop: pass the signal on; other stops
			 * (PTRACE_EVENT_STOP): carry on */
			if ((st >> 16) == 0)
				sig = WSTOPSIG(st);
			continue;
		}
		if (ptrace(GET_SYSCALL_INFO, pid, sizeof si, &si) <= 0)
			die("PTRACE_GET_SYSCALL_INFO");
		if (si.op != SYSCALL_INFO_ENTRY || reply_of(pid, &si, reply, &len))
			continue;
		if ((reply[TYPE_OFF] & 0xff) != type || strncmp((char *)reply + UUID_OFF, uuid, UUID_LEN) != 0)
			continue;
		/* Skip the send: orig_rax = -1 at entry, then report success. */
		if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
			die("PTRACE_GETREGS");
		regs.orig_rax = (unsigned long long)-1;
		if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0 || ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
			die("skipping the send");
		st = waitstop(pid);
		if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
			die("PTRACE_GETREGS");
		regs.rax = len;
		if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0)
			die("PTRACE_SETREGS");
		break;
	}
	printf("held\n");
	fflush(stdout);
	alarm(0);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	alarm(120);
	sigwait(&set, &sig);
	detach(pid);
	if (sig == SIGALRM) {
		fprintf(stderr, "nlpoke: released %d after 120 s without SIGTERM\n", (int)pid);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "flood"))
		return flood();
	if (argc == 5 && !strcmp(argv[1], "swallow"))
		return swallow((pid_t)atoi(argv[2]), (unsigned)atoi(argv[3]), argv[4]);
	fprintf(stderr, "usage: nlpoke flood | nlpoke swallow PID TYPE UUID\n");
	return 2;
}

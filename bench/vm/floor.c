/*
 * floor: the least a dm-log-userspace log server can do, as the floor of
 * the VM benchmark (bench/vm.sh, bench/vm/init).  Not part of dmulogd: it
 * has no bitmap, no I/O and no durability, and says every region is in
 * sync.  Its IOPS under a real dm-mirror are what the protocol's round
 * trips cost with a server that costs nothing, so dmulogd's IOPS divided by
 * its IOPS (same boot, same devices, runs next to each other) is the share
 * of that ceiling dmulogd reaches.
 *
 * Per request it makes two system calls: a blocking recvfrom() and one
 * sendto(), with the reply built in the receive buffer (the request header
 * is echoed).  It answers as dmulogd does where the kernel cares
 * (docs/protocol.md section 3):
 *   CTR                  "MAJ:MIN\0" of the log device for the first CTR of
 *                        a disk log (payload without trailing NUL, version
 *                        >= 2, device a block device), so that the kernel's
 *                        dm_get_device() works; nothing for the reconnect
 *                        CTR (trailing NUL: the kernel passes no reply
 *                        buffer there) or a core log
 *   GET_REGION_SIZE      u64, the region size from the CTR string
 *   IS_CLEAN, IN_SYNC    u64 1
 *   GET_SYNC_COUNT       u64 region count
 *   GET_RESYNC_WORK      {0, 0}: no work
 *   IS_REMOTE_RECOVERING {0, region count}: nothing recovering, all in sync
 *   STATUS_INFO/_TABLE   a C string, its NUL counted
 *   the rest             nothing
 * The only state is what those answers need: region size and count per
 * log, keyed by (uuid, luid), from the CTR.  A request for a log it does
 * not know that needs them gets -ESRCH (the kernel reconnects: CTR, RESUME,
 * then the retry), and every error reply carries zeros of the request's
 * reply size (8, 16, 128 for STATUS_INFO), as the kernel needs after -ESRCH.
 *
 * Usage: floor [-d] [-p PIDFILE]
 *   -d  detach once listening (the parent writes PIDFILE and exits 0)
 * SIGUSR1 writes "floor[PID]: N requests" to stderr; SIGTERM ends it.
 * Needs root (CAP_NET_ADMIN to join the group, CAP_SYS_ADMIN to reply).
 * Built with gcc -static by bench/vm.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define NETLINK_CONNECTOR_PROTO 11
#define CN_IDX_DM 7
#define CN_VAL_DM_USERSPACE_LOG 1

/* Byte offsets: nlmsghdr (16), cn_msg (20), dm_ulog_request (160), payload. */
#define NL_LEN 0
#define NL_TYPE 4
#define NL_FLAGS 6
#define NL_SEQ 8
#define NL_PID 12
#define CN 16
#define CN_IDX (CN + 0)
#define CN_VAL (CN + 4)
#define CN_ACK (CN + 12)
#define CN_LEN (CN + 16)
#define CN_FLAGS (CN + 18)
#define RQ 36
#define RQ_LUID (RQ + 0)
#define RQ_UUID (RQ + 8)
#define UUID_LEN 129
#define RQ_VERSION (RQ + 140)
#define RQ_ERROR (RQ + 144)
#define RQ_TYPE (RQ + 152)
#define RQ_DATA_SIZE (RQ + 156)
#define HDR (RQ + 160)
#define NLMSG_DONE_TYPE 3

enum {
	CTR = 1, DTR, PRESUSPEND, POSTSUSPEND, RESUME, GET_REGION_SIZE, IS_CLEAN, IN_SYNC, FLUSH, MARK_REGION,
	CLEAR_REGION, GET_RESYNC_WORK, SET_REGION_SYNC, GET_SYNC_COUNT, STATUS_INFO, STATUS_TABLE,
	IS_REMOTE_RECOVERING
};

#define MAX_LOGS 256
#define STR_LEN 128

struct log {
	int used;
	uint64_t luid;
	char uuid[UUID_LEN];
	uint64_t region_size, region_count;
	char info[STR_LEN];  /* STATUS_INFO */
	char table[STR_LEN]; /* STATUS_TABLE */
};

static struct log logs[MAX_LOGS];
static volatile uint64_t requests;

static uint32_t get32(const unsigned char *b, int off)
{
	uint32_t v;
	memcpy(&v, b + off, 4);
	return v;
}

static void put32(unsigned char *b, int off, uint32_t v)
{
	memcpy(b + off, &v, 4);
}

static void put16(unsigned char *b, int off, uint16_t v)
{
	memcpy(b + off, &v, 2);
}

static void put64(unsigned char *b, int off, uint64_t v)
{
	memcpy(b + off, &v, 8);
}

static struct log *find(const unsigned char *req)
{
	uint64_t luid;
	int i;

	memcpy(&luid, req + RQ_LUID, 8);
	for (i = 0; i < MAX_LOGS; i++)
		if (logs[i].used && logs[i].luid == luid &&
		    strncmp(logs[i].uuid, (const char *)req + RQ_UUID, UUID_LEN) == 0)
			return &logs[i];
	return NULL;
}

/* "<sectors> <type> <args...>": core <rs> [sync|nosync], disk <dev> <rs>
 * [sync|nosync] (and their clustered- twins).  Fills *l; the device name
 * for the CTR reply goes to devname ("" when there is none).  -errno. */
static int parse_ctr(const unsigned char *p, uint32_t n, struct log *l, char *devname)
{
	char s[512], *tok[8], *save = NULL, *t, *end;
	unsigned long long len, rs;
	unsigned maj, min;
	int nt = 0, disk, i;
	size_t off;
	struct stat st;

	if (n >= sizeof s)
		return -EINVAL;
	memcpy(s, p, n);
	s[n] = 0;
	for (t = strtok_r(s, " ", &save); t && nt < 8; t = strtok_r(NULL, " ", &save))
		tok[nt++] = t;
	if (nt < 3)
		return -EINVAL;
	disk = strstr(tok[1], "disk") != NULL;
	if (!disk && !strstr(tok[1], "core"))
		return -EINVAL;
	if (disk && nt < 4)
		return -EINVAL;
	len = strtoull(tok[0], &end, 10);
	if (*end || len == 0)
		return -EINVAL;
	rs = strtoull(tok[disk ? 3 : 2], &end, 10);
	if (*end || rs == 0)
		return -EINVAL;
	l->region_size = rs;
	l->region_count = (len + rs - 1) / rs;
	devname[0] = 0;
	if (disk) {
		char dummy;
		if (sscanf(tok[2], "%u:%u%c", &maj, &min, &dummy) == 2)
			snprintf(devname, STR_LEN, "%u:%u", maj, min);
		else if (stat(tok[2], &st) == 0 && S_ISBLK(st.st_mode))
			snprintf(devname, STR_LEN, "%u:%u", major(st.st_rdev), minor(st.st_rdev));
		snprintf(l->info, STR_LEN, "3 %s %s A", tok[1], devname[0] ? devname : tok[2]);
	} else {
		snprintf(l->info, STR_LEN, "1 %s", tok[1]);
	}
	/* The table line without the target length. */
	off = 0;
	l->table[0] = 0;
	for (i = 1; i < nt && off < STR_LEN; i++)
		off += (size_t)snprintf(l->table + off, STR_LEN - off, "%s ", tok[i]);
	return 0;
}

/* Carries out the request in buf (payload at HDR, n bytes); writes the
 * reply payload over it; returns its length, or -errno with *keep set to
 * the number of zero bytes the error reply carries. */
static int dispatch(unsigned char *buf, uint32_t n, int *keep)
{
	unsigned type = get32(buf, RQ_TYPE) & 0xff, version = get32(buf, RQ_VERSION);
	unsigned char *out = buf + HDR;
	struct log *l, tmp;
	char devname[STR_LEN];
	int i, r;

	*keep = 0;
	switch (type) {
	case GET_REGION_SIZE: case IS_CLEAN: case IN_SYNC: case GET_SYNC_COUNT:
		*keep = 8;
		break;
	case GET_RESYNC_WORK: case IS_REMOTE_RECOVERING:
		*keep = 16;
		break;
	case STATUS_INFO:
		*keep = STR_LEN;
		break;
	}
	if (version < 1 || version > 3)
		return -EINVAL;
	switch (type) {
	case IS_CLEAN: case IN_SYNC:
		put64(out, 0, 1);
		return 8;
	case FLUSH: case MARK_REGION: case CLEAR_REGION: case SET_REGION_SYNC:
	case PRESUSPEND: case POSTSUSPEND: case RESUME:
		return 0;
	case GET_RESYNC_WORK:
		put64(out, 0, 0);
		put64(out, 8, 0);
		return 16;
	case CTR:
		memset(&tmp, 0, sizeof tmp);
		r = parse_ctr(out, n, &tmp, devname);
		if (r < 0)
			return r;
		l = find(buf);
		for (i = 0; !l && i < MAX_LOGS; i++)
			if (!logs[i].used)
				l = &logs[i];
		if (!l)
			return -ENOMEM;
		tmp.used = 1;
		memcpy(&tmp.luid, buf + RQ_LUID, 8);
		memcpy(tmp.uuid, buf + RQ_UUID, UUID_LEN);
		*l = tmp;
		/* The reconnect CTR ends in NUL and has no reply buffer. */
		if (version >= 2 && devname[0] && !(n > 0 && out[n - 1] == 0)) {
			r = (int)strlen(devname) + 1;
			memcpy(out, devname, (size_t)r);
			return r;
		}
		return 0;
	case DTR:
		l = find(buf);
		if (!l)
			return -ESRCH;
		l->used = 0;
		return 0;
	}
	l = find(buf);
	switch (type) {
	case GET_REGION_SIZE:
		if (!l)
			return -ESRCH;
		put64(out, 0, l->region_size);
		return 8;
	case GET_SYNC_COUNT:
		if (!l)
			return -ESRCH;
		put64(out, 0, l->region_count);
		return 8;
	case IS_REMOTE_RECOVERING:
		if (!l)
			return -ESRCH;
		put64(out, 0, 0);
		put64(out, 8, l->region_count);
		return 16;
	case STATUS_INFO: case STATUS_TABLE:
		if (!l)
			return -ESRCH;
		r = (int)strlen(type == STATUS_INFO ? l->info : l->table) + 1;
		memcpy(out, type == STATUS_INFO ? l->info : l->table, (size_t)r);
		return r;
	}
	return -EINVAL;
}

static void on_usr1(int sig)
{
	char line[64], num[24];
	uint64_t v = requests;
	int n = 0, k = 0;

	(void)sig;
	do
		num[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < (int)sizeof num);
	memcpy(line, "floor: ", 7);
	n = 7;
	while (k > 0)
		line[n++] = num[--k];
	memcpy(line + n, " requests\n", 10);
	n += 10;
	if (write(2, line, (size_t)n) < 0) {
		/* nothing to do about it in a signal handler */
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_nl me = { .nl_family = AF_NETLINK }, from, kernel = { .nl_family = AF_NETLINK };
	socklen_t alen = sizeof me;
	static unsigned char buf[4096];
	struct sigaction sa;
	const char *pidfile = NULL;
	int fd, opt, detach = 0, group = CN_IDX_DM, rcvbuf = 4 << 20;

	while ((opt = getopt(argc, argv, "dp:")) != -1) {
		if (opt == 'd')
			detach = 1;
		else if (opt == 'p')
			pidfile = optarg;
		else {
			fprintf(stderr, "usage: floor [-d] [-p PIDFILE]\n");
			return 2;
		}
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR_PROTO);
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof me) < 0 ||
	    getsockname(fd, (struct sockaddr *)&me, &alen) < 0 ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
		fprintf(stderr, "floor: netlink connector socket: %s\n", strerror(errno));
		return 1;
	}
	/* The same receive queue as dmulogd (src/netlink.rs). */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);

	if (detach) {
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "floor: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid > 0) {
			if (pidfile) {
				FILE *f = fopen(pidfile, "w");
				if (!f || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f) != 0) {
					fprintf(stderr, "floor: %s: %s\n", pidfile, strerror(errno));
					return 1;
				}
			}
			return 0;
		}
		setsid();
	} else if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
			fprintf(stderr, "floor: %s: %s\n", pidfile, strerror(errno));
			return 1;
		}
	}
	fprintf(stderr, "floor[%d]: listening on netlink port %u\n", (int)getpid(), me.nl_pid);

	for (;;) {
		socklen_t flen = sizeof from;
		ssize_t got = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
		uint32_t n, len;
		int r, keep;

		if (got < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue; /* a full queue: the kernel reconnects */
			fprintf(stderr, "floor: recvfrom: %s\n", strerror(errno));
			return 1;
		}
		/* Only the kernel's dm-log-userspace requests. */
		if (from.nl_pid != 0 || got < HDR || get32(buf, CN_IDX) != CN_IDX_DM ||
		    get32(buf, CN_VAL) != CN_VAL_DM_USERSPACE_LOG)
			continue;
		n = get32(buf, RQ_DATA_SIZE);
		if (n > (uint32_t)got - HDR)
			continue;
		requests++;
		r = dispatch(buf, n, &keep);
		if (r < 0) {
			put32(buf, RQ_ERROR, (uint32_t)r);
			memset(buf + HDR, 0, (size_t)keep);
			len = (uint32_t)keep;
		} else {
			put32(buf, RQ_ERROR, 0);
			len = (uint32_t)r;
		}
		put32(buf, RQ_DATA_SIZE, len);
		put32(buf, NL_LEN, HDR + len);
		put16(buf, NL_TYPE, NLMSG_DONE_TYPE);
		put16(buf, NL_FLAGS, 0);
		put32(buf, NL_SEQ, 0);
		put32(buf, NL_PID, me.nl_pid);
		put32(buf, CN_ACK, 0);
		put16(buf, CN_LEN, (uint16_t)(160 + len));
		put16(buf, CN_FLAGS, 0);
		if (sendto(fd, buf, HDR + len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0 && errno != EINTR)
			fprintf(stderr, "floor: sendto: %s\n", strerror(errno));
	}
}

// nfqfloor: the reference floor of the lab benchmark (hack/bench/lab). A
// minimal libnetfilter_queue consumer that accepts every packet, with the
// queue settings utmd uses (dataplane/nfq/nfq.go): whole-packet copy, queue
// length 4096, fail-open, GSO, an 8 MiB receive buffer, NETLINK_NO_ENOBUFS,
// and batch verdicts (up to 64 accepts in one verdict while more packets
// wait). Dev-only.
//
//   nfqfloor [QUEUE]
//
// It prints "verdicted N" (packets it gave a verdict) on SIGUSR1 and on
// exit (SIGTERM, SIGINT).
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define MAX_BATCH 64

static volatile sig_atomic_t stop, report;
static uint64_t verdicted;
static uint32_t pend_id;
static int pend_n;

static void on_signal(int sig) {
	if (sig == SIGUSR1)
		report = 1;
	else
		stop = 1;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
	(void)qh; (void)msg; (void)data;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
	if (ph) {
		pend_id = ntohl(ph->packet_id);
		pend_n++;
	}
	return 0;
}

static void flush(struct nfq_q_handle *qh) {
	if (pend_n == 0)
		return;
	if (nfq_set_verdict_batch(qh, pend_id, NF_ACCEPT) < 0)
		perror("nfqfloor: batch verdict");
	else
		verdicted += pend_n;
	pend_n = 0;
}

static void print_count(void) {
	printf("verdicted %" PRIu64 "\n", verdicted);
	fflush(stdout);
}

int main(int argc, char **argv) {
	uint16_t queue = argc > 1 ? (uint16_t)atoi(argv[1]) : 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; // no SA_RESTART: recv returns EINTR
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	struct nfq_handle *h = nfq_open();
	if (!h) {
		perror("nfqfloor: nfq_open (run as root)");
		return 1;
	}
	struct nfq_q_handle *qh = nfq_create_queue(h, queue, on_packet, NULL);
	if (!qh) {
		fprintf(stderr, "nfqfloor: cannot bind queue %u (run as root; is another consumer on it?)\n", queue);
		return 1;
	}
	if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xffff) < 0) {
		perror("nfqfloor: set copy mode");
		return 1;
	}
	if (nfq_set_queue_maxlen(qh, 4096) < 0)
		perror("nfqfloor: queue length");
	uint32_t flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
	if (nfq_set_queue_flags(qh, flags, flags) < 0)
		perror("nfqfloor: queue flags (fail-open, GSO)");
	int fd = nfq_fd(h);
	int rcvbuf = 8 << 20, one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
		perror("nfqfloor: SO_RCVBUFFORCE");
	if (setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one) < 0)
		perror("nfqfloor: NETLINK_NO_ENOBUFS");
	fprintf(stderr, "nfqfloor: accepting queue %u\n", queue);

	static char buf[0xffff + 4096] __attribute__((aligned));
	char peek;
	while (!stop) {
		if (report) {
			report = 0;
			print_count();
		}
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			perror("nfqfloor: recv");
			break;
		}
		nfq_handle_packet(h, buf, (int)n);
		if (pend_n >= MAX_BATCH || recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
			flush(qh);
	}
	flush(qh);
	print_count();
	nfq_destroy_queue(qh);
	nfq_close(h);
	return 0;
}

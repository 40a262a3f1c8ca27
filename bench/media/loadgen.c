/* Media relay load generator: N calls at 20 ms ptime, both directions, loopback only.
 *
 * Leg A (the carrier) sends plain RTP from one socket; leg B (the client) sends SRTP
 * (AES_CM_128_HMAC_SHA1_80, libsrtp2) from another. One epoll loop with a timerfd tick;
 * sendmmsg/recvmmsg; kernel receive timestamps (SO_TIMESTAMPNS), so the figures are the
 * relay's, not this process's scheduling. Bounded in time, stops by itself.
 *
 * Built at run time by bench/media/run.py:  gcc -O2 -o loadgen loadgen.c -lsrtp2
 *
 * Protocol (line based):
 *   -> stdout  "ports <carrier_port> <client_port>"
 *   <- stdin   "<n> <warmup_ms> <measure_ms> <drain_ms> <pid> <b2a> <a2b>"
 *                b2a: "payload" (the relay decrypted B's SRTP; call/k read from the payload)
 *                     "seq"     (forwarded as is; k is the RTP sequence number)
 *                a2b: "srtp"    (the relay encrypted A's RTP; first packet per call is
 *                                decrypted to learn the relay's sequence offset, then k is
 *                                matched by sequence number)
 *                     "plain"   (forwarded as is; call/k read from the payload)
 *   <- stdin   n lines "<relay_a_port> <relay_b_port> <client_key_hex> <relay_b_key_hex|->"
 *   -> stdout  "key=value ..." results, then exit.
 *
 * Packet g = k * n + i (call i, packet k) is due at t0 + g * 20 ms / n: calls are spread
 * evenly over the period, as real calls are. The plain payload carries k, i and the send
 * time; SRTP packets are pre-protected before the run (one per call and 20 ms of the run).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <srtp2/srtp.h>

#define PTIME_NS 20000000LL
#define PAYLOAD 160
#define PLAIN_LEN (12 + PAYLOAD)
#define SLOT 256
#define BATCH 256
#define RBATCH 64
#define HIST_US 2000000 /* 1 us bins up to 2 s; beyond goes into the last bin */
#define TICK_NS 200000

static void die(const char *m) { perror(m); exit(2); }

static int64_t now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double proc_cpu(int pid) {
    if (pid <= 0) return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long ut = 0, st = 0;
    /* after ')': state(3) ... utime is field 14, stime 15 */
    int field = 2;
    for (char *t = strtok(p + 1, " "); t; t = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoul(t, NULL, 10);
        if (field == 15) { st = strtoul(t, NULL, 10); break; }
    }
    return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static int udp_sock(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (s < 0) die("socket");
    int sz = 16 << 20, one = 1;
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
    setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    return s;
}

static int local_port(int s) {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static void hex_key(const char *h, unsigned char *out) {
    for (int i = 0; i < 30; i++) sscanf(h + 2 * i, "%2hhx", &out[i]);
}

static inline uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static inline void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void build_rtp(unsigned char *p, uint32_t k, uint32_t i, uint32_t ssrc, int64_t t) {
    p[0] = 0x80; p[1] = 0;
    p[2] = k >> 8; p[3] = k;
    put32(p + 4, k * 160);
    put32(p + 8, ssrc);
    put32(p + 12, k);
    put32(p + 16, i);
    memcpy(p + 20, &t, 8);
    memset(p + 28, 0xff, PLAIN_LEN - 28);
}

/* --- state ------------------------------------------------------------------------ */
static int n, total, pid;
static int b2a_payload, a2b_srtp;
static int64_t *sent_at[2];   /* [dir][i * total + k], realtime ns; dir 0 = A->B, 1 = B->A */
static unsigned char *got[2];
static int32_t *off;           /* relay's A->B sequence offset per call, -1 unknown */
static srtp_t *rx;             /* per call, A->B SRTP from the relay */
static int16_t call_by_a[65536], call_by_b[65536];
static uint32_t *hist;
static int64_t m_from, m_to;   /* send-time window measured (realtime ns) */
static long sent_w[2], recv_w[2], mixed, auth_fail, unknown, dups, stray;

static void account(int dir, int ci, uint32_t k, int64_t rx_ns) {
    if (k >= (uint32_t)total) { stray++; return; }
    size_t idx = (size_t)ci * total + k;
    int64_t s = sent_at[dir][idx];
    if (!s) { stray++; return; }
    if (got[dir][idx]) { dups++; return; }
    got[dir][idx] = 1;
    if (s < m_from || s >= m_to) return;
    recv_w[dir]++;
    int64_t us = (rx_ns - s) / 1000;
    if (us < 0) us = 0;
    if (us >= HIST_US) us = HIST_US - 1;
    hist[us]++;
}

static void on_packet(int side, unsigned char *p, int len, int port, int64_t rx_ns) {
    /* side 0: the carrier socket (B->A arrives); side 1: the client socket (A->B) */
    if (len < 12) { unknown++; return; }
    int ci = side == 0 ? call_by_a[port] : call_by_b[port];
    if (ci < 0) { unknown++; return; }
    int hlen = 12 + 4 * (p[0] & 0x0f);
    uint16_t seq = (uint16_t)(p[2] << 8 | p[3]);
    if (side == 0) {
        if (b2a_payload) {
            if (p[0] & 0x10) hlen += 4 + 4 * (p[hlen + 2] << 8 | p[hlen + 3]);
            if (len < hlen + 8) { unknown++; return; }
            if ((int)be32(p + hlen + 4) != ci) { mixed++; return; }
            account(1, ci, be32(p + hlen), rx_ns);
        } else {
            account(1, ci, seq, rx_ns);
        }
        return;
    }
    if (!a2b_srtp) {
        if (p[0] & 0x10) hlen += 4 + 4 * (p[hlen + 2] << 8 | p[hlen + 3]);
        if (len < hlen + 8) { unknown++; return; }
        if ((int)be32(p + hlen + 4) != ci) { mixed++; return; }
        account(0, ci, be32(p + hlen), rx_ns);
        return;
    }
    if (off[ci] < 0) {
        unsigned char c[2048];
        int l = len;
        memcpy(c, p, len);
        if (srtp_unprotect(rx[ci], c, &l) != srtp_err_status_ok) { auth_fail++; return; }
        int h = 12 + 4 * (c[0] & 0x0f);
        if (c[0] & 0x10) h += 4 + 4 * (c[h + 2] << 8 | c[h + 3]);
        if ((int)be32(c + h + 4) != ci) { mixed++; return; }
        off[ci] = (seq - be32(c + h)) & 0xffff;
    }
    account(0, ci, (uint16_t)(seq - off[ci]), rx_ns);
}

struct side {
    int fd;
    struct mmsghdr msg[RBATCH];
    struct iovec iov[RBATCH];
    struct sockaddr_in from[RBATCH];
    unsigned char buf[RBATCH][2048];
    char ctl[RBATCH][64];
};

static void drain(struct side *s, int idx) {
    for (;;) {
        for (int j = 0; j < RBATCH; j++) {
            s->iov[j] = (struct iovec){s->buf[j], sizeof s->buf[j]};
            s->msg[j].msg_hdr = (struct msghdr){.msg_name = &s->from[j], .msg_namelen = sizeof s->from[j],
                                                .msg_iov = &s->iov[j], .msg_iovlen = 1,
                                                .msg_control = s->ctl[j], .msg_controllen = sizeof s->ctl[j]};
        }
        int r = recvmmsg(s->fd, s->msg, RBATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) return;
        int64_t fallback = now_ns(CLOCK_REALTIME);
        for (int j = 0; j < r; j++) {
            int64_t t = fallback;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&s->msg[j].msg_hdr); c; c = CMSG_NXTHDR(&s->msg[j].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                }
            on_packet(idx, s->buf[j], (int)s->msg[j].msg_len, ntohs(s->from[j].sin_port), t);
        }
        if (r < RBATCH) return;
    }
}

static struct side sides[2];

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (srtp_init() != srtp_err_status_ok) die("srtp_init");
    int carrier = udp_sock(), client = udp_sock();
    printf("ports %d %d\n", local_port(carrier), local_port(client));
    int warmup_ms, measure_ms, drain_ms;
    char b2a[16], a2b[16];
    if (scanf("%d %d %d %d %d %15s %15s", &n, &warmup_ms, &measure_ms, &drain_ms, &pid, b2a, a2b) != 7) die("job");
    b2a_payload = !strcmp(b2a, "payload");
    a2b_srtp = !strcmp(a2b, "srtp");
    total = (int)(((int64_t)(warmup_ms + measure_ms) * 1000000LL) / PTIME_NS) + 1;
    if (total >= 65536) { fprintf(stderr, "run too long\n"); return 2; }
    memset(call_by_a, 0xff, sizeof call_by_a);
    memset(call_by_b, 0xff, sizeof call_by_b);
    struct sockaddr_in *dst_a = calloc(n, sizeof *dst_a), *dst_b = calloc(n, sizeof *dst_b);
    off = malloc(n * sizeof *off);
    rx = calloc(n, sizeof *rx);
    size_t cells = (size_t)n * total;
    int srtp_len = 0;
    unsigned char *b_pkts = malloc(cells * SLOT);
    for (int d = 0; d < 2; d++) { sent_at[d] = calloc(cells, 8); got[d] = calloc(cells, 1); }
    hist = calloc(HIST_US, sizeof *hist);
    if (!b_pkts || !sent_at[1] || !got[1] || !hist) die("malloc");
    for (int i = 0; i < n; i++) {
        int pa, pb;
        char ck[128], rk[128];
        if (scanf("%d %d %127s %127s", &pa, &pb, ck, rk) != 4) die("call");
        call_by_a[pa] = call_by_b[pb] = i;
        off[i] = -1;
        dst_a[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pa), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        dst_b[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pb), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        unsigned char key[30];
        srtp_policy_t pol;
        memset(&pol, 0, sizeof pol);
        srtp_crypto_policy_set_rtp_default(&pol.rtp);
        srtp_crypto_policy_set_rtcp_default(&pol.rtcp);
        pol.key = key;
        pol.window_size = 1024;
        /* client -> relay: pre-protect every packet of the run */
        hex_key(ck, key);
        pol.ssrc.type = ssrc_any_outbound;
        srtp_t tx;
        if (srtp_create(&tx, &pol) != srtp_err_status_ok) die("srtp_create tx");
        for (int k = 0; k < total; k++) {
            unsigned char *p = b_pkts + ((size_t)i * total + k) * SLOT;
            build_rtp(p, k, i, 0x20000 + i, 0);
            int l = PLAIN_LEN;
            if (srtp_protect(tx, p, &l) != srtp_err_status_ok) die("srtp_protect");
            srtp_len = l;
        }
        srtp_dealloc(tx);
        if (a2b_srtp) {
            hex_key(rk, key);
            pol.ssrc.type = ssrc_any_inbound;
            if (srtp_create(&rx[i], &pol) != srtp_err_status_ok) die("srtp_create rx");
        }
    }

    int ep = epoll_create1(0);
    sides[0].fd = carrier;
    sides[1].fd = client;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u32 = 0; epoll_ctl(ep, EPOLL_CTL_ADD, carrier, &ev);
    ev.data.u32 = 1; epoll_ctl(ep, EPOLL_CTL_ADD, client, &ev);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec its = {.it_interval = {0, TICK_NS}, .it_value = {0, TICK_NS}};
    timerfd_settime(tfd, 0, &its, NULL);
    ev.data.u32 = 2; epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

    static struct mmsghdr ma[BATCH], mb[BATCH];
    static struct iovec ia[BATCH], ib[BATCH];
    static unsigned char abuf[BATCH][PLAIN_LEN];
    long long gtotal = (long long)total * n, g = 0;
    int64_t t0 = now_ns(CLOCK_MONOTONIC) + 20000000LL;
    int64_t rt0 = now_ns(CLOCK_REALTIME) + 20000000LL;
    m_from = rt0 + (int64_t)warmup_ms * 1000000LL;
    m_to = m_from + (int64_t)measure_ms * 1000000LL;
    int64_t mono_from = t0 + (int64_t)warmup_ms * 1000000LL, mono_to = mono_from + (int64_t)measure_ms * 1000000LL;
    int64_t mono_end = mono_to + (int64_t)drain_ms * 1000000LL;
    double cpu0 = 0, cpu1 = 0, gcpu0 = 0, gcpu1 = 0;
    int64_t wall0 = 0, wall1 = 0;
    int measuring = 0, done = 0;
    long send_err = 0, wakeups = 0;
    while (!done) {
        struct epoll_event evs[4];
        int r = epoll_wait(ep, evs, 4, 10);
        wakeups++;
        int64_t mono = now_ns(CLOCK_MONOTONIC);
        if (!measuring && mono >= mono_from) {
            measuring = 1;
            cpu0 = proc_cpu(pid); gcpu0 = self_cpu(); wall0 = mono;
        }
        if (measuring == 1 && mono >= mono_to) {
            measuring = 2;
            cpu1 = proc_cpu(pid); gcpu1 = self_cpu(); wall1 = mono;
        }
        if (mono >= mono_end) done = 1;
        for (int e = 0; e < r; e++) {
            if (evs[e].data.u32 == 2) {
                uint64_t x;
                if (read(tfd, &x, 8) < 0 && errno != EAGAIN) die("timerfd");
            }
        }
        /* receive first: what waits in our queues was already timestamped by the kernel */
        drain(&sides[0], 0);
        drain(&sides[1], 1);
        /* send what is due (sends stop at the end of the measured window) */
        while (g < gtotal) {
            int64_t rt = now_ns(CLOCK_REALTIME);
            int na = 0;
            while (g < gtotal && na < BATCH) {
                int64_t due = t0 + (g * PTIME_NS) / n;
                if (due > mono || due >= mono_to) break;
                int i = (int)(g % n), k = (int)(g / n);
                build_rtp(abuf[na], k, i, 0x10000 + i, rt);
                ia[na] = (struct iovec){abuf[na], PLAIN_LEN};
                ma[na].msg_hdr = (struct msghdr){.msg_name = &dst_a[i], .msg_namelen = sizeof dst_a[i], .msg_iov = &ia[na], .msg_iovlen = 1};
                ib[na] = (struct iovec){b_pkts + ((size_t)i * total + k) * SLOT, (size_t)srtp_len};
                mb[na].msg_hdr = (struct msghdr){.msg_name = &dst_b[i], .msg_namelen = sizeof dst_b[i], .msg_iov = &ib[na], .msg_iovlen = 1};
                size_t idx = (size_t)i * total + k;
                sent_at[0][idx] = sent_at[1][idx] = rt;
                if (rt >= m_from && rt < m_to) { sent_w[0]++; sent_w[1]++; }
                na++;
                g++;
            }
            if (!na) break;
            for (int d = 0; d < 2; d++) {
                struct mmsghdr *m = d ? mb : ma;
                int fd = d ? client : carrier;
                int o = 0;
                while (o < na) {
                    int s = sendmmsg(fd, m + o, na - o, 0);
                    if (s <= 0) { /* a full buffer: count the rest as not sent */
                        for (int j = o; j < na; j++) {
                            int i = (int)((g - na + j) % n), k = (int)((g - na + j) / n);
                            size_t idx = (size_t)i * total + k;
                            if (sent_at[d][idx] >= m_from && sent_at[d][idx] < m_to) sent_w[d]--;
                            sent_at[d][idx] = 0;
                            send_err++;
                        }
                        break;
                    }
                    o += s;
                }
            }
        }
        (void)mono_to;
    }
    long long got_total = 0;
    for (int u = 0; u < HIST_US; u++) got_total += hist[u];
    long long p50 = -1, p99 = -1, p999 = -1, mx = -1, acc = 0;
    for (int u = 0; u < HIST_US; u++) {
        if (!hist[u]) continue;
        acc += hist[u];
        if (p50 < 0 && acc * 2 >= got_total) p50 = u;
        if (p99 < 0 && acc * 100 >= got_total * 99) p99 = u;
        if (p999 < 0 && acc * 1000 >= got_total * 999) p999 = u;
        mx = u;
    }
    printf("sent_ab=%ld recv_ab=%ld sent_ba=%ld recv_ba=%ld p50_us=%lld p99_us=%lld p999_us=%lld max_us=%lld "
           "cpu=%.3f gen_cpu=%.3f wall=%.3f mixed=%ld auth_fail=%ld unknown=%ld dup=%ld stray=%ld send_err=%ld "
           "wakeups=%ld\n",
           sent_w[0], recv_w[0], sent_w[1], recv_w[1], p50, p99, p999, mx, cpu1 - cpu0, gcpu1 - gcpu0,
           (wall1 - wall0) / 1e9, mixed, auth_fail, unknown, dups, stray, send_err, wakeups);
    return 0;
}

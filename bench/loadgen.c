/*
 * loadgen.c — a small epoll WebSocket load generator for bench/run.py.
 *
 * Why C: a Python client saturates its own core long before a Python server
 * saturates its own, so it would measure itself. This client precomputes every
 * masked frame once, so sending costs one write() and receiving costs a read()
 * plus a header parse; it should sit well below 100% of its core.
 *
 * Modes (see bench/README.md and /work/shared/BENCH.md):
 *   echo       N connections, one small text message in flight each -> msg/s
 *   latency    1 connection ping-pong -> p50/p99 round trip in microseconds
 *   large      1 connection, big binary echo -> MB/s of echoed payload
 *   fanout     N clients; client 0 sends "bcast:<payload>" with a bounded number
 *              of broadcasts in flight -> deliveries/s across all receivers
 *   handshake  open + close handshakes with K in flight -> handshakes/s
 *   idle       open N connections, print a "ready" line, hold them until stdin
 *              is readable (the harness samples server RSS meanwhile)
 *   check      functional check: text, binary and UTF-8 echo, a 2 MiB message
 *              (above the usual 1 MiB default), bcast to two clients, and no
 *              permessage-deflate in the 101
 *
 * Every mode prints exactly one JSON object on the last stdout line. When
 * --stat-pid is given, the server's utime+stime is read from /proc/PID/stat
 * at the exact edges of the measuring window, so the CPU share matches the
 * window without any cross-process timing. --stat-cpu N adds how busy the
 * server's core was in total (so "other tenants took it" shows), and our own
 * core's busy share is reported too (so "the server waited on us" shows).
 *
 * Build: cc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum mode { M_ECHO, M_LATENCY, M_LARGE, M_FANOUT, M_HANDSHAKE, M_IDLE, M_CHECK };
static const char *MODE_NAMES[] = {"echo",  "latency", "large", "fanout",
                                    "handshake", "idle", "check"};

enum cstate { S_FREE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSING };

/* The fixed key from RFC 6455 section 1.3 and its accept token: the servers
 * must compute the token, and we only compare a constant. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
static const unsigned char MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

#define HS_BUF 2048
#define RING 4096 /* fan-out: broadcasts tracked at once; > max --inflight */
#define READ_CHUNK (256 * 1024)

struct frame {
    unsigned char *bytes; /* the complete masked frame */
    size_t len;
};

struct conn {
    int fd;
    int state;
    int idx;
    int want_out;  /* EPOLLOUT currently registered */
    int ready;     /* fan-out: first echo seen, so the server has registered us */
    int got_close; /* server's close frame seen */
    double t_start; /* handshake mode: when this cycle began */
    /* Writes, in order: handshake request, data frames, close frame. */
    size_t req_off;
    const struct frame *frame;
    size_t frame_off;
    long frames_pending;
    int close_pending;
    size_t close_off;
    /* Handshake response accumulates here until the blank line. */
    char hs[HS_BUF];
    size_t hs_len;
    /* Frame parser state, carried across reads. */
    unsigned char hdr[14];
    size_t hdr_len;
    int in_payload;
    uint64_t payload_left;
    int frame_opcode, frame_fin;
    int msg_opcode;
    uint64_t msg_len;
    long received; /* complete data messages */
    double t_sent; /* latency mode */
};

/* ---- options ---- */
static enum mode mode = M_ECHO;
static const char *host = "127.0.0.1";
static int port = 0;
static int nconns = 64;
static size_t msg_size = 64;
static double warmup_s = 1.0, duration_s = 3.0;
static int inflight = 16;    /* fanout: broadcasts; handshake: connections */
static int open_conc = 64;   /* max connections mid-handshake while opening */
static int stat_pid = 0;
static int stat_cpu = -1;   /* the server's core, for the /proc/stat diagnostic */
static double hold_s = 120.0; /* idle: give up holding after this long */

/* ---- global state ---- */
static int epfd;
static struct conn *conns;
static int nslots;
static struct frame data_frame, bcast_frame, hello_frame, close_frame;
static unsigned char *expect;   /* payload the server should send back */
static size_t expect_len;
static int expect_opcode;
static char request[512];
static size_t request_len;

static long n_open, n_opening, n_ready;
static long msgs, deliveries, handshakes, close_missing, errors;
static uint64_t bytes_in;
static int measuring, closing_phase;
static double *rtts;
static size_t n_rtts, cap_rtts;
static long bc_sent, bc_done;
static uint32_t ring[RING];
static char first_error[200];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Error texts may quote a server's status line: keep the JSON line valid. */
static void json_safe(char *p) {
    for (; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 32) *p = ' ';
}

static void fail(const char *fmt, ...) {
    va_list ap;
    char buf[200];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_safe(buf);
    printf("{\"mode\":\"%s\",\"ok\":false,\"error\":\"%s\"}\n", MODE_NAMES[mode], buf);
    exit(1);
}

static void note_error(const char *fmt, ...) {
    errors++;
    if (!first_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(first_error, sizeof first_error, fmt, ap);
        va_end(ap);
    }
}

/* Server CPU time in seconds (utime + stime, all threads), or -1. */
static double proc_cpu_s(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may contain spaces; fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* Busy and stolen seconds of one core from /proc/stat, so the harness can tell
 * "the server waited" from "something else ran on its core". */
static int core_times(int cpu, double *busy, double *steal) {
    char want[16], line[512];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)) != 0) continue;
        unsigned long long us, ni, sy, id, io, irq, sirq, st;
        if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &us, &ni, &sy,
                   &id, &io, &irq, &sirq, &st) == 8) {
            double tck = sysconf(_SC_CLK_TCK);
            *busy = (us + ni + sy + irq + sirq) / tck;
            *steal = st / tck;
            found = 1;
        }
        break;
    }
    fclose(f);
    return found ? 0 : -1;
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- frames ---- */

static void make_frame(struct frame *f, int opcode, const unsigned char *payload, size_t len) {
    size_t hl = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4;
    f->bytes = malloc(hl + len);
    f->len = hl + len;
    unsigned char *h = f->bytes;
    h[0] = 0x80 | opcode;
    if (len < 126) {
        h[1] = 0x80 | len;
    } else if (len < 65536) {
        h[1] = 0x80 | 126;
        h[2] = len >> 8;
        h[3] = len & 0xff;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint64_t)len >> (56 - 8 * i);
    }
    memcpy(h + hl - 4, MASK, 4);
    for (size_t i = 0; i < len; i++) h[hl + i] = payload[i] ^ MASK[i & 3];
}

/* Printable, non-repeating-looking payload so an echo bug shows up in memcmp. */
static unsigned char *make_payload(size_t len, int binary) {
    unsigned char *p = malloc(len ? len : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = binary ? (unsigned char)x : (unsigned char)('a' + x % 26);
    }
    return p;
}

/* ---- epoll plumbing ---- */

static void set_out(struct conn *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void conn_free(struct conn *c) {
    if (c->state == S_FREE) return;
    if (c->state == S_OPEN || c->state == S_CLOSING) n_open--;
    if (c->state == S_CONNECTING || c->state == S_HANDSHAKE) n_opening--;
    close(c->fd); /* also removes it from the epoll set */
    int idx = c->idx;
    memset(c, 0, sizeof *c);
    c->idx = idx;
    c->fd = -1;
    c->state = S_FREE;
}

static void conn_start(struct conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        fail("connect: %s", strerror(errno));
    int idx = c->idx;
    memset(c, 0, sizeof *c);
    c->idx = idx;
    c->fd = fd;
    c->state = S_CONNECTING;
    c->t_start = now();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    c->want_out = 1;
    n_opening++;
}

/* Write whatever is queued, in protocol order; keep EPOLLOUT only while the
 * kernel buffer is full. */
static void try_write(struct conn *c) {
    for (;;) {
        ssize_t w;
        if (c->req_off < request_len) {
            w = send(c->fd, request + c->req_off, request_len - c->req_off, MSG_NOSIGNAL);
            if (w > 0) { c->req_off += w; continue; }
        } else if (c->frames_pending > 0) {
            /* Several small frames (fan-out) go out in one writev. */
            struct iovec iov[64];
            int k = c->frames_pending < 64 ? (int)c->frames_pending : 64;
            iov[0].iov_base = c->frame->bytes + c->frame_off;
            iov[0].iov_len = c->frame->len - c->frame_off;
            for (int i = 1; i < k; i++) {
                iov[i].iov_base = c->frame->bytes;
                iov[i].iov_len = c->frame->len;
            }
            w = writev(c->fd, iov, k);
            if (w > 0) {
                size_t left = w;
                while (left > 0) {
                    size_t rem = c->frame->len - c->frame_off;
                    if (left >= rem) { left -= rem; c->frame_off = 0; c->frames_pending--; }
                    else { c->frame_off += left; left = 0; }
                }
                continue;
            }
        } else if (c->close_pending) {
            w = send(c->fd, close_frame.bytes + c->close_off, close_frame.len - c->close_off,
                     MSG_NOSIGNAL);
            if (w > 0) {
                c->close_off += w;
                if (c->close_off == close_frame.len) c->close_pending = 0;
                continue;
            }
        } else {
            set_out(c, 0);
            return;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(c, 1);
            return;
        }
        if (w < 0 && errno == EINTR) continue;
        if (!closing_phase) note_error("write: %s", w < 0 ? strerror(errno) : "closed");
        conn_free(c);
        return;
    }
}

static void queue_frames(struct conn *c, const struct frame *f, long n) {
    if (c->frames_pending == 0 && c->frame_off == 0) c->frame = f;
    c->frames_pending += n;
    try_write(c);
}

/* Start the closing handshake after the frame being written, if any. */
static void begin_close(struct conn *c) {
    if (c->state != S_OPEN) return;
    c->state = S_CLOSING;
    c->frames_pending = c->frame_off ? 1 : 0;
    c->close_pending = 1;
    try_write(c);
}

/* ---- per-mode reactions ---- */

static void send_next(struct conn *c) {
    if (closing_phase || c->state != S_OPEN) return;
    if (mode == M_LATENCY) c->t_sent = now();
    queue_frames(c, &data_frame, 1);
}

static void fanout_pump(void) {
    struct conn *s = &conns[0];
    if (closing_phase || n_ready < nconns || s->state != S_OPEN) return;
    long room = inflight - (bc_sent - bc_done);
    if (room <= 0) return;
    bc_sent += room;
    queue_frames(s, &bcast_frame, room);
}

static void on_open(struct conn *c) {
    c->state = S_OPEN;
    n_opening--;
    n_open++;
    switch (mode) {
    case M_ECHO: case M_LATENCY: case M_LARGE:
        break; /* the run starts once every connection is open */
    case M_FANOUT:
        /* An echo proves the server's handler runs, hence that it registered
         * this client for broadcasts; otherwise early broadcasts could miss it. */
        queue_frames(c, &hello_frame, 1);
        break;
    case M_HANDSHAKE:
        begin_close(c);
        break;
    default:
        break;
    }
}

static void on_message(struct conn *c, int opcode, uint64_t len) {
    c->received++;
    if (mode == M_FANOUT && !c->ready) {
        /* The hello echo carries the same payload as the broadcasts. */
        if (opcode != 1 || len != msg_size) note_error("fan-out hello echo mismatch");
        c->ready = 1;
        n_ready++;
        fanout_pump();
        return;
    }
    if (opcode != expect_opcode || len != expect_len)
        note_error("message mismatch: opcode %d len %llu (want %d, %zu)", opcode,
                   (unsigned long long)len, expect_opcode, expect_len);
    switch (mode) {
    case M_ECHO:
        if (measuring) msgs++;
        send_next(c);
        break;
    case M_LATENCY:
        if (measuring) {
            if (n_rtts == cap_rtts) {
                cap_rtts = cap_rtts ? cap_rtts * 2 : 65536;
                rtts = realloc(rtts, cap_rtts * sizeof *rtts);
            }
            rtts[n_rtts++] = (now() - c->t_sent) * 1e6;
            msgs++;
        }
        send_next(c);
        break;
    case M_LARGE:
        if (measuring) { msgs++; bytes_in += len; }
        send_next(c);
        break;
    case M_FANOUT: {
        if (measuring) deliveries++;
        /* Receivers see broadcasts in order, so this is broadcast number
         * (received - 2): the first message was the hello echo. */
        long k = c->received - 2;
        if (k < bc_done || k >= bc_sent) { note_error("unexpected broadcast"); break; }
        ring[k % RING]++;
        while (bc_done < bc_sent && ring[bc_done % RING] == (uint32_t)nconns) {
            ring[bc_done % RING] = 0;
            bc_done++;
        }
        fanout_pump();
        break;
    }
    default:
        break;
    }
}

/* Incremental frame parser: consumes a read chunk, verifying payloads against
 * `expect` as they stream past (1 MiB echoes are never buffered). */
static void feed(struct conn *c, const unsigned char *p, size_t n) {
    while (n > 0 && c->state != S_FREE) {
        if (!c->in_payload) {
            /* Collect the 2-byte head, then the extended length and mask. */
            size_t need = 2;
            for (;;) {
                while (c->hdr_len < need && n > 0) { c->hdr[c->hdr_len++] = *p++; n--; }
                if (c->hdr_len < need) return;
                size_t l7 = c->hdr[1] & 0x7f;
                size_t full = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (c->hdr[1] & 0x80 ? 4 : 0);
                if (need == full) break;
                need = full;
            }
            if (c->hdr[1] & 0x80) { note_error("server sent a masked frame"); conn_free(c); return; }
            uint64_t len = c->hdr[1] & 0x7f;
            if (len == 126) len = (c->hdr[2] << 8) | c->hdr[3];
            else if (len == 127) { len = 0; for (int i = 0; i < 8; i++) len = (len << 8) | c->hdr[2 + i]; }
            c->frame_fin = c->hdr[0] >> 7;
            c->frame_opcode = c->hdr[0] & 0x0f;
            if (c->frame_opcode == 1 || c->frame_opcode == 2) { c->msg_opcode = c->frame_opcode; c->msg_len = 0; }
            c->payload_left = len;
            c->hdr_len = 0;
            c->in_payload = 1;
            /* No `continue`: a zero-length frame must finish in this pass even
             * when it ends the read chunk. */
        }
        size_t take = c->payload_left < n ? (size_t)c->payload_left : n;
        if (c->frame_opcode <= 2 && take) {
            if (c->msg_len + take > expect_len || memcmp(p, expect + c->msg_len, take) != 0)
                note_error("payload mismatch");
            c->msg_len += take;
        }
        p += take;
        n -= take;
        c->payload_left -= take;
        if (c->payload_left > 0) return;
        c->in_payload = 0;
        if (c->frame_opcode <= 2) {
            if (c->frame_fin) on_message(c, c->msg_opcode, c->msg_len);
        } else if (c->frame_opcode == 8) {
            /* We then wait for the server to close TCP (it should close
             * first, which keeps TIME_WAIT on its side, not ours). */
            c->got_close = 1;
            if (c->state == S_OPEN) {
                if (!closing_phase) note_error("server closed the connection");
                begin_close(c);
            }
        }
        /* Pings are not expected: every server runs without keepalive. */
    }
}

static void on_handshake_bytes(struct conn *c, const unsigned char *p, size_t n) {
    size_t room = HS_BUF - 1 - c->hs_len;
    size_t take = n < room ? n : room;
    memcpy(c->hs + c->hs_len, p, take);
    c->hs_len += take;
    c->hs[c->hs_len] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hs_len >= HS_BUF - 1) { note_error("handshake response too long"); conn_free(c); }
        return;
    }
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0 || !strstr(c->hs, WS_ACCEPT)) {
        char *eol = strchr(c->hs, '\r');
        if (eol) *eol = 0;
        note_error("handshake rejected: %.80s", c->hs);
        conn_free(c);
        return;
    }
    size_t used = (size_t)(end + 4 - c->hs) - (c->hs_len - take);
    on_open(c);
    if (used < n) feed(c, p + used, n - used);
}

static unsigned char rbuf[READ_CHUNK];

static void on_event(struct conn *c, uint32_t ev) {
    if (c->state == S_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { note_error("connect: %s", strerror(err)); conn_free(c); return; }
        c->state = S_HANDSHAKE;
        try_write(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (r > 0) {
            if (c->state == S_HANDSHAKE) on_handshake_bytes(c, rbuf, r);
            else feed(c, rbuf, r);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) {
                /* The server closed TCP after our close frame: one cycle. A
                 * server that drops the TCP connection without answering our
                 * close frame still did the cycle's work; count it, but report
                 * how often that happened (RFC 6455 section 5.5.1 says it
                 * should answer). */
                if (measuring) {
                    handshakes++;
                    if (!c->got_close) close_missing++;
                }
            } else if (!closing_phase) {
                note_error("connection lost (%s)", r == 0 ? "EOF" : strerror(errno));
            }
            conn_free(c);
            return;
        }
    }
    if (c->state != S_FREE && (ev & EPOLLOUT)) try_write(c);
}

/* Run the event loop until `until` (monotonic seconds) or stop() says so. */
static void loop_until(double until, int (*stop)(void)) {
    struct epoll_event evs[256];
    for (;;) {
        if (stop && stop()) return;
        double t = now();
        if (t >= until) return;
        int ms = (int)((until - t) * 1000) + 1;
        if (ms > 100) ms = 100;
        int n = epoll_wait(epfd, evs, 256, ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) return; /* stdin readable: idle mode is told to stop */
            on_event(c, evs[i].events);
        }
        if (mode == M_HANDSHAKE && !closing_phase) {
            /* Refill free slots; recycle cycles that hang (counted as errors). */
            double tn = now();
            for (int i = 0; i < nslots; i++) {
                struct conn *c = &conns[i];
                if (c->state != S_FREE && tn - c->t_start > 5.0) {
                    note_error("handshake cycle timed out");
                    conn_free(c);
                }
                if (c->state == S_FREE) conn_start(c);
            }
        }
    }
}

/* Opening phase: start connections with at most open_conc mid-handshake, so a
 * short listen backlog (asyncio's default is 100) never drops SYNs. */
static int next_to_open;
static int all_open(void) {
    while (next_to_open < nconns && n_opening < open_conc) conn_start(&conns[next_to_open++]);
    if (errors) fail("while opening connections: %s", first_error);
    return n_open == nconns;
}
static int all_ready(void) { return n_ready == nconns; }
static int none_open(void) { return n_open == 0 && n_opening == 0; }
static int fanout_drained(void) { return bc_done == bc_sent; }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q) {
    if (!n_rtts) return 0;
    size_t i = (size_t)(q * (n_rtts - 1) + 0.5);
    return rtts[i];
}

/* ---- check mode: blocking, sequential, easy to read ---- */

static int open_blocking(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) fail("connect: %s", strerror(errno));
    if (write(fd, request, request_len) != (ssize_t)request_len) fail("write request");
    char buf[HS_BUF];
    size_t n = 0;
    /* Read byte by byte so no frame bytes are swallowed with the response. */
    while (n < sizeof buf - 1) {
        if (read(fd, buf + n, 1) != 1) fail("handshake: no response");
        buf[++n] = 0;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0 || !strstr(buf, WS_ACCEPT))
        fail("handshake rejected");
    if (strcasestr(buf, "permessage-deflate")) fail("server negotiated compression");
    return fd;
}

static void read_full(int fd, unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) fail("read: %s", r == 0 ? "EOF" : strerror(errno));
        p += r;
        n -= r;
    }
}

/* Read one whole message; returns its opcode. */
static int read_msg(int fd, unsigned char **out, size_t *outlen, const char *what) {
    size_t total = 0;
    unsigned char *buf = NULL;
    int opcode = 0;
    for (;;) {
        unsigned char h[10];
        read_full(fd, h, 2);
        uint64_t len = h[1] & 0x7f;
        if (len == 126) { read_full(fd, h + 2, 2); len = (h[2] << 8) | h[3]; }
        else if (len == 127) { read_full(fd, h + 2, 8); len = 0; for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i]; }
        if (h[1] & 0x80) fail("server sent a masked frame");
        int op = h[0] & 0x0f;
        if (op == 8) {
            unsigned char cb[125];
            read_full(fd, cb, len < sizeof cb ? len : sizeof cb);
            fail("%s: the server closed the connection with code %d", what,
                 len >= 2 ? (cb[0] << 8) | cb[1] : 1005);
        }
        if (op >= 8) fail("%s: unexpected control frame %d", what, op);
        if (op) opcode = op;
        buf = realloc(buf, total + len + 1);
        read_full(fd, buf + total, len);
        total += len;
        if (h[0] & 0x80) break;
    }
    *out = buf;
    *outlen = total;
    return opcode;
}

static void send_msg(int fd, int opcode, const unsigned char *p, size_t n) {
    struct frame f;
    make_frame(&f, opcode, p, n);
    for (size_t off = 0; off < f.len;) {
        ssize_t w = write(fd, f.bytes + off, f.len - off);
        if (w <= 0) fail("write: %s", strerror(errno));
        off += w;
    }
    free(f.bytes);
}

static void expect_msg(int fd, int opcode, const unsigned char *p, size_t n, const char *what) {
    unsigned char *got;
    size_t len;
    int op = read_msg(fd, &got, &len, what);
    if (op != opcode || len != n || memcmp(got, p, n) != 0)
        fail("%s: got opcode %d, %zu bytes; want opcode %d, %zu bytes", what, op, len, opcode, n);
    free(got);
}

static void run_check(void) {
    int a = open_blocking(), b = open_blocking();
    const unsigned char *t = (const unsigned char *)"hello, wskit";
    send_msg(a, 1, t, 12);
    expect_msg(a, 1, t, 12, "text echo");
    /* Prove b's handler runs before it must receive a broadcast. */
    send_msg(b, 1, t, 12);
    expect_msg(b, 1, t, 12, "text echo");
    unsigned char bin[256];
    for (int i = 0; i < 256; i++) bin[i] = i;
    send_msg(a, 2, bin, 256);
    expect_msg(a, 2, bin, 256, "binary echo");
    /* Above the 1 MiB defaults: the server must be set to a 16 MiB limit. */
    size_t big = 2 * 1024 * 1024;
    unsigned char *bp = make_payload(big, 1);
    send_msg(a, 2, bp, big);
    expect_msg(a, 2, bp, big, "2 MiB binary echo");
    const unsigned char *bc = (const unsigned char *)"bcast:fan-out";
    send_msg(a, 1, bc, 13);
    expect_msg(a, 1, bc + 6, 7, "broadcast to sender");
    expect_msg(b, 1, bc + 6, 7, "broadcast to other client");
    /* Text that is not valid as ASCII-only: UTF-8 must round-trip as text. */
    const unsigned char *u = (const unsigned char *)"h\xc3\xa9llo \xe2\x82\xac";
    send_msg(b, 1, u, 10);
    expect_msg(b, 1, u, 10, "UTF-8 text echo");
    unsigned char cl[2] = {0x03, 0xe8};
    send_msg(a, 8, cl, 2);
    send_msg(b, 8, cl, 2);
    close(a);
    close(b);
    printf("{\"mode\":\"check\",\"ok\":true}\n");
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode echo|latency|large|fanout|handshake|idle|check --port P\n"
            "  [--host 127.0.0.1] [--conns N] [--size BYTES] [--warmup S] [--duration S]\n"
            "  [--inflight K] [--open-concurrency K] [--stat-pid PID] [--stat-cpu N]\n"
            "  [--hold S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"mode", 1, 0, 'm'},     {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},
        {"conns", 1, 0, 'c'},    {"size", 1, 0, 's'},     {"warmup", 1, 0, 'w'},
        {"duration", 1, 0, 'd'}, {"inflight", 1, 0, 'i'}, {"open-concurrency", 1, 0, 'o'},
        {"stat-pid", 1, 0, 'P'}, {"hold", 1, 0, 'h'},     {"stat-cpu", 1, 0, 'C'},
        {0, 0, 0, 0}};
    int ch, size_set = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': {
            int found = 0;
            for (int i = 0; i < (int)(sizeof MODE_NAMES / sizeof *MODE_NAMES); i++)
                if (!strcmp(optarg, MODE_NAMES[i])) { mode = i; found = 1; }
            if (!found) usage();
            break;
        }
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 's': msg_size = strtoull(optarg, NULL, 10); size_set = 1; break;
        case 'w': warmup_s = atof(optarg); break;
        case 'd': duration_s = atof(optarg); break;
        case 'i': inflight = atoi(optarg); break;
        case 'o': open_conc = atoi(optarg); break;
        case 'P': stat_pid = atoi(optarg); break;
        case 'h': hold_s = atof(optarg); break;
        case 'C': stat_cpu = atoi(optarg); break;
        default: usage();
        }
    }
    if (!port) usage();
    if (mode == M_LATENCY || mode == M_LARGE) nconns = 1;
    if (mode == M_LARGE && !size_set) msg_size = 1024 * 1024;
    if (inflight < 1 || inflight >= RING) inflight = 16;
    signal(SIGPIPE, SIG_IGN);

    /* 5,000 idle connections need more than the usual 1,024 descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    request_len = snprintf(request, sizeof request,
                           "GET /bench HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n",
                           host, port);
    if (mode == M_CHECK) { run_check(); return 0; }

    /* Precompute every frame once: sending is then just a write. */
    int binary = mode == M_LARGE;
    unsigned char *payload = make_payload(msg_size, binary);
    make_frame(&data_frame, binary ? 2 : 1, payload, msg_size);
    make_frame(&hello_frame, 1, payload, msg_size);
    unsigned char *bc = malloc(msg_size + 6);
    memcpy(bc, "bcast:", 6);
    memcpy(bc + 6, payload, msg_size);
    make_frame(&bcast_frame, 1, bc, msg_size + 6);
    unsigned char code[2] = {0x03, 0xe8}; /* 1000 normal closure */
    make_frame(&close_frame, 8, code, 2);
    expect = payload;
    expect_len = msg_size;
    expect_opcode = binary ? 2 : 1;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    nslots = mode == M_HANDSHAKE ? inflight : nconns;
    conns = calloc(nslots, sizeof *conns);
    for (int i = 0; i < nslots; i++) { conns[i].idx = i; conns[i].fd = -1; }

    double t0 = now();
    if (mode != M_HANDSHAKE) {
        loop_until(t0 + 60, all_open);
        if (n_open < nconns) fail("only %ld of %d connections opened in 60 s", n_open, nconns);
    }
    double t_opened = now();
    double open_s = t_opened - t0;

    if (mode == M_IDLE) {
        printf("{\"event\":\"ready\",\"conns\":%ld,\"open_s\":%.3f}\n", n_open, open_s);
        fflush(stdout);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
        loop_until(now() + hold_s, NULL);
        epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
    } else {
        if (mode == M_FANOUT) {
            loop_until(now() + 30, all_ready);
            if (n_ready < nconns) fail("only %ld of %d clients ready", n_ready, nconns);
        } else if (mode == M_HANDSHAKE) {
            for (int i = 0; i < nslots; i++) conn_start(&conns[i]);
        } else {
            for (int i = 0; i < nconns; i++) send_next(&conns[i]);
        }
        loop_until(now() + warmup_s, NULL);
    }

    /* The measuring window. */
    double busy0 = 0, steal0 = 0, busy1 = 0, steal1 = 0, lbusy0 = 0, lbusy1 = 0, lsteal = 0;
    int have_core = stat_cpu >= 0 && core_times(stat_cpu, &busy0, &steal0) == 0;
    int my_cpu = sched_getcpu(); /* pinned by taskset, so stable */
    int have_lcore = my_cpu >= 0 && my_cpu != stat_cpu && core_times(my_cpu, &lbusy0, &lsteal) == 0;
    double cpu0 = stat_pid ? proc_cpu_s(stat_pid) : -1, self0 = self_cpu_s();
    double w0 = now();
    long done0 = bc_done;
    measuring = 1;
    if (mode != M_IDLE) loop_until(w0 + duration_s, NULL);
    measuring = 0;
    double w1 = now();
    double cpu1 = stat_pid ? proc_cpu_s(stat_pid) : -1, self1 = self_cpu_s();
    have_core = have_core && core_times(stat_cpu, &busy1, &steal1) == 0;
    have_lcore = have_lcore && core_times(my_cpu, &lbusy1, &lsteal) == 0;
    double win = w1 - w0;
    long bcasts = bc_done - done0;
    if (mode != M_IDLE && msgs + deliveries + handshakes == 0) note_error("no progress in the window");

    /* Stop sending, and in fan-out let the broadcasts in flight finish: a
     * server may keep broadcasting queued messages after the sender closed,
     * and the next repetition's clients must not receive them. */
    closing_phase = 1;
    if (mode == M_FANOUT) loop_until(now() + 10, fanout_drained);

    /* Close everything politely so the server sees ordinary closes between
     * repetitions, then give up after a bound. */
    for (int i = 0; i < nslots; i++) {
        struct conn *c = &conns[i];
        if (c->state == S_OPEN) begin_close(c);
        else if (c->state == S_CONNECTING || c->state == S_HANDSHAKE) conn_free(c);
    }
    loop_until(now() + 5, none_open);
    long unclosed = n_open;
    for (int i = 0; i < nslots; i++) conn_free(&conns[i]);

    printf("{\"mode\":\"%s\",\"ok\":%s,\"conns\":%d,\"size\":%zu,\"window_s\":%.4f,\"open_s\":%.3f",
           MODE_NAMES[mode], errors ? "false" : "true", nslots, msg_size, win, open_s);
    if (mode != M_IDLE) {
        printf(",\"messages\":%ld,\"msgs_per_s\":%.1f", msgs, msgs / win);
        printf(",\"mb_per_s\":%.2f", bytes_in / win / 1e6);
        printf(",\"deliveries_per_s\":%.1f,\"broadcasts_per_s\":%.1f", deliveries / win, bcasts / win);
        printf(",\"handshakes_per_s\":%.1f,\"close_missing\":%ld", handshakes / win, close_missing);
        if (mode == M_LATENCY) {
            qsort(rtts, n_rtts, sizeof *rtts, cmp_double);
            double sum = 0;
            for (size_t i = 0; i < n_rtts; i++) sum += rtts[i];
            printf(",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f", pct(0.5),
                   pct(0.9), pct(0.99), n_rtts ? sum / n_rtts : 0);
        }
    }
    if (mode != M_IDLE && stat_pid && cpu0 >= 0 && cpu1 >= 0)
        printf(",\"server_cpu_s\":%.3f,\"server_cpu_share\":%.4f", cpu1 - cpu0, (cpu1 - cpu0) / win);
    if (mode != M_IDLE) printf(",\"loadgen_cpu_share\":%.4f", (self1 - self0) / win);
    if (mode != M_IDLE && have_core)
        printf(",\"core_busy_share\":%.4f,\"core_steal_share\":%.4f", (busy1 - busy0) / win,
               (steal1 - steal0) / win);
    /* Our own core: if it was busy with other work, the server waited on us. */
    if (mode != M_IDLE && have_lcore)
        printf(",\"peer_core_busy_share\":%.4f", (lbusy1 - lbusy0) / win);
    printf(",\"unclosed\":%ld,\"errors\":%ld", unclosed, errors);
    if (first_error[0]) {
        json_safe(first_error);
        printf(",\"error\":\"%s\"", first_error);
    }
    printf("}\n");
    return errors ? 1 : 0;
}

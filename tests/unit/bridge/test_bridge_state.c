/* SPDX-License-Identifier: MIT */
/* The live re-exec state format (bridge/state.h), the transport's preload,
 * and the daemon refusing a state it cannot take (bridge/reexec.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "state.h"
#include "vu_proto.h"

#define NMAPS 5u
#define NBACK 2u

/* A state with every field set to something other than its zero value. */
static void fill(struct br_state *st)
{
    memset(st, 0, sizeof(*st));
    int next_fd = 3;
#define FD(f) ((f) = (struct br_state_fd){ .fd = next_fd, .dev = 0x100u + (uint64_t)next_fd, \
                                           .ino = 0x9000u + (uint64_t)next_fd }, next_fd++)
    snprintf(st->addr, sizeof(st->addr), "0000:00:03.0");
    FD(st->container);
    FD(st->group_fd);
    FD(st->devfd);
    st->group = 7;
    st->command0 = 0x0407;
    st->reserved_irqs = 1u << 4;
    FD(st->req_fd);
    FD(st->listen.fd);
    FD(st->listen.dir_fd);
    snprintf(st->listen.name, sizeof(st->listen.name), "edu.sock");
    st->listen.file_dev = 11;
    st->listen.file_ino = 12;
    FD(st->status.fd);
    FD(st->status.dir_fd);
    snprintf(st->status.name, sizeof(st->status.name), "edu.sock.ctl");
    st->status.file_dev = 13;
    st->status.file_ino = 14;
    st->accepted = 21;
    st->refused = 22;
    st->closed = 20;
    st->lim = (struct br_state_limits){ .max_dma_bytes = 1ull << 30, .max_dma_maps = 100,
                                        .handshake_timeout_ms = 1234, .io_timeout_ms = 4321,
                                        .no_mmap = true, .no_reset = true, .msix_mmap = 2,
                                        .stale_holders = 1 };
    st->n_retired = 2;
    for (unsigned i = 0; i < 2; i++) {
        FD(st->retired[i].fd);
        st->retired[i].owner_pid = 1000 + (int)i;
        st->retired[i].owner_uid = 500 + i;
    }
    st->has_session = true;
    struct br_state_session *s = &st->s;
    FD(s->conn);
    s->pid = 4242;
    s->uid = 1001;
    s->gid = 1002;
    s->negotiated = true;
    vu_caps_defaults(&s->client_caps);
    s->client_caps.max_msg_fds = 8;
    s->client_caps.twin_socket = true;
    s->client_caps.has_migration = true;
    s->client_caps.migration_pgsize = 4096;
    s->client_caps.migration_max_bitmap_size = 77;
    vu_caps_defaults(&s->agreed);
    s->agreed.write_multiple = true;
    s->agreed.pgsizes = 0x201000;
    s->lim_max_msg_size = 1u << 20;
    s->lim_max_fds = 16;
    s->n_msgs = 99999;
    s->n_errors = 3;
    s->rx_len = 40;
    s->rx = malloc(s->rx_len);
    for (size_t i = 0; i < s->rx_len; i++)
        s->rx[i] = (uint8_t)(i * 7 + 1);
    s->rx_nfds = 2;
    FD(s->rx_fds[0]);
    FD(s->rx_fds[1]);
    s->rx_fds_at = 16;
    s->has_devfile = true;
    FD(s->devfile.fd);
    s->devfile.owner_pid = 4242;
    s->devfile.owner_uid = 1001;
    s->nb = NBACK;
    s->backings = calloc(NBACK, sizeof(*s->backings));
    s->nm = NMAPS;
    s->maps = calloc(NMAPS, sizeof(*s->maps));
    uint64_t bytes = 0;
    for (unsigned i = 0; i < NMAPS; i++) {
        int b = i == NMAPS - 1 ? -1 : (int)(i % 2);   /* the last: no fd */
        s->maps[i] = (struct br_state_map){ .iova = 0x100000ull * (i + 1), .size = 0x4000,
                                            .offset = 0x4000ull * i, .flags = 3 - (i % 2),
                                            .backing = b };
        if (i == 2) {
            s->maps[i].own_off = s->maps[i].offset;
            s->maps[i].own_len = 0x4000;
        }
        if (b >= 0)
            bytes += 0x4000;
    }
    s->dma_bytes = bytes;
    s->idle_clock = 17;
    for (unsigned i = 0; i < NBACK; i++) {
        FD(s->backings[i].fd);
        s->backings[i].len = 1u << 20;
        s->backings[i].writable = i == 0;
        s->backings[i].refs = i == 0 ? 2 : 2;
        s->backings[i].idle_seq = 5 + i;
    }
    s->n_irq = 5;
    for (unsigned i = 0; i < 5; i++) {
        s->irq[i].count = i == 2 ? 4 : 1;
        s->irq[i].flags = 0x7 + i;
        s->irq[i].active = i == 2 ? 3 : 0;
        s->irq[i].used = i == 2;
    }
    s->irq[2].has_fds = true;
    s->irq[2].fds = calloc(4, sizeof(*s->irq[2].fds));
    for (unsigned k = 0; k < 3; k++)
        FD(s->irq[2].fds[k]);
    s->irq[2].fds[3] = (struct br_state_fd){ .fd = -1 };
    st->stopped_ns = 123456789;
#undef FD
}

static void encode_ok(const struct br_state *st, uint8_t **buf, size_t *len)
{
    assert_int_equal(br_state_encode(st, buf, len), 0);
    assert_true(*len > BR_STATE_HDR_SIZE);
}

/* Every field comes back as it went (re-encoding gives the same bytes, and
 * the fields are compared one by one as well). */
static void test_round_trip(void **state)
{
    (void)state;
    struct br_state a, b;
    fill(&a);
    uint8_t *buf, *buf2;
    size_t len, len2;
    encode_ok(&a, &buf, &len);
    char why[256] = "";
    assert_int_equal(br_state_decode(buf, len, &b, why, sizeof(why)), 0);
    encode_ok(&b, &buf2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);

    assert_string_equal(b.addr, "0000:00:03.0");
    assert_int_equal(b.container.fd, a.container.fd);
    assert_int_equal(b.container.dev, a.container.dev);
    assert_int_equal(b.container.ino, a.container.ino);
    assert_int_equal(b.group_fd.fd, a.group_fd.fd);
    assert_int_equal(b.devfd.fd, a.devfd.fd);
    assert_int_equal(b.group, 7);
    assert_int_equal(b.command0, 0x0407);
    assert_int_equal(b.reserved_irqs, 1u << 4);
    assert_int_equal(b.req_fd.fd, a.req_fd.fd);
    assert_int_equal(b.listen.fd.fd, a.listen.fd.fd);
    assert_int_equal(b.listen.dir_fd.ino, a.listen.dir_fd.ino);
    assert_string_equal(b.listen.name, "edu.sock");
    assert_int_equal(b.listen.file_ino, 12);
    assert_string_equal(b.status.name, "edu.sock.ctl");
    assert_int_equal(b.status.file_dev, 13);
    assert_int_equal(b.accepted, 21);
    assert_int_equal(b.refused, 22);
    assert_int_equal(b.closed, 20);
    assert_int_equal(b.lim.max_dma_bytes, 1ull << 30);
    assert_int_equal(b.lim.max_dma_maps, 100);
    assert_int_equal(b.lim.handshake_timeout_ms, 1234);
    assert_int_equal(b.lim.io_timeout_ms, 4321);
    assert_true(b.lim.no_mmap && b.lim.no_reset);
    assert_int_equal(b.lim.msix_mmap, 2);
    assert_int_equal(b.lim.stale_holders, 1);
    assert_int_equal(b.n_retired, 2);
    assert_int_equal(b.retired[1].owner_pid, 1001);
    assert_int_equal(b.retired[1].owner_uid, 501);
    assert_true(b.has_session);
    assert_int_equal(b.s.conn.fd, a.s.conn.fd);
    assert_int_equal(b.s.pid, 4242);
    assert_int_equal(b.s.uid, 1001);
    assert_int_equal(b.s.gid, 1002);
    assert_true(b.s.negotiated);
    assert_int_equal(b.s.client_caps.max_msg_fds, 8);
    assert_true(b.s.client_caps.twin_socket);
    assert_true(b.s.client_caps.has_migration);
    assert_int_equal(b.s.client_caps.migration_max_bitmap_size, 77);
    assert_true(b.s.agreed.write_multiple);
    assert_int_equal(b.s.agreed.pgsizes, 0x201000);
    assert_int_equal(b.s.lim_max_msg_size, 1u << 20);
    assert_int_equal(b.s.lim_max_fds, 16);
    assert_int_equal(b.s.n_msgs, 99999);
    assert_int_equal(b.s.n_errors, 3);
    assert_int_equal(b.s.rx_len, 40);
    assert_memory_equal(b.s.rx, a.s.rx, 40);
    assert_int_equal(b.s.rx_nfds, 2);
    assert_int_equal(b.s.rx_fds[1].fd, a.s.rx_fds[1].fd);
    assert_int_equal(b.s.rx_fds_at, 16);
    assert_true(b.s.has_devfile);
    assert_int_equal(b.s.devfile.fd.fd, a.s.devfile.fd.fd);
    assert_int_equal(b.s.devfile.owner_pid, 4242);
    assert_int_equal(b.s.dma_bytes, a.s.dma_bytes);
    assert_int_equal(b.s.idle_clock, 17);
    assert_int_equal(b.s.nb, NBACK);
    assert_int_equal(b.s.backings[0].len, 1u << 20);
    assert_true(b.s.backings[0].writable);
    assert_false(b.s.backings[1].writable);
    assert_int_equal(b.s.backings[1].refs, 2);
    assert_int_equal(b.s.backings[1].idle_seq, 6);
    assert_int_equal(b.s.nm, NMAPS);
    for (unsigned i = 0; i < NMAPS; i++) {
        assert_int_equal(b.s.maps[i].iova, a.s.maps[i].iova);
        assert_int_equal(b.s.maps[i].size, a.s.maps[i].size);
        assert_int_equal(b.s.maps[i].offset, a.s.maps[i].offset);
        assert_int_equal(b.s.maps[i].flags, a.s.maps[i].flags);
        assert_int_equal(b.s.maps[i].backing, a.s.maps[i].backing);
        assert_int_equal(b.s.maps[i].own_off, a.s.maps[i].own_off);
        assert_int_equal(b.s.maps[i].own_len, a.s.maps[i].own_len);
    }
    assert_int_equal(b.s.n_irq, 5);
    assert_int_equal(b.s.irq[2].count, 4);
    assert_int_equal(b.s.irq[2].flags, 9);
    assert_int_equal(b.s.irq[2].active, 3);
    assert_true(b.s.irq[2].used);
    assert_true(b.s.irq[2].has_fds);
    assert_int_equal(b.s.irq[2].fds[2].fd, a.s.irq[2].fds[2].fd);
    assert_int_equal(b.s.irq[2].fds[3].fd, -1);
    assert_false(b.s.irq[1].has_fds);
    assert_null(b.s.irq[1].fds);
    assert_int_equal(b.stopped_ns, 123456789);

    /* every fd is listed once */
    size_t n = br_state_fds(&b, NULL, 0);
    assert_int_equal(n, 8 + 2 + 1 + 2 + 1 + NBACK + 3);
    free(buf);
    free(buf2);
    br_state_free(&a);
    br_state_free(&b);
}

/* A state with no session round-trips too. */
static void test_no_session(void **state)
{
    (void)state;
    struct br_state a, b;
    fill(&a);
    br_state_free(&a);
    fill(&a);
    struct br_state_session keep = a.s;
    a.has_session = false;
    uint8_t *buf;
    size_t len;
    encode_ok(&a, &buf, &len);
    assert_int_equal(br_state_decode(buf, len, &b, NULL, 0), 0);
    assert_false(b.has_session);
    assert_int_equal(b.s.nm, 0);
    a.s = keep;
    free(buf);
    br_state_free(&a);
    br_state_free(&b);
}

/* A session with nothing in it (no read-ahead, no device file, no DMA, no
 * IRQ fds: the state right after VERSION) round-trips too. */
static void test_empty_session(void **state)
{
    (void)state;
    struct br_state a, b;
    fill(&a);
    free(a.s.rx);
    a.s.rx = NULL;
    a.s.rx_len = 0;
    a.s.rx_nfds = 0;
    a.s.rx_fds_at = 0;
    a.s.has_devfile = false;
    a.s.nb = a.s.nm = 0;
    a.s.dma_bytes = 0;
    for (unsigned i = 0; i < a.s.n_irq; i++) {
        free(a.s.irq[i].fds);
        a.s.irq[i].fds = NULL;
        a.s.irq[i].has_fds = false;
        a.s.irq[i].active = 0;
    }
    uint8_t *buf, *buf2;
    size_t len, len2;
    encode_ok(&a, &buf, &len);
    assert_int_equal(br_state_decode(buf, len, &b, NULL, 0), 0);
    assert_true(b.has_session);
    assert_int_equal(b.s.rx_len, 0);
    assert_null(b.s.rx);
    assert_int_equal(b.s.nm, 0);
    assert_false(b.s.has_devfile);
    encode_ok(&b, &buf2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf);
    free(buf2);
    br_state_free(&a);
    br_state_free(&b);
}

/* Recompute the header's length and checksum after an edit of the body. */
static void reseal(uint8_t *buf, size_t len)
{
    uint64_t body = len - BR_STATE_HDR_SIZE;
    for (int i = 0; i < 8; i++)
        buf[16 + i] = (uint8_t)(body >> (8 * i));
    uint32_t crc = br_crc32(buf + BR_STATE_HDR_SIZE, (size_t)body);
    for (int i = 0; i < 4; i++)
        buf[24 + i] = (uint8_t)(crc >> (8 * i));
}

static int decode_err(const uint8_t *buf, size_t len, char *why, size_t whysz)
{
    struct br_state b;
    int r = br_state_decode(buf, len, &b, why, whysz);
    br_state_free(&b);
    return r;
}

/* Every truncation is refused: by the header, and (the header resealed to
 * the shorter length) by the walk. */
static void test_truncated(void **state)
{
    (void)state;
    struct br_state a;
    fill(&a);
    uint8_t *buf;
    size_t len;
    encode_ok(&a, &buf, &len);
    uint8_t *copy = malloc(len);
    char why[256];
    for (size_t l = 0; l < len; l++) {
        memcpy(copy, buf, len);
        assert_int_equal(decode_err(copy, l, why, sizeof(why)), -EBADMSG);
        if (l >= BR_STATE_HDR_SIZE) {
            reseal(copy, l);
            why[0] = '\0';
            assert_int_equal(decode_err(copy, l, why, sizeof(why)), -EBADMSG);
            assert_true(why[0] != '\0');
        }
    }
    /* one byte too many, resealed: left over */
    uint8_t *longer = calloc(1, len + 1);
    memcpy(longer, buf, len);
    reseal(longer, len + 1);
    assert_int_equal(decode_err(longer, len + 1, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "left over"));
    free(longer);
    free(copy);
    free(buf);
    br_state_free(&a);
}

/* Any flipped bit of the body fails the checksum; magic and version are
 * checked first. */
static void test_corrupt_and_version(void **state)
{
    (void)state;
    struct br_state a;
    fill(&a);
    uint8_t *buf;
    size_t len;
    encode_ok(&a, &buf, &len);
    char why[256];
    for (size_t i = BR_STATE_HDR_SIZE; i < len; i++) {
        buf[i] ^= 0x10;
        assert_int_equal(decode_err(buf, len, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "checksum"));
        buf[i] ^= 0x10;
    }
    assert_int_equal(decode_err(buf, len, NULL, 0), 0);
    buf[8] = 2;   /* version 2 */
    assert_int_equal(decode_err(buf, len, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "version 2"));
    buf[8] = 1;
    buf[0] = 'X';
    assert_int_equal(decode_err(buf, len, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "magic"));
    free(buf);
    br_state_free(&a);
}

/* A state that is well formed but says impossible things is refused. */
static void test_semantic(void **state)
{
    (void)state;
    struct br_state a;
    char why[256];
    uint8_t *buf;
    size_t len;
#define REFUSED(edit, needle)                                                    \
    do {                                                                         \
        fill(&a);                                                                \
        edit;                                                                    \
        assert_int_equal(br_state_encode(&a, &buf, &len), 0);                    \
        why[0] = '\0';                                                           \
        assert_int_equal(decode_err(buf, len, why, sizeof(why)), -EBADMSG);      \
        assert_non_null(strstr(why, needle));                                    \
        free(buf);                                                               \
        br_state_free(&a);                                                       \
    } while (0)
    REFUSED(a.s.maps[1].iova = a.s.maps[0].iova + 0x1000, "not after");
    REFUSED(a.s.maps[0].size = 0, "bad range");
    REFUSED(a.s.maps[0].flags = 8, "bad range or flags");
    REFUSED(a.s.maps[0].backing = NBACK, "backing");
    REFUSED(a.s.backings[0].refs = 1, "references");
    REFUSED(a.s.backings[0].idle = true, "references");
    REFUSED(a.s.dma_bytes += 1, "add up");
    REFUSED(a.lim.max_dma_bytes = 0x4000, "over the limit");
    REFUSED(a.lim.max_dma_maps = 2, "over the limit");
    REFUSED(a.s.irq[2].active = 5, "vectors enabled");
    REFUSED(a.s.rx_fds_at = 40, "read-ahead fds");
    REFUSED(a.s.devfile.fd.fd = a.s.conn.fd, "named twice");
    REFUSED(a.container.fd = -1, "not valid");
    REFUSED(snprintf(a.addr, sizeof(a.addr), "00:03.0"), "canonical");
    REFUSED(a.listen.fd.fd = -1, "listening");
#undef REFUSED
}

/* A count beyond its limit is refused with the limit named. */
static void test_count_limit(void **state)
{
    (void)state;
    struct br_state a;
    fill(&a);
    a.n_retired = BR_STATE_MAX_RETIRED + 1;   /* the encoder writes what it is given */
    for (unsigned i = 2; i < BR_STATE_MAX_RETIRED; i++)
        a.retired[i].fd = (struct br_state_fd){ .fd = 200 + (int)i };
    uint8_t *buf;
    size_t len;
    /* the array has BR_STATE_MAX_RETIRED slots: write a valid state and
     * patch the count in the bytes instead */
    a.n_retired = BR_STATE_MAX_RETIRED;
    assert_int_equal(br_state_encode(&a, &buf, &len), 0);
    /* find the count: the u64 holding 16 followed by retired[0]'s fd */
    bool patched = false;
    for (size_t i = BR_STATE_HDR_SIZE; i + 16 <= len && !patched; i++) {
        uint64_t v = 0, f = 0;
        for (int k = 0; k < 8; k++) {
            v |= (uint64_t)buf[i + k] << (8 * k);
            f |= (uint64_t)buf[i + 8 + k] << (8 * k);
        }
        if (v == BR_STATE_MAX_RETIRED && f == (uint64_t)a.retired[0].fd.fd) {
            buf[i] = BR_STATE_MAX_RETIRED + 1;
            patched = true;
        }
    }
    assert_true(patched);
    reseal(buf, len);
    char why[256];
    assert_int_equal(decode_err(buf, len, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "at most 16"));
    free(buf);
    br_state_free(&a);
}

/* Bytes read ahead are handed out by the next receive, with their fds. */
static void test_preload(void **state)
{
    (void)state;
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct vu_conn c;
    vu_conn_init_socket(&c, sp[0], NULL);
    struct vu_hdr h = { .msg_id = 9, .cmd = VU_CMD_DEVICE_GET_INFO, .msg_size = 16 + 8 };
    uint8_t bytes[16 + 8 + 16];
    memcpy(bytes, &h, 16);
    memset(bytes + 16, 0xab, 8);
    struct vu_hdr h2 = { .msg_id = 10, .cmd = VU_CMD_DEVICE_GET_INFO, .msg_size = 16 + 8 };
    memcpy(bytes + 24, &h2, 16);    /* the second message: header only so far */
    int efd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(efd >= 0);
    assert_int_equal(vu_conn_preload(&c, bytes, sizeof(bytes), &efd, 1, 40), -EINVAL);
    assert_int_equal(vu_conn_preload(&c, bytes, sizeof(bytes), &efd, 1, 0), 0);
    assert_int_equal(vu_conn_preload(&c, bytes, 4, NULL, 0, 0), -EINVAL);  /* not fresh */
    struct vu_msg m;
    assert_int_equal(vu_recv(&c, &m), 0);
    assert_int_equal(m.hdr.msg_id, 9);
    assert_int_equal(m.payload_len, 8);
    assert_int_equal(m.payload[7], 0xab);
    assert_int_equal(m.nfds, 1);
    vu_msg_release(&m);
    /* the rest of the second message comes from the socket */
    uint8_t rest[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_int_equal(write(sp[1], rest, 8), 8);
    assert_int_equal(vu_recv(&c, &m), 0);
    assert_int_equal(m.hdr.msg_id, 10);
    assert_int_equal(m.payload[7], 8);
    vu_msg_release(&m);
    vu_conn_close(&c);
    close(sp[1]);
}

/* The daemon handed a state it cannot take says why and exits 1 before it
 * creates anything (no socket) or opens anything. */
static void run_refused(const uint8_t *buf, size_t len, const char *needle)
{
    char dir[] = "/tmp/vub-state-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[128];
    snprintf(sock, sizeof(sock), "%s/s", dir);
    int mfd = memfd_create("state", 0);
    assert_true(mfd >= 0);
    assert_int_equal(write(mfd, buf, len), (ssize_t)len);
    char num[16];
    snprintf(num, sizeof(num), "%d", mfd);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        execl(BRIDGE_EXE, BRIDGE_EXE, "--device", "0000:00:03.0", "--socket", sock,
              "--resume-state", num, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    close(mfd);
    char out[4096];
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], out + got, sizeof(out) - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    if (!strstr(out, needle) || !strstr(out, "cannot resume"))
        fail_msg("stderr does not say '%s':\n%s", needle, out);
    struct stat sb;
    assert_int_equal(stat(sock, &sb), -1);   /* nothing created */
    rmdir(dir);
}

static void test_daemon_refuses(void **state)
{
    (void)state;
    struct br_state a;
    fill(&a);
    uint8_t *buf;
    size_t len;
    assert_int_equal(br_state_encode(&a, &buf, &len), 0);
    buf[8] = 9;
    run_refused(buf, len, "version 9");
    buf[8] = 1;
    buf[len - 1] ^= 1;
    run_refused(buf, len, "checksum");
    buf[len - 1] ^= 1;
    run_refused(buf, len / 2, "header says");
    /* well formed, but its fds are not what this process inherited */
    run_refused(buf, len, "fd 3");
    free(buf);
    br_state_free(&a);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_no_session),
        cmocka_unit_test(test_empty_session),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt_and_version),
        cmocka_unit_test(test_semantic),
        cmocka_unit_test(test_count_limit),
        cmocka_unit_test(test_preload),
        cmocka_unit_test(test_daemon_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* The fd store's pieces (bridge/notify.h, bridge/fdstore.h): the sd_notify
 * datagram with fds, fd names, $LISTEN_FDS, and the decision about the
 * message in hand after a crash at every cut point of a DMA_MAP and a
 * DMA_UNMAP, against a model of the type1 IOMMU. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fdstore.h"
#include "notify.h"

/* ---- the datagram ---------------------------------------------------------------- */

static int bound_dgram(const char *path, struct sockaddr_un *sa)
{
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
    socklen_t len;
    if (path[0] == '@') {
        memcpy(sa->sun_path + 1, path + 1, strlen(path) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    } else {
        snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
        unlink(path);
        len = sizeof(*sa);
    }
    assert_int_equal(bind(s, (struct sockaddr *)sa, len), 0);
    return s;
}

/* One datagram: its text and the fds that came with it. */
static size_t recv_dgram(int s, char *text, size_t tsz, int *fds, size_t max)
{
    union {
        struct cmsghdr a;
        char b[CMSG_SPACE(sizeof(int) * 300)];
    } ctl;
    struct iovec iov = { text, tsz - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = sizeof(ctl.b) };
    ssize_t n = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    assert_true(n >= 0);
    text[n] = '\0';
    size_t k = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) && k < max; i++)
                memcpy(&fds[k++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
    return k;
}

static void same_file(int a, int b)
{
    struct stat x, y;
    assert_int_equal(fstat(a, &x), 0);
    assert_int_equal(fstat(b, &y), 0);
    assert_true(x.st_dev == y.st_dev && x.st_ino == y.st_ino);
}

static void test_notify_fds(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/vub-notify-%d", (int)getpid());
    struct sockaddr_un sa;
    int s = bound_dgram(path, &sa);
    setenv("NOTIFY_SOCKET", path, 1);
    int p[2];
    assert_int_equal(pipe(p), 0);
    int two[2] = { p[0], p[1] };
    assert_int_equal(br_notify_fds("FDSTORE=1\nFDNAME=vub-7", two, 2), 1);
    char text[256];
    int got[4];
    assert_int_equal(recv_dgram(s, text, sizeof(text), got, 4), 2);
    assert_string_equal(text, "FDSTORE=1\nFDNAME=vub-7");
    same_file(got[0], p[0]);
    same_file(got[1], p[1]);
    close(got[0]);
    close(got[1]);
    /* no fds: the plain readiness message */
    assert_int_equal(br_notify("READY=1"), 1);
    assert_int_equal(recv_dgram(s, text, sizeof(text), got, 4), 0);
    assert_string_equal(text, "READY=1");
    /* limits and a bad address */
    int many[BR_NOTIFY_MAX_FDS + 1];
    for (size_t i = 0; i <= BR_NOTIFY_MAX_FDS; i++)
        many[i] = p[0];
    assert_int_equal(br_notify_fds("FDSTORE=1", many, BR_NOTIFY_MAX_FDS + 1), -EINVAL);
    assert_int_equal(br_notify_fds("FDSTORE=1", many, BR_NOTIFY_MAX_FDS), 1);
    assert_int_equal(recv_dgram(s, text, sizeof(text), got, 0), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(br_notify("READY=1"), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(br_notify("READY=1"), 0);
    close(s);
    unlink(path);
    /* the abstract namespace */
    char abs[64];
    snprintf(abs, sizeof(abs), "@vub-notify-%d", (int)getpid());
    s = bound_dgram(abs, &sa);
    setenv("NOTIFY_SOCKET", abs, 1);
    assert_int_equal(br_notify_fds("FDSTOREREMOVE=1\nFDNAME=vub-7", NULL, 0), 1);
    assert_int_equal(recv_dgram(s, text, sizeof(text), got, 4), 0);
    assert_string_equal(text, "FDSTOREREMOVE=1\nFDNAME=vub-7");
    unsetenv("NOTIFY_SOCKET");
    close(s);
    close(p[0]);
    close(p[1]);
}

static void test_fdname(void **state)
{
    (void)state;
    assert_true(br_fdname_valid("vub-1"));
    assert_true(br_fdname_valid(BR_FDSTORE_STATE_NAME));
    assert_false(br_fdname_valid(""));
    assert_false(br_fdname_valid("a:b"));
    assert_false(br_fdname_valid("a\nb"));
    assert_false(br_fdname_valid("tab\there"));
    char n[BR_FDNAME_MAX + 2];
    memset(n, 'x', sizeof(n));
    n[BR_FDNAME_MAX] = '\0';
    assert_true(br_fdname_valid(n));
    n[BR_FDNAME_MAX] = 'x';
    n[BR_FDNAME_MAX + 1] = '\0';
    assert_false(br_fdname_valid(n));
}

static void set_listen(const char *pid, const char *n, const char *names)
{
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", n, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

static void test_listen_fds(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* fds 3 and 4 as a service manager passes them (moved out of the way first) */
    int a = fcntl(p[0], F_DUPFD, 100), b = fcntl(p[1], F_DUPFD, 100);
    int save3 = fcntl(3, F_DUPFD_CLOEXEC, 200), save4 = fcntl(4, F_DUPFD_CLOEXEC, 200);
    assert_int_equal(dup2(a, 3), 3);
    assert_int_equal(dup2(b, 4), 4);
    char me[16];
    snprintf(me, sizeof(me), "%d", (int)getpid());
    struct br_listen_fds lf;

    set_listen(me, "2", BR_FDSTORE_STATE_NAME ":vub-12");
    assert_int_equal(br_listen_fds(&lf), 2);
    assert_string_equal(lf.names[0], BR_FDSTORE_STATE_NAME);
    assert_string_equal(lf.names[1], "vub-12");
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(4, F_GETFD) & FD_CLOEXEC);
    br_listen_fds_free(&lf);
    /* names missing: "unknown", as sd_listen_fds_with_names says */
    set_listen(me, "2", NULL);
    assert_int_equal(br_listen_fds(&lf), 2);
    assert_string_equal(lf.names[1], "unknown");
    br_listen_fds_free(&lf);
    /* for another process: nothing taken, and the variables go */
    set_listen("1", "2", "a:b");
    assert_int_equal(br_listen_fds(&lf), 0);
    assert_null(getenv("LISTEN_FDS"));
    /* malformed */
    set_listen(me, "2x", "a:b");
    assert_int_equal(br_listen_fds(&lf), -EINVAL);
    set_listen(me, "2", "a:b:c");
    assert_int_equal(br_listen_fds(&lf), -EINVAL);
    set_listen(me, "99999", NULL);
    assert_int_equal(br_listen_fds(&lf), -EINVAL);
    /* an fd that is not open */
    set_listen(me, "3", "a:b:c");
    close(5);
    assert_int_equal(br_listen_fds(&lf), -EBADF);
    assert_null(getenv("LISTEN_FDS"));
    unsetenv("LISTEN_PID");
    dup2(save3, 3);
    dup2(save4, 4);
    close(save3);
    close(save4);
    close(a);
    close(b);
    close(p[0]);
    close(p[1]);
}

/* ---- the message in hand at every cut point -------------------------------------- */

/* A model of the type1 IOMMU: the mappings (iova, size) it holds. */
#define KMAX 16
struct kmodel {
    uint64_t iova[KMAX], size[KMAX];
    size_t n;
};

static void k_map(struct kmodel *k, uint64_t iova, uint64_t size)
{
    assert_true(k->n < KMAX);
    k->iova[k->n] = iova;
    k->size[k->n++] = size;
}

/* type1: every mapping inside [iova, iova + size) goes; none: still 0 */
static void k_unmap(struct kmodel *k, uint64_t iova, uint64_t size)
{
    size_t j = 0;
    for (size_t i = 0; i < k->n; i++) {
        bool inside = k->iova[i] >= iova && k->iova[i] + k->size[i] <= iova + size;
        if (!inside) {
            k->iova[j] = k->iova[i];
            k->size[j++] = k->size[i];
        }
    }
    k->n = j;
}

static bool k_has(const struct kmodel *k, uint64_t iova, uint64_t size)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->iova[i] == iova && k->size[i] == size)
            return true;
    return false;
}

enum cut {
    CUT_BEFORE_PEEK,   /* nothing in hand */
    CUT_PEEKED,        /* recorded, still in the socket */
    CUT_CONSUMED,      /* read: only the record knows it */
    CUT_INTENT,        /* a DMA_MAP's range recorded */
    CUT_KERNEL_HALF,   /* the first of two pin chunks in the IOMMU */
    CUT_KERNEL,        /* the kernel call made */
    CUT_SNAPSHOT,      /* the new state current */
    CUT_REPLIED,       /* the reply sent */
    CUT_CLEARED,       /* nothing in hand */
    N_CUTS,
};

#define A_IOVA 0x0ull
#define A_SIZE 0x1000ull
#define SEQ 41ull

/* A DMA_MAP of [iova, +size) (or a DMA_UNMAP of map A) cut at c: what the
 * record, the socket, the snapshot and the IOMMU hold; then the recovery;
 * then the session's end if it asks for it. The IOMMU must end up holding
 * exactly the table the new process serves with, and a client that was
 * told "mapped" must find it mapped. */
static void run_cut(bool is_map, uint64_t iova, uint64_t size, bool overlaps, enum cut c)
{
    struct kmodel k = { .n = 0 };
    struct br_state_map table[2];
    size_t nm = 0;
    table[nm++] = (struct br_state_map){ .iova = A_IOVA, .size = A_SIZE };
    k_map(&k, A_IOVA, A_SIZE);
    struct br_fdstore_wal w = { 0 };
    uint64_t done_seq = SEQ - 1;
    if (c >= CUT_PEEKED && c < CUT_CLEARED) {
        w.in_hand = 1;
        w.msg_id = 7;
        w.cmd = is_map ? VU_CMD_DMA_MAP : VU_CMD_DMA_UNMAP;
        w.seq = SEQ;
    }
    bool unread = c == CUT_PEEKED;
    if (is_map && c >= CUT_INTENT && c < CUT_CLEARED) {
        w.map_intent = 1;
        w.iova = iova;
        w.size = size;
    }
    /* the kernel: an overlapping map was refused before any call */
    bool effect = !(is_map && overlaps);
    if (effect && c == CUT_KERNEL_HALF) {
        if (is_map)
            k_map(&k, iova, size / 2);
        else
            k_unmap(&k, A_IOVA, A_SIZE);
    }
    if (effect && c >= CUT_KERNEL) {
        if (is_map)
            k_map(&k, iova, size);
        else
            k_unmap(&k, A_IOVA, A_SIZE);
    }
    if (c >= CUT_SNAPSHOT) {
        done_seq = SEQ;
        if (effect && is_map)
            table[nm++] = (struct br_state_map){ .iova = iova, .size = size };
        else if (effect)
            nm = 0;
    }
    bool replied = c >= CUT_REPLIED;

    struct br_fdstore_recovery rec;
    br_fdstore_recover(&w, unread, done_seq, table, nm, &rec);
    if (rec.unmap) {
        assert_true(is_map && !overlaps);
        k_unmap(&k, rec.iova, rec.size);
    }
    if (rec.end_session) {
        /* like a disconnect: every map of the table unmapped */
        for (size_t i = 0; i < nm; i++)
            k_unmap(&k, table[i].iova, table[i].size);
        nm = 0;
    }
    /* no stale mapping, none lost */
    assert_int_equal(k.n, nm);
    for (size_t i = 0; i < nm; i++)
        assert_true(k_has(&k, table[i].iova, table[i].size));
    /* the decision itself, per cut: served on exactly when nothing is lost */
    bool serve_on = c <= CUT_PEEKED || c >= CUT_SNAPSHOT;
    assert_int_equal(rec.end_session, !serve_on);
    if (replied && serve_on && effect && is_map)
        assert_true(k_has(&k, iova, size));
    /* an overlapping request never makes the recovery unmap (it would take
     * map A with it) */
    if (overlaps)
        assert_false(rec.unmap);
}

static void test_recover_cut_points(void **state)
{
    (void)state;
    for (enum cut c = 0; c < N_CUTS; c++) {
        run_cut(true, 0x10000, 0x4000, false, c);
        run_cut(true, 0x0, 0x2000, true, c);   /* overlaps A: refused */
        run_cut(false, A_IOVA, A_SIZE, false, c);
    }
}

static void test_recover_edges(void **state)
{
    (void)state;
    struct br_fdstore_recovery rec;
    /* a range that wraps is never unmapped */
    struct br_fdstore_wal w = { .in_hand = 1, .seq = 3, .map_intent = 1,
                                .iova = UINT64_MAX - 0xfff, .size = 0x2000 };
    br_fdstore_recover(&w, false, 2, NULL, 0, &rec);
    assert_true(rec.end_session);
    assert_false(rec.unmap);
    /* a map touching the range's last byte counts as overlapping */
    struct br_state_map m = { .iova = 0x1fff, .size = 0x1000 };
    w = (struct br_fdstore_wal){ .in_hand = 1, .seq = 3, .map_intent = 1, .iova = 0x1000,
                                 .size = 0x1000 };
    br_fdstore_recover(&w, false, 2, &m, 1, &rec);
    assert_false(rec.unmap);
    m.iova = 0x2000;   /* adjacent, not overlapping */
    br_fdstore_recover(&w, false, 2, &m, 1, &rec);
    assert_true(rec.unmap);
    assert_int_equal(rec.iova, 0x1000);
    assert_int_equal(rec.size, 0x1000);
    /* seq 0 (never a real message) does not match a done_seq of 0 */
    w = (struct br_fdstore_wal){ .in_hand = 1, .seq = 0 };
    br_fdstore_recover(&w, false, 0, NULL, 0, &rec);
    assert_true(rec.end_session);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_fds),
        cmocka_unit_test(test_fdname),
        cmocka_unit_test(test_listen_fds),
        cmocka_unit_test(test_recover_cut_points),
        cmocka_unit_test(test_recover_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

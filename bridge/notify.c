/* SPDX-License-Identifier: MIT */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int br_notify_fds(const char *state, const int *fds, size_t n)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    if (n > BR_NOTIFY_MAX_FDS || (n && !fds))
        return -EINVAL;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
        return -EINVAL;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct iovec iov = { .iov_base = (void *)state, .iov_len = strlen(state) };
    struct msghdr mh = { .msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov,
                         .msg_iovlen = 1 };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * BR_NOTIFY_MAX_FDS)];
    } ctl;
    if (n) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    }
    ssize_t r;
    do
        r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    int ret = r < 0 ? -errno : 1;
    close(fd);
    return ret;
}

int br_notify(const char *state) { return br_notify_fds(state, NULL, 0); }

bool br_fdname_valid(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        unsigned char ch = (unsigned char)name[n];
        if (ch < 0x20 || ch >= 0x7f || ch == ':' || n >= BR_FDNAME_MAX)
            return false;
    }
    return n > 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || !*s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

void br_listen_fds_free(struct br_listen_fds *l)
{
    if (l->names)
        for (size_t i = 0; i < l->n; i++)
            free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

int br_listen_fds(struct br_listen_fds *out)
{
    *out = (struct br_listen_fds){ 0 };
    const char *pid_s = getenv("LISTEN_PID"), *n_s = getenv("LISTEN_FDS");
    const char *names_s = getenv("LISTEN_FDNAMES");
    unsigned long pid, n;
    int r = 0;
    if (!pid_s || !n_s)
        goto unset;
    if (parse_uint(pid_s, INT_MAX, &pid) < 0 || parse_uint(n_s, BR_LISTEN_MAX_FDS, &n) < 0) {
        r = -EINVAL;
        goto unset;
    }
    if ((pid_t)pid != getpid())
        goto unset;   /* meant for another process (a parent that did not clear them) */
    out->names = calloc(n ? n : 1, sizeof(char *));
    if (!out->names) {
        r = -ENOMEM;
        goto unset;
    }
    out->n = n;
    const char *p = names_s;
    for (size_t i = 0; i < n; i++) {
        const char *e = p ? strchr(p, ':') : NULL;
        size_t len = p ? (e ? (size_t)(e - p) : strlen(p)) : 0;
        if (len > BR_FDNAME_MAX) {
            r = -EINVAL;
            break;
        }
        out->names[i] = len ? strndup(p, len) : strdup("unknown");
        if (!out->names[i]) {
            r = -ENOMEM;
            break;
        }
        p = e ? e + 1 : NULL;
    }
    if (r == 0 && n && p)
        r = -EINVAL;   /* more names than fds */
    if (r < 0) {
        br_listen_fds_free(out);
        goto unset;
    }
    for (size_t i = 0; i < n; i++) {
        int fd = BR_LISTEN_FDS_START + (int)i;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
            r = -EBADF;
            br_listen_fds_free(out);
            goto unset;
        }
    }
    r = (int)n;
unset:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return r;
}

/* SPDX-License-Identifier: MIT */
/* The daemon's two access hooks (hooks.h), on top of bridge/access.h. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "hooks.h"
#include "log.h"

int br_resolve_id(const char *s, bool group, unsigned *out)
{
    char *end;
    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*end && !errno && *s != '-' && v < (unsigned long)(unsigned)-1) {
        *out = (unsigned)v;
        return 0;
    }
    if (group) {
        struct group *g = getgrnam(s);
        if (!g)
            return -ENOENT;
        *out = g->gr_gid;
    } else {
        struct passwd *p = getpwnam(s);
        if (!p)
            return -ENOENT;
        *out = p->pw_uid;
    }
    return 0;
}

int br_listen(const struct br_config *cfg, struct acc_sock *sock)
{
    struct acc_sock_opts o = {
        .path = cfg->socket_path,
        .owner = (uid_t)-1,
        .group = (gid_t)-1,
        .mode = cfg->socket_mode_set ? cfg->socket_mode : 0600,
        .backlog = 8,
    };
    unsigned id;
    if (cfg->socket_owner) {
        if (br_resolve_id(cfg->socket_owner, false, &id) < 0) {
            br_err("socket owner %s: no such user", cfg->socket_owner);
            return -EINVAL;
        }
        o.owner = (uid_t)id;
    }
    if (cfg->socket_group) {
        if (br_resolve_id(cfg->socket_group, true, &id) < 0) {
            br_err("socket group %s: no such group", cfg->socket_group);
            return -EINVAL;
        }
        o.group = (gid_t)id;
    }
    struct vub_err err = { "" };
    int r = acc_listen_unix(&o, sock, &err);
    if (r < 0) {
        br_err("%s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    }
    int fd = sock->fd;
    /* the loop accepts until EAGAIN */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
        close(fd);
        acc_sock_unlink(sock);
        acc_sock_release(sock);
        return r;
    }
    return fd;
}

bool br_peer_allowed(const struct br_config *cfg, int fd, const struct ucred *cred, char *why,
                     size_t whysz)
{
    struct acc_allow allow = {
        .n_uids = cfg->n_allow_uids, .uids = cfg->allow_uids,
        .n_gids = cfg->n_allow_gids, .gids = cfg->allow_gids,
    };
    struct vub_err err = { "" };
    int r = acc_peer_check(fd, &allow, NULL, &err);
    if (r == 1)
        return true;
    snprintf(why, whysz, "refusing client pid %d uid %u: %s", (int)cred->pid,
             (unsigned)cred->uid, err.msg[0] ? err.msg : r < 0 ? strerror(-r) : "not allowed");
    return false;
}

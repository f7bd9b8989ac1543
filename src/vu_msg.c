/* SPDX-License-Identifier: MIT */
/* Messages and header validation (command names: the table in vu_decode.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vu_proto.h"

void vu_limits_default(struct vu_limits *lim)
{
    lim->max_msg_size = VU_HDR_SIZE + 16u + VU_DEFAULT_DATA_XFER;
    lim->max_fds = VU_MAX_FDS_PER_MSG;
}

void vu_msg_close_fds(struct vu_msg *m)
{
    for (size_t i = 0; i < m->nfds && i < VU_MAX_FDS_PER_MSG; i++) {
        if (m->fds[i] >= 0)
            close(m->fds[i]);
        m->fds[i] = -1;
    }
}


int vu_msg_take_fd(struct vu_msg *m, size_t i)
{
    if (i >= m->nfds || i >= VU_MAX_FDS_PER_MSG || m->fds[i] < 0)
        return -EBADF;
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

/* Which check a header fails, and its reason (vu_hdr_check's slow path:
 * the same checks one by one). */
__attribute__((noinline, cold))
static int hdr_fail(const struct vu_hdr *h, const struct vu_limits *lim, struct vub_err *err)
{
    uint32_t type = h->flags & VU_F_TYPE_MASK;
    /* the name only for a failure's text: not looked up per message */
#define name vu_cmd_name(h->cmd)

    if (h->msg_size < VU_HDR_SIZE)
        return vub_fail(err, -EINVAL, "%s: msg_size %u is smaller than the header (16)",
                       name, h->msg_size);
    if (lim && h->msg_size > lim->max_msg_size)
        return vub_fail(err, -E2BIG, "%s: msg_size %u exceeds the limit %u", name,
                       h->msg_size, lim->max_msg_size);
    if (h->flags & ~VU_F_KNOWN)
        return vub_fail(err, -EINVAL, "%s: unknown header flags 0x%x", name,
                       h->flags & ~VU_F_KNOWN);
    if (type != VU_F_TYPE_CMD && type != VU_F_TYPE_REPLY)
        return vub_fail(err, -EINVAL, "%s: invalid message type %u", name, type);
    if (type == VU_F_TYPE_CMD) {
        if (h->flags & VU_F_ERROR)
            return vub_fail(err, -EINVAL, "%s: Error flag in a command", name);
        if (h->error_no != 0)
            return vub_fail(err, -EINVAL, "%s: error_no %u in a command", name, h->error_no);
    } else {
        if (h->flags & VU_F_NO_REPLY)
            return vub_fail(err, -EINVAL, "%s: No_reply flag in a reply", name);
        if (!(h->flags & VU_F_ERROR) && h->error_no != 0)
            return vub_fail(err, -EINVAL, "%s: error_no %u in a reply without Error flag",
                           name, h->error_no);
    }
#undef name
    return 0;
}

int vu_hdr_check(const struct vu_hdr *h, const struct vu_limits *lim, struct vub_err *err)
{
    return vu_hdr_valid(h, lim) ? 0 : hdr_fail(h, lim, err);
}

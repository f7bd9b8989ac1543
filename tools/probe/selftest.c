/* SPDX-License-Identifier: MIT */
/* selftest.c - what the device self-tests share: one line per check,
 * little-endian register access over the socket, mmapped regions, memfds,
 * eventfd waits. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

bool st_check(struct st *t, bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(cond ? "ok   - " : "FAIL - ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    if (cond)
        t->passed++;
    else
        t->failed++;
    return cond;
}

void st_skip(struct st *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("skip - ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    t->skipped++;
}

void st_info(struct st *t, const char *fmt, ...)
{
    va_list ap;
    (void)t;
    va_start(ap, fmt);
    fputs("#      ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

int st_finish(struct st *t)
{
    printf("%d passed, %d failed, %d skipped\n", t->passed, t->failed, t->skipped);
    fflush(stdout);
    return t->failed ? 1 : 0;
}

static int rd(struct st *t, uint32_t region, uint64_t off, void *v, uint32_t n)
{
    uint8_t b[8];
    ssize_t r = vu_client_region_read(t->c, region, off, b, n);
    if (r < 0)
        return (int)r;
    if ((uint32_t)r != n)
        return -EIO;
    uint64_t x = 0;
    for (uint32_t i = 0; i < n; i++)
        x |= (uint64_t)b[i] << (8 * i);
    switch (n) {
    case 2: *(uint16_t *)v = (uint16_t)x; break;
    case 4: *(uint32_t *)v = (uint32_t)x; break;
    default: *(uint64_t *)v = x; break;
    }
    return 0;
}

static int wr(struct st *t, uint32_t region, uint64_t off, uint64_t v, uint32_t n)
{
    uint8_t b[8];
    for (uint32_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    ssize_t r = vu_client_region_write(t->c, region, off, b, n, false);
    if (r < 0)
        return (int)r;
    return (uint32_t)r == n ? 0 : -EIO;
}

int st_rd16(struct st *t, uint32_t region, uint64_t off, uint16_t *v) { return rd(t, region, off, v, 2); }
int st_rd32(struct st *t, uint32_t region, uint64_t off, uint32_t *v) { return rd(t, region, off, v, 4); }
int st_rd64(struct st *t, uint32_t region, uint64_t off, uint64_t *v) { return rd(t, region, off, v, 8); }
int st_wr16(struct st *t, uint32_t region, uint64_t off, uint16_t v) { return wr(t, region, off, v, 2); }
int st_wr32(struct st *t, uint32_t region, uint64_t off, uint32_t v) { return wr(t, region, off, v, 4); }
int st_wr64(struct st *t, uint32_t region, uint64_t off, uint64_t v) { return wr(t, region, off, v, 8); }

uint64_t st_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t st_wait_eventfd(int efd, int ms)
{
    struct pollfd p = {.fd = efd, .events = POLLIN};
    uint64_t end = st_now_ms() + (uint64_t)ms;
    for (;;) {
        int64_t left = (int64_t)(end - st_now_ms());
        if (left < 0)
            left = 0;
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return 0;
        uint64_t cnt;
        if (read(efd, &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
            return -errno;
        return (int64_t)cnt;
    }
}

int st_map_region(struct st *t, uint32_t index, struct st_map *m, struct vu_client_region *info)
{
    m->p = NULL;
    m->len = 0;
    info->fd = -1;
    int rc = vu_client_get_region_info(t->c, index, 0, info);
    if (rc < 0)
        return rc;
    if (!(info->info.flags & VU_REGION_INFO_FLAG_MMAP) || info->fd < 0 || !info->info.size) {
        if (info->fd >= 0)
            close(info->fd);
        info->fd = -1;
        return 0;
    }
    size_t len = info->info.size;
    void *p;
    if (!info->caps.has_sparse) {
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, info->fd, (off_t)info->info.offset);
        rc = p == MAP_FAILED ? -errno : 0;
    } else {
        /* Reserve the whole range, then put each area in its place. */
        p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        rc = p == MAP_FAILED ? -errno : 0;
        for (uint32_t a = 0; !rc && a < info->caps.nr_areas_kept; a++) {
            const struct vu_sparse_mmap_area *ar = &info->caps.areas[a];
            if (ar->offset > len || ar->size > len - ar->offset) {
                rc = -EINVAL;
                break;
            }
            if (!ar->size)
                continue;
            void *q = mmap((uint8_t *)p + ar->offset, ar->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                           info->fd, (off_t)(info->info.offset + ar->offset));
            if (q == MAP_FAILED)
                rc = -errno;
        }
        if (rc && p != MAP_FAILED)
            munmap(p, len);
    }
    close(info->fd);
    info->fd = -1;
    if (rc)
        return rc;
    m->p = p;
    m->len = len;
    return 0;
}

void st_unmap(struct st_map *m)
{
    if (m->p)
        munmap((void *)m->p, m->len);
    m->p = NULL;
}

int st_mem_alloc(struct st_mem *m, size_t len)
{
    m->p = NULL;
    m->len = len;
    m->fd = memfd_create("vfio-user-probe", MFD_CLOEXEC);
    if (m->fd < 0)
        return -errno;
    if (ftruncate(m->fd, (off_t)len) < 0)
        goto fail;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (p == MAP_FAILED)
        goto fail;
    m->p = p;
    memset(m->p, 0, len);
    return 0;
fail:;
    int e = -errno;
    close(m->fd);
    m->fd = -1;
    return e;
}

void st_mem_free(struct st_mem *m)
{
    if (m->p)
        munmap(m->p, m->len);
    if (m->fd >= 0)
        close(m->fd);
    m->p = NULL;
    m->fd = -1;
}

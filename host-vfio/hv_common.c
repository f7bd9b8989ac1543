/* SPDX-License-Identifier: MIT */
/* hv_common.c - error messages and PCI address syntax. */
#include "hv.h"
#include "hv_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Parse exactly `n` hex digits (n_min..n_max) from *s; advance *s. */
static int parse_hex(const char **s, unsigned n_min, unsigned n_max, unsigned long *out)
{
    unsigned long v = 0;
    unsigned n = 0;
    while (n < n_max && isxdigit((unsigned char)(*s)[n])) {
        char c = (char)tolower((unsigned char)(*s)[n]);
        v = v * 16 + (unsigned long)(c <= '9' ? c - '0' : c - 'a' + 10);
        n++;
    }
    if (n < n_min || isxdigit((unsigned char)(*s)[n]))
        return -EINVAL;
    *s += n;
    *out = v;
    return 0;
}

int hv_pci_addr_parse(const char *in, char out[HV_ADDR_LEN])
{
    unsigned long dom = 0, bus, dev, fn;
    const char *s = in;

    if (!in || !out)
        return -EINVAL;
    /* With a domain the string has two ':' before the '.'. */
    const char *dot = strchr(in, '.');
    const char *c1 = strchr(in, ':');
    if (!dot || !c1)
        return -EINVAL;
    const char *c2 = strchr(c1 + 1, ':');
    if (c2 && c2 < dot) {
        if (parse_hex(&s, 4, 6, &dom) || *s++ != ':')
            return -EINVAL;
    }
    if (parse_hex(&s, 2, 2, &bus) || *s++ != ':')
        return -EINVAL;
    if (parse_hex(&s, 2, 2, &dev) || *s++ != '.')
        return -EINVAL;
    if (parse_hex(&s, 1, 1, &fn) || *s != '\0')
        return -EINVAL;
    if (dev > 0x1f || fn > 7)
        return -EINVAL;
    snprintf(out, HV_ADDR_LEN, "%04lx:%02lx:%02lx.%lx", dom, bus, dev, fn);
    return 0;
}

int hv_path(char *buf, size_t bufsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, bufsz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= bufsz)
        return -ENAMETOOLONG;
    return 0;
}

void hv_strlcpy(char *dst, const char *src, size_t dstsz)
{
    if (!dstsz)
        return;
    size_t n = strnlen(src, dstsz - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void hv_iommu_get(struct hv_iommu *io)
{
    __atomic_add_fetch(&io->refs, 1, __ATOMIC_RELAXED);
}

void hv_iommu_put(struct hv_iommu *io)
{
    if (io && __atomic_sub_fetch(&io->refs, 1, __ATOMIC_ACQ_REL) == 0)
        io->ops->destroy(io);
}

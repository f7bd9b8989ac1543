/* SPDX-License-Identifier: MIT */
/*
 * vub_err.h - the one error reason of the project: src/ (the protocol
 * library), host-vfio/ and bridge/ all leave a failure's human-readable
 * reason in a struct vub_err and return a negative errno (DESIGN.md).
 * Libraries never print; the caller decides where the reason goes.
 */
#ifndef VUB_ERR_H
#define VUB_ERR_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct vub_err {
    char msg[512];   /* fits a policy file's path and a JSON path as well */
};

/* Format a reason into err (no-op when err is NULL) and return errnum, a
 * negative errno, so that a caller can `return vub_fail(err, -EINVAL, ...)`.
 * An errnum that is not negative (a caller's mistake, e.g. -errno with
 * errno 0) returns -EIO: a failure never reads as a success. */
__attribute__((format(printf, 3, 4)))
static inline int vub_fail(struct vub_err *err, int errnum, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return errnum < 0 ? errnum : -EIO;
}

#endif /* VUB_ERR_H */

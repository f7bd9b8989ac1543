/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the unit tests (header-only). */
#ifndef VUB_TESTUTIL_H
#define VUB_TESTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Number of open file descriptors of this process (from /proc/self/fd, not
 * counting the directory fd used to read it). Tests compare it before and
 * after an operation to prove no fd leaked. */
static inline int tu_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* Whether fd is open in this process. */
static inline bool tu_fd_is_open(int fd)
{
    return fd >= 0 && fcntl(fd, F_GETFD) != -1;
}

/* Under cmocka: the reason in a struct vub_err (or anything with .msg)
 * contains text. */
#define tu_assert_msg(err, text)                                                           \
    do {                                                                                   \
        if (!strstr((err).msg, (text)))                                                    \
            fail_msg("message '%s' lacks '%s'", (err).msg, (text));                        \
    } while (0)

#endif /* VUB_TESTUTIL_H */

/* SPDX-License-Identifier: MIT */
/*
 * hv_proc.c - who else holds a file open: the processes named in the error
 * when /dev/vfio/<group> is busy (a group is one process's at a time).
 */
#include "hv_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The command line of pid, NULs as blanks, cut to fit out. */
static void read_cmdline(const char *proc, const char *pid, char *out, size_t outsz)
{
    char path[HV_PATH_MAX];
    out[0] = '\0';
    if (hv_path(path, sizeof(path), "%s/%s/cmdline", proc, pid) < 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, outsz - 1);
    close(fd);
    if (n <= 0) {
        out[0] = '\0';
        return;
    }
    while (n > 0 && out[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++)
        if (out[i] == '\0' || !isprint((unsigned char)out[i]))
            out[i] = ' ';
    out[n] = '\0';
}

/* Whether one of pid's fds is a link to `path`. */
static bool holds(const char *proc, const char *pid, const char *path)
{
    char dir[HV_PATH_MAX];
    if (hv_path(dir, sizeof(dir), "%s/%s/fd", proc, pid) < 0)
        return false;
    DIR *d = opendir(dir);
    if (!d)
        return false;   /* gone, or not ours to inspect */
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char lnk[HV_PATH_MAX], target[HV_PATH_MAX];
        if (e->d_name[0] == '.')
            continue;
        if (hv_path(lnk, sizeof(lnk), "%s/%s", dir, e->d_name) < 0)
            continue;
        ssize_t n = readlink(lnk, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strcmp(target, path) == 0;
    }
    closedir(d);
    return found;
}

int hv_proc_holders(const char *proc, const char *path, char *out, size_t outsz)
{
    if (!proc)
        proc = "/proc";
    if (outsz == 0)
        return -EINVAL;
    out[0] = '\0';
    DIR *d = opendir(proc);
    if (!d)
        return -errno;
    char self[24];
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    int count = 0;
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count < (int)HV_PROC_HOLDERS_MAX) {
        if (!isdigit((unsigned char)e->d_name[0]) || strcmp(e->d_name, self) == 0)
            continue;
        if (!holds(proc, e->d_name, path))
            continue;
        char cmd[96];
        read_cmdline(proc, e->d_name, cmd, sizeof(cmd));
        int w = snprintf(out + used, outsz - used, "%spid %s (%s)", count ? ", " : "",
                         e->d_name, cmd[0] ? cmd : "?");
        count++;
        if (w < 0 || (size_t)w >= outsz - used) {
            used = outsz - 1;   /* truncated: the count still tells */
            break;
        }
        used += (size_t)w;
    }
    closedir(d);
    return count;
}

/* SPDX-License-Identifier: MIT */
/* Finding (and ending) the processes that still reach a session's device file. */
#include "holders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* fds read per fd table and tasks per process, so a process cannot make a
 * scan unbounded (the kernel caps both anyway; these are far above). */
#define MAX_FDS_PER_TABLE (1u << 20)
#define MAX_TASKS         (1u << 16)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int kcmp(pid_t p1, pid_t p2, int type, unsigned long i1, unsigned long i2)
{
    return (int)syscall(SYS_kcmp, p1, p2, type, i1, i2);
}

int br_devfile_new(struct br_devfile **out, int fd, const struct br_file_range *ranges,
                   unsigned nranges, pid_t owner_pid, uid_t owner_uid)
{
    char path[64];
    struct stat st;
    struct br_devfile *f = NULL;
    int r;

    *out = NULL;
    if (fd < 0)
        return -EBADF;
    if (nranges > BR_HOLDERS_MAX_RANGES) {
        r = -E2BIG;
        goto fail;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        r = -ENOMEM;
        goto fail;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, f->link, sizeof(f->link) - 1);
    if (n < 0 || fstat(fd, &st) < 0) {
        r = -errno;
        free(f);
        goto fail;
    }
    if ((size_t)n >= sizeof(f->link) - 1) {
        r = -ENAMETOOLONG;
        free(f);
        goto fail;
    }
    f->link[n] = '\0';
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->shared_inode = strncmp(f->link, "anon_inode:", 11) == 0;
    for (unsigned i = 0; i < nranges; i++)
        f->ranges[i] = ranges[i];
    f->nranges = nranges;
    f->owner_pid = owner_pid;
    f->owner_uid = owner_uid;
    *out = f;
    return 0;
fail:
    close(fd);
    return r;
}

void br_devfile_free(struct br_devfile *f)
{
    if (!f)
        return;
    close(f->fd);
    free(f);
}

/* Look through one fd table (/proc/<pid>/task/<tid>/fd). 1 found (h->fd,
 * h->tid set), 0 not, -errno. *other: an fd with our link text that is
 * another open file. */
static int scan_fd_table(const struct br_devfile *f, pid_t pid, pid_t tid, struct br_holder *h,
                         bool *other)
{
    char path[64], link[BR_HOLDERS_LINK_MAX];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/fd", (int)pid, (int)tid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    size_t want = strlen(f->link);
    int r = 0;
    unsigned seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) && seen++ < MAX_FDS_PER_TABLE) {
        char *end;
        long fdn = strtol(e->d_name, &end, 10);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || fdn < 0 || fdn > INT32_MAX)
            continue;
        ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link));
        if (n < 0 || (size_t)n != want || memcmp(link, f->link, want) != 0)
            continue;
        /* Without kcmp (a kernel without CONFIG_KCMP, e.g. no
         * CHECKPOINT_RESTORE: ENOSYS) another VFIO device file cannot be
         * told from ours: it counts as ours. Refusing a client wrongly is
         * safe; serving one while a holder keeps the device is not. */
        int same = kcmp(getpid(), tid, KCMP_FILE, (unsigned long)f->fd, (unsigned long)fdn);
        if (same == 0 || (same < 0 && errno == ENOSYS)) {
            h->fd = (int)fdn;
            h->tid = tid;
            r = 1;
            break;
        }
        *other = true;
    }
    closedir(d);
    return r;
}

/* The range of f that off falls in, or NULL. */
static const struct br_file_range *in_ranges(const struct br_devfile *f, uint64_t off)
{
    for (unsigned i = 0; i < f->nranges; i++)
        if (off >= f->ranges[i].start && off < f->ranges[i].end)
            return &f->ranges[i];
    return NULL;
}

/* /proc/<pid>/maps: 1 a mapping of ours (h->map_start), 0 none, -errno.
 * *ambiguous: a mapping that looks like ours but cannot be attributed. */
static int scan_maps(const struct br_devfile *f, pid_t pid, bool other_kind,
                     struct br_holder *h, bool *ambiguous)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    int r = 0;
    while (getline(&line, &cap, fp) > 0) {
        unsigned long long start, end, off, ino;
        unsigned maj, min;
        int name = 0;
        char perms[8];
        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
                   &min, &ino, &name) < 7 || name <= 0)
            continue;
        if (makedev(maj, min) != f->dev || (ino_t)ino != f->ino)
            continue;
        char *nm = line + name;
        nm[strcspn(nm, "\n")] = '\0';
        if (strcmp(nm, f->link) != 0)
            continue;
        if (f->shared_inode) {
            const struct br_file_range *rg = in_ranges(f, off);
            if (!rg)
                continue;
            if (!rg->exact && other_kind) {
                *ambiguous = true;
                continue;
            }
        }
        h->mapped = true;
        h->map_start = start;
        r = 1;
        break;
    }
    free(line);
    fclose(fp);
    return r;
}

static void fill_ident(pid_t pid, struct br_holder *h)
{
    char path[64], buf[256];
    h->pid = pid;
    h->uid = (uid_t)-1;
    snprintf(h->comm, sizeof(h->comm), "?");
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *fp = fopen(path, "re");
    if (fp) {
        if (fgets(buf, sizeof(buf), fp)) {
            buf[strcspn(buf, "\n")] = '\0';
            size_t n = strnlen(buf, sizeof(h->comm) - 1);
            memcpy(h->comm, buf, n);
            h->comm[n] = '\0';
        }
        fclose(fp);
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    fp = fopen(path, "re");
    if (fp) {
        while (fgets(buf, sizeof(buf), fp)) {
            unsigned u;
            if (sscanf(buf, "Uid: %u", &u) == 1) {
                h->uid = (uid_t)u;
                break;
            }
        }
        fclose(fp);
    }
}

static int scan_pid(const struct br_devfile *f, pid_t pid, struct br_holder *h, bool *ambiguous)
{
    char path[64];
    memset(h, 0, sizeof(*h));
    h->fd = -1;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    bool other = false;
    int r = 0, first_err = 0;
    unsigned tasks = 0;
    struct dirent *e;
    /* Each task's fd table: threads normally share one (KCMP_FILES says so),
     * but clone() without CLONE_FILES gives a thread a table of its own. */
    while (r == 0 && (e = readdir(d)) && tasks++ < MAX_TASKS) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || tid <= 0 || tid > INT32_MAX)
            continue;
        if (tid != pid && kcmp(pid, (pid_t)tid, KCMP_FILES, 0, 0) == 0)
            continue;
        int t = scan_fd_table(f, pid, (pid_t)tid, h, &other);
        if (t < 0 && t != -ENOENT && !first_err)
            first_err = t;
        if (t > 0)
            r = 1;
    }
    closedir(d);
    if (r == 0) {
        /* Mappings are per process (threads share one mm). */
        int m = scan_maps(f, pid, other, h, ambiguous);
        if (m < 0)
            return first_err ? first_err : m;
        r = m;
    }
    if (r == 0 && first_err)
        return first_err;
    if (r > 0)
        fill_ident(pid, h);
    return r;
}

int br_holders_check_pid(const struct br_devfile *f, pid_t pid, struct br_holder *h)
{
    bool amb = false;
    return scan_pid(f, pid, h, &amb);
}

static pid_t g_keeper;

void br_holders_set_keeper(pid_t pid) { g_keeper = pid; }

int br_holders_scan(const struct br_devfile *f, pid_t skip, struct br_holders_scan *out)
{
    memset(out, 0, sizeof(*out));
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || pid <= 0 || pid > INT32_MAX)
            continue;
        if ((pid_t)pid == self || (skip > 0 && (pid_t)pid == skip) ||
            (g_keeper > 0 && (pid_t)pid == g_keeper))
            continue;
        struct br_holder h;
        bool amb = false;
        int r = scan_pid(f, (pid_t)pid, &h, &amb);
        if (amb)
            out->ambiguous++;
        if (r == -EACCES || r == -EPERM)
            out->uninspectable++;
        if (r <= 0)
            continue;   /* not a holder, or gone meanwhile */
        if (out->n < BR_HOLDERS_MAX)
            out->h[out->n++] = h;
        else
            out->truncated = true;
    }
    closedir(d);
    return 0;
}

int br_holders_wait(const struct br_devfile *f, const struct br_holders_scan *sc, bool kill,
                    int timeout_ms)
{
    struct pollfd pfd[BR_HOLDERS_MAX];
    size_t n = 0;
    pid_t self = getpid();

    for (size_t i = 0; i < sc->n; i++) {
        pid_t pid = sc->h[i].pid;
        if (pid <= 1 || pid == self)
            continue;
        int pfdn = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfdn < 0)
            continue;   /* gone */
        /* The pidfd pins this process: if it still holds the file now, the
         * signal cannot reach a newer process that reused the pid. */
        struct br_holder h;
        if (br_holders_check_pid(f, pid, &h) != 1 ||
            (kill && syscall(SYS_pidfd_send_signal, pfdn, SIGKILL, NULL, 0) < 0)) {
            close(pfdn);
            continue;
        }
        pfd[n++] = (struct pollfd){ .fd = pfdn, .events = POLLIN };
    }

    /* A pidfd becomes readable when its process has exited: by then its fd
     * tables are closed and its memory unmapped. */
    int left = (int)n;
    int64_t deadline = now_ms() + timeout_ms;
    while (left > 0) {
        int64_t wait = deadline - now_ms();
        if (wait < 0)
            wait = 0;
        int pr = poll(pfd, n, (int)wait);
        if (pr < 0 && errno != EINTR)
            break;
        left = 0;
        for (size_t i = 0; i < n; i++) {
            if (pfd[i].fd < 0)
                continue;
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
            } else {
                left++;
            }
        }
        if (wait == 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    return left;
}

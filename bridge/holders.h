/* SPDX-License-Identifier: MIT */
/*
 * holders.h - find every process that still reaches one open file of the
 * device (a session's device file, hv ops->mmap_fd) after its session ended,
 * and end them on request.
 *
 * Found:
 *  - an fd in any process's (or task's own) fd table that is the same open
 *    file as ours: readlink text equal to ours, then kcmp(KCMP_FILE) == 0.
 *    Exact; it finds copies passed on over SCM_RIGHTS once received.
 *  - a mapping of the file without an fd, in /proc/<pid>/maps of any
 *    process. When the file has an inode of its own (the simulator's memfd)
 *    the match is by st_dev/st_ino: exact. When the inode is shared with
 *    other files (an anon inode: the kernel's "[vfio-device]") the match is
 *    the same name and inode with an offset inside one of the given file
 *    ranges: an exact range (a BAR's bus address, which older kernels show
 *    there) always counts; a shared one (the region offset, index << 40,
 *    which newer kernels keep) counts only in a process that holds no other
 *    file of that name: there a mapping of ours cannot be told from one of
 *    its own device's (counted as `ambiguous`).
 * Not found: an fd in flight (sent over a socket, not yet received), a
 * process this one may not inspect (counted as `uninspectable`), and on a
 * shared inode a mapping kept by a process that also holds another device
 * file of the same kind.
 *
 * Library code: nothing here prints.
 */
#ifndef BR_HOLDERS_H
#define BR_HOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BR_HOLDERS_MAX        32u   /* holders reported by one scan */
#define BR_HOLDERS_MAX_RANGES 16u   /* file ranges of one device file */
#define BR_HOLDERS_LINK_MAX   128u  /* readlink text kept */
/* Longest wait for killed holders to be gone. */
#define BR_HOLDERS_KILL_WAIT_MS 5000

/* File offsets [start, end) that a mapping of the file may show in maps.
 * exact: only this device's files have them (a BAR's bus address, as older
 * kernels show it); otherwise any file of the same kind may (the region
 * offset, index << 40, the same for every vfio-pci device). */
struct br_file_range {
    uint64_t start, end;
    bool exact;
};

/* One open file to look for. */
struct br_devfile {
    int fd;                             /* our copy of it (kcmp's reference); owned */
    char link[BR_HOLDERS_LINK_MAX];     /* readlink of /proc/self/fd/<fd> */
    dev_t dev;
    ino_t ino;
    bool shared_inode;                  /* "anon_inode:...": dev/ino say little */
    unsigned nranges;
    struct br_file_range ranges[BR_HOLDERS_MAX_RANGES];
    pid_t owner_pid;                    /* the client it was given to (for logs) */
    uid_t owner_uid;
    struct br_devfile *next;            /* for the caller's list; not freed here */
    /* For the caller: when it last searched (0 = never) and whom it found. */
    uint64_t checked_ns;
    unsigned n_held;
    pid_t held_by[BR_HOLDERS_MAX];
};

struct br_holder {
    pid_t pid;                          /* the process (thread group) */
    uid_t uid;                          /* its real uid */
    char comm[17];
    int fd;                             /* an fd of it in task `tid`'s table, -1 = none */
    pid_t tid;
    bool mapped;                        /* a mapping of it (no fd needed) */
    uint64_t map_start;                 /* address of the first mapping found */
};

struct br_holders_scan {
    struct br_holder h[BR_HOLDERS_MAX];
    size_t n;
    bool truncated;                     /* more holders than BR_HOLDERS_MAX */
    unsigned uninspectable;             /* processes whose fds/maps could not be read */
    unsigned ambiguous;                 /* shared inode: mappings not attributable */
};

/* Take ownership of fd (closed on error too) and record what identifies its
 * open file. ranges/nranges: file offset ranges [start, end) that a mapping
 * of this device file has (nranges <= BR_HOLDERS_MAX_RANGES, else -E2BIG).
 * owner: the client's pid/uid. */
int br_devfile_new(struct br_devfile **out, int fd, const struct br_file_range *ranges,
                   unsigned nranges, pid_t owner_pid, uid_t owner_uid);
void br_devfile_free(struct br_devfile *f);

/* The service manager that keeps copies of this process's fds in its fd
 * store (bridge/fdstore.h): by design it holds every device file a session
 * had, and it is not a client, so scans skip it. 0: none. */
void br_holders_set_keeper(pid_t pid);

/* Scan every process but this one (and `skip`, if > 0, and the keeper) for
 * the file.
 * 0 (out->n holders) or -errno if /proc cannot be read at all. */
int br_holders_scan(const struct br_devfile *f, pid_t skip, struct br_holders_scan *out);

/* Whether process `pid` holds the file now (1), not (0), or cannot be read
 * (-errno, -ENOENT when it is gone). h filled when it holds. */
int br_holders_check_pid(const struct br_devfile *f, pid_t pid, struct br_holder *h);

/* With kill: SIGKILL every holder of the scan that still holds the file
 * (re-checked after a pidfd is taken, so a reused pid is never hit; never
 * pid 1 nor this process). Then wait up to timeout_ms for those holders to
 * be gone (without kill: for them to exit on their own, e.g. a client that
 * is dying and whose fd table is being closed). Returns how many are still
 * alive at the end (0 = all gone). */
int br_holders_wait(const struct br_devfile *f, const struct br_holders_scan *sc, bool kill,
                    int timeout_ms);

#endif /* BR_HOLDERS_H */

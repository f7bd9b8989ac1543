/* SPDX-License-Identifier: MIT */
/* proc.c - the bridge process: spawning it, waiting for it to listen, and
 * reading its CPU time and memory from /proc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SPAWN_TIMEOUT_NS (60ull * 1000000000ull)  /* TCG guests are slow */
#define STOP_TIMEOUT_MS 5000

static int read_text(const char *path, char *buf, size_t sz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sz - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = 0;
    return (int)n;
}

static long status_kib(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    if (!p)
        return 0;
    return strtol(p + strlen(key), NULL, 10);
}

int bench_proc_read(pid_t pid, struct bench_proc_stat *out)
{
    char path[96], buf[4096];
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((rc = read_text(path, buf, sizeof(buf))) < 0)
        return rc;
    /* fields after the command name (which may hold spaces): state is 3,
     * utime 14, stime 15 */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EPROTO;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -EPROTO;
    out->ticks = (long long)(ut + st);

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((rc = read_text(path, buf, sizeof(buf))) < 0)
        return rc;
    out->rss = status_kib(buf, "VmRSS:");
    out->anon = status_kib(buf, "RssAnon:");
    out->file = status_kib(buf, "RssFile:");
    out->shmem = status_kib(buf, "RssShmem:");

    /* run time and context switches of every thread */
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char tp[160];
        snprintf(tp, sizeof(tp), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
        if (read_text(tp, buf, sizeof(buf)) > 0)
            out->sched_ns += strtoll(buf, NULL, 10);
        snprintf(tp, sizeof(tp), "/proc/%d/task/%.16s/status", (int)pid, de->d_name);
        if (read_text(tp, buf, sizeof(buf)) > 0)
            out->switches += status_kib(buf, "\nvoluntary_ctxt_switches:") +
                             status_kib(buf, "nonvoluntary_ctxt_switches:");
    }
    closedir(d);
    return 0;
}

static int try_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int bench_bridge_spawn(const struct bench_config *cfg, struct bench_bridge *b,
                       uint64_t *startup_ns, unsigned idx)
{
    char devarg[64];
    const char *argv[16 + 2 * 8];
    int argc = 0;

    memset(b, 0, sizeof(*b));
    b->pid = -1;
    snprintf(b->sock, sizeof(b->sock), "%s/%s", cfg->sockdir,
             cfg->sock_name ? cfg->sock_name : "bridge.sock");
    snprintf(b->log, sizeof(b->log), "%s/bridge-%u.log", cfg->sockdir, idx);
    unlink(b->sock);

    argv[argc++] = cfg->bridge_path;
    if (cfg->sim) {
        argv[argc++] = "--sim=edu";
    } else {
        snprintf(devarg, sizeof(devarg), "%s", cfg->device);
        argv[argc++] = "--device";
        argv[argc++] = devarg;
    }
    argv[argc++] = "--socket";
    argv[argc++] = b->sock;
    for (unsigned i = 0; i < cfg->nbridge_args; i++)
        argv[argc++] = cfg->bridge_args[i];
    argv[argc] = NULL;

    int logfd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0)
        return -errno;
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(logfd);
        return e;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    b->pid = pid;

    for (;;) {
        int rc = try_connect(b->sock);
        uint64_t t = bench_now_ns() - t0;
        if (rc == 0) {
            *startup_ns = t;
            return 0;
        }
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            b->pid = -1;
            fprintf(stderr, "vfio-user-bench: the bridge exited (%s %d) before listening\n",
                    WIFEXITED(status) ? "status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            bench_bridge_dump_log(b);
            return -ECHILD;
        }
        if (t > SPAWN_TIMEOUT_NS) {
            fprintf(stderr, "vfio-user-bench: the bridge did not listen on %s within %llu s\n",
                    b->sock, SPAWN_TIMEOUT_NS / 1000000000ull);
            bench_bridge_stop(b);
            bench_bridge_dump_log(b);
            return -ETIMEDOUT;
        }
        struct timespec ts = {0, 100000};  /* 100 us: the start-up resolution */
        nanosleep(&ts, NULL);
    }
}

int bench_bridge_stop(struct bench_bridge *b)
{
    int status = 0;
    if (b->pid <= 0)
        return 0;
    kill(b->pid, SIGTERM);
    for (int ms = 0; ms < STOP_TIMEOUT_MS; ms++) {
        pid_t w = waitpid(b->pid, &status, WNOHANG);
        if (w == b->pid) {
            b->pid = -1;
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &status, 0);
    b->pid = -1;
    return -ETIMEDOUT;
}

void bench_bridge_dump_log(const struct bench_bridge *b)
{
    char buf[4096];
    int fd = open(b->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    fprintf(stderr, "---- bridge log (%s) ----\n%s---- end of bridge log ----\n", b->log, buf);
}

/* SPDX-License-Identifier: MIT */
/*
 * fdstore_keeper - systemd's side of the notify socket and the file
 * descriptor store, for tests where systemd is not PID 1 (the testbed
 * guest's init is busybox). It behaves as a unit with Type=notify,
 * NotifyAccess=main, FileDescriptorStoreMax=8192, Restart=on-failure,
 * RestartSec=0 would (sd_notify(3), systemd.service(5),
 * https://systemd.io/FILE_DESCRIPTOR_STORE/):
 *  - datagrams only from the main process (SCM_CREDENTIALS) count;
 *  - FDSTORE=1 keeps the fds sent with it under FDNAME= (default
 *    "stored"), one copy per open file (a second copy of a kept file is
 *    dropped, as systemd does); FDSTOREREMOVE=1 closes every fd named
 *    FDNAME=;
 *  - the main process exiting other than with status 0 (a signal, a crash,
 *    exit 1) starts it again at once with the kept fds as 3, 4, ... and
 *    LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES (a restart, the store kept);
 *  - SIGUSR1 to the keeper is `systemctl restart`: SIGTERM to the main
 *    process, and when it has exited a new start with the store kept;
 *  - SIGTERM to the keeper is `systemctl stop`: SIGTERM to the main
 *    process, then the store is dropped and the keeper exits.
 * Events go to EVENTS, one line each with CLOCK_MONOTONIC microseconds:
 *   start PID T | ready PID T | exit PID STATUS T | store N (after a change)
 * and the main process's pid to PIDFILE at each start.
 *
 * Exit 2 or 3 is not restarted (the unit's RestartPreventExitStatus=).
 *
 * Usage: fdstore_keeper DIR -- PROGRAM ARGS...   (DIR gets notify, pid, events)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_STORE 8192
#define MAX_FDS_PER_MSG 253

struct kept {
    int fd;
    char name[256];
};
static struct kept store[MAX_STORE];
static size_t n_store;
static FILE *events;
static char dir[4096];

static unsigned long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(events, fmt, ap);
    va_end(ap);
    fprintf(events, " %llu\n", now_us());
    fflush(events);
}

static bool same_file(int a, int b)
{
    pid_t me = getpid();
    return syscall(SYS_kcmp, (long)me, (long)me, (long)KCMP_FILE, (long)a, (long)b) == 0;
}

static void keep_fd(int fd, const char *name)
{
    for (size_t i = 0; i < n_store; i++) {
        if (same_file(store[i].fd, fd)) {
            close(fd);
            return;
        }
    }
    if (n_store == MAX_STORE) {
        fprintf(stderr, "fdstore_keeper: store full, dropping %s\n", name);
        close(fd);
        return;
    }
    store[n_store].fd = fd;
    snprintf(store[n_store].name, sizeof(store[n_store].name), "%s", name);
    n_store++;
}

static void remove_name(const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < n_store; i++) {
        if (strcmp(store[i].name, name) == 0)
            close(store[i].fd);
        else
            store[k++] = store[i];
    }
    n_store = k;
}

static pid_t start(char **argv)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid > 0) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/pid", dir);
        FILE *f = fopen(p, "w");
        if (f) {
            fprintf(f, "%d\n", (int)pid);
            fclose(f);
        }
        event("start %d", (int)pid);
        return pid;
    }
    /* the kept fds as 3, 4, ...: first out of the way, then in place */
    int *tmp = calloc(n_store + 1, sizeof(int));
    for (size_t i = 0; i < n_store; i++)
        tmp[i] = fcntl(store[i].fd, F_DUPFD, 3 + (int)n_store);
    for (size_t i = 0; i < n_store; i++) {
        dup2(tmp[i], 3 + (int)i);
        close(tmp[i]);
    }
    size_t len = 1;
    for (size_t i = 0; i < n_store; i++)
        len += strlen(store[i].name) + 1;
    char *names = calloc(len, 1);
    for (size_t i = 0; i < n_store; i++) {
        if (i)
            strcat(names, ":");
        strcat(names, store[i].name);
    }
    char num[32];
    snprintf(num, sizeof(num), "%d", (int)getpid());
    setenv("LISTEN_PID", num, 1);
    snprintf(num, sizeof(num), "%zu", n_store);
    setenv("LISTEN_FDS", num, 1);
    setenv("LISTEN_FDNAMES", names, 1);
    if (n_store == 0) {
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(argv[0], argv);
    perror("execv");
    _exit(127);
}

static void on_datagram(int sock, pid_t main_pid)
{
    char buf[4096];
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MSG)];
    } ctl;
    struct iovec iov = { buf, sizeof(buf) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = sizeof(ctl.b) };
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return;
    buf[n] = '\0';
    int fds[MAX_FDS_PER_MSG];
    size_t nfds = 0;
    pid_t sender = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET)
            continue;
        if (cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
            sender = uc.pid;
        } else if (cm->cmsg_type == SCM_RIGHTS) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k && nfds < MAX_FDS_PER_MSG; i++)
                memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
        }
    }
    if (sender != main_pid) {   /* NotifyAccess=main */
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        return;
    }
    bool fdstore = false, remove = false, ready = false;
    char name[256] = "stored";
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strcmp(line, "FDSTORE=1") == 0)
            fdstore = true;
        else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
            remove = true;
        else if (strcmp(line, "READY=1") == 0)
            ready = true;
        else if (strncmp(line, "FDNAME=", 7) == 0)
            snprintf(name, sizeof(name), "%s", line + 7);
    }
    if (fdstore)
        for (size_t i = 0; i < nfds; i++)
            keep_fd(fds[i], name);
    else
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
    if (remove)
        remove_name(name);
    if (fdstore || remove)
        event("store %zu", n_store);
    if (ready)
        event("ready %d", (int)main_pid);
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: fdstore_keeper DIR -- PROGRAM ARGS...\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    char p[4200];
    snprintf(p, sizeof(p), "%s/events", dir);
    events = fopen(p, "a");
    if (!events) {
        perror(p);
        return 1;
    }
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(dir) + sizeof("/notify") > sizeof(sa.sun_path)) {
        fprintf(stderr, "fdstore_keeper: %s: too long for a socket path\n", dir);
        return 2;
    }
    memcpy(sa.sun_path, dir, strlen(dir));
    memcpy(sa.sun_path + strlen(dir), "/notify", sizeof("/notify"));
    unlink(sa.sun_path);
    int one = 1;
    if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
        perror("notify socket");
        return 1;
    }
    int big = 8 << 20;
    (void)setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    pid_t main_pid = start(argv + 3);
    bool restart_wanted = false, stopping = false;
    for (;;) {
        struct pollfd pf[2] = { { sock, POLLIN, 0 }, { sfd, POLLIN, 0 } };
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            return 1;
        /* notify messages before the exit they may precede (systemd does too) */
        if (pf[0].revents & POLLIN) {
            on_datagram(sock, main_pid);
            continue;
        }
        if (!(pf[1].revents & POLLIN))
            continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGTERM) {
            if (si.ssi_signo == SIGUSR1)
                restart_wanted = true;
            else
                stopping = true;
            kill(main_pid, SIGTERM);
            continue;
        }
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            if (w != main_pid)
                continue;
            /* drain what it sent before it died */
            struct pollfd d = { sock, POLLIN, 0 };
            while (poll(&d, 1, 0) == 1)
                on_datagram(sock, main_pid);
            if (WIFSIGNALED(st))
                event("exit %d signal-%d", (int)w, WTERMSIG(st));
            else
                event("exit %d status-%d", (int)w, WEXITSTATUS(st));
            bool failed = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
            /* RestartPreventExitStatus=2 3 */
            bool prevent = WIFEXITED(st) && (WEXITSTATUS(st) == 2 || WEXITSTATUS(st) == 3);
            if (stopping || prevent || (!failed && !restart_wanted)) {
                while (n_store)
                    close(store[--n_store].fd);
                event("store %zu", n_store);
                return 0;
            }
            restart_wanted = false;
            main_pid = start(argv + 3);
        }
    }
}

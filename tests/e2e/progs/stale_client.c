/* SPDX-License-Identifier: MIT */
/*
 * stale_client SOCKET fd-and-map|map-only DIR - a client that leaves
 * something behind (issue 13). It negotiates, takes the region fd of BAR0
 * (edu), maps BAR0's first page, checks it reaches the device (edu's id
 * register 0x010000ed), then forks a keeper and exits, which disconnects it.
 * The keeper closes the socket and keeps the mapping (and the fd with
 * fd-and-map), writes its pid to DIR/keeper.pid and waits. On each SIGUSR1
 * it tries the device again and writes DIR/keeper.result:
 *   "reached 1" when edu answered through the mapping (id register, and the
 *   liveness register inverting what was written) or through the fd
 *   (VFIO_DEVICE_GET_INFO, pread of the id register); "reached 0" if not.
 * Exit status of stale_client: 0 once the keeper is set up.
 *
 * e2e-needs: vuproto
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu_regs.h"
#include "vu_client.h"

static volatile sig_atomic_t g_poke;
static sigjmp_buf g_bus;

static void on_usr1(int sig) { (void)sig; g_poke = 1; }
static void on_bus(int sig) { (void)sig; siglongjmp(g_bus, 1); }

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512], tmp[520];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* Through the mapping: 1 reached, 0 not (SIGBUS or wrong values). */
static int try_map(volatile uint32_t *bar)
{
    if (sigsetjmp(g_bus, 1))
        return 0;
    uint32_t id = bar[0];
    bar[EDU_LIVENESS / 4] = 0x12345678u;
    uint32_t live = bar[EDU_LIVENESS / 4];
    return id == EDU_ID_VALUE && live == ~0x12345678u;
}

/* Through the fd: 1 if the device answers an ioctl and a region read. */
static int try_fd(int fd, uint64_t bar_off)
{
    if (fd < 0)
        return 0;
    struct vfio_device_info di = { .argsz = sizeof(di) };
    uint32_t id = 0;
    if (ioctl(fd, VFIO_DEVICE_GET_INFO, &di) < 0)
        return 0;
    return pread(fd, &id, 4, (off_t)bar_off) == 4 && id == EDU_ID_VALUE;
}

static void keeper(const char *dir, volatile uint32_t *bar, int fd, uint64_t bar_off)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (write_file(dir, "keeper.pid", buf) < 0)
        _exit(1);
    for (;;) {
        while (!g_poke)
            pause();
        g_poke = 0;
        int m = try_map(bar), f = try_fd(fd, bar_off);
        snprintf(buf, sizeof(buf), "reached %d\nvia_map %d\nvia_fd %d\n", m || f, m, f);
        write_file(dir, "keeper.result", buf);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[2], "fd-and-map") && strcmp(argv[2], "map-only"))) {
        fprintf(stderr, "usage: stale_client SOCKET fd-and-map|map-only DIR\n");
        return 2;
    }
    bool keep_fd = strcmp(argv[2], "fd-and-map") == 0;
    const char *dir = argv[3];
    struct vu_client *c = NULL;
    struct vub_err e = { "" };
    if (vu_client_connect(argv[1], &c, &e) < 0) {
        fprintf(stderr, "stale_client: connect: %s\n", e.msg);
        return 1;
    }
    vu_client_set_timeout(c, 20000);
    if (vu_client_negotiate(c, NULL, NULL) < 0) {
        fprintf(stderr, "stale_client: negotiate: %s\n", vu_client_error(c));
        return 1;
    }
    struct vu_client_region r;
    if (vu_client_get_region_info(c, 0, 0, &r) < 0 || r.fd < 0) {
        fprintf(stderr, "stale_client: BAR0 has no region fd\n");
        return 1;
    }
    volatile uint32_t *bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd,
                                  (off_t)r.info.offset);
    if (bar == MAP_FAILED) {
        fprintf(stderr, "stale_client: mmap BAR0: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_bus };
    sigaction(SIGBUS, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    if (!try_map(bar) || !try_fd(r.fd, r.info.offset)) {
        fprintf(stderr, "stale_client: BAR0 does not answer like edu while connected\n");
        return 1;
    }
    printf("stale_client: connected, BAR0 mapped and answering; leaving a keeper (%s)\n",
           argv[2]);
    fflush(stdout);

    int ready[2];
    if (pipe(ready) < 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(ready[0]);
        close(vu_client_fd(c));   /* the keeper is not connected */
        if (!keep_fd)
            close(r.fd);
        /* Not in the scenario's process group: a shell's kill of the
         * group does not end it by accident. */
        setsid();
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
            if (nul > 2)
                close(nul);
        }
        if (write(ready[1], "R", 1) != 1)
            _exit(1);
        close(ready[1]);
        keeper(dir, bar, keep_fd ? r.fd : -1, r.info.offset);
    }
    close(ready[1]);
    char ch;
    if (read(ready[0], &ch, 1) != 1) {
        fprintf(stderr, "stale_client: the keeper did not start\n");
        return 1;
    }
    /* Wait for its pid file, so the scenario can read it at once. */
    char path[512];
    snprintf(path, sizeof(path), "%s/keeper.pid", dir);
    for (int i = 0; i < 200 && access(path, F_OK) != 0; i++)
        usleep(10000);
    printf("stale_client: keeper pid %d; disconnecting\n", (int)pid);
    munmap((void *)bar, 4096);
    close(r.fd);
    vu_client_close(c);
    return 0;
}

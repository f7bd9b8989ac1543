/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum br_log_level g_level = BR_LOG_INFO;
static char g_device[32];
/* A thread serving one function of a group names its own device. */
static _Thread_local char t_device[32];
static int g_journal = -1; /* -1 unknown, 0 no, 1 stderr is the journal */

void br_log_set_device(const char *addr)
{
    snprintf(g_device, sizeof(g_device), "%s", addr ? addr : "");
}

void br_log_set_thread_device(const char *addr)
{
    snprintf(t_device, sizeof(t_device), "%s", addr ? addr : "");
}

void br_log_set_level(enum br_log_level lvl) { g_level = lvl; }
enum br_log_level br_log_get_level(void) { return g_level; }
bool br_log_enabled(enum br_log_level lvl) { return lvl <= g_level; }

int br_log_parse_level(const char *s, enum br_log_level *out)
{
    static const struct { const char *name; enum br_log_level lvl; } names[] = {
        { "err", BR_LOG_ERR }, { "error", BR_LOG_ERR },
        { "warn", BR_LOG_WARN }, { "warning", BR_LOG_WARN },
        { "info", BR_LOG_INFO }, { "debug", BR_LOG_DEBUG },
    };
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].lvl;
            return 0;
        }
    }
    return -EINVAL;
}

/* systemd sets JOURNAL_STREAM=<dev>:<ino> for the stream it connected to
 * stdout/stderr; if stderr is that stream, use syslog priority prefixes. */
static bool stderr_is_journal(void)
{
    if (g_journal < 0) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        g_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
                    fstat(STDERR_FILENO, &st) == 0 &&
                    (unsigned long long)st.st_dev == dev &&
                    (unsigned long long)st.st_ino == ino;
    }
    return g_journal == 1;
}

void br_log(enum br_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    br_vlog(lvl, fmt, ap);
    va_end(ap);
}

uint64_t br_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void br_ratelimit_init(struct br_ratelimit *rl, unsigned burst, unsigned interval_ms)
{
    memset(rl, 0, sizeof(*rl));
    rl->burst = burst;
    rl->interval_ns = (uint64_t)interval_ms * 1000000ull;
}

static bool interval_over(const struct br_ratelimit *rl, uint64_t now)
{
    return !rl->started || now - rl->begin_ns >= rl->interval_ns;
}

unsigned br_ratelimit_flush(struct br_ratelimit *rl, uint64_t now_ns)
{
    if (!rl->suppressed || !interval_over(rl, now_ns))
        return 0;
    unsigned n = rl->suppressed;
    rl->suppressed = 0;
    return n;
}

bool br_ratelimit_allow(struct br_ratelimit *rl, uint64_t now_ns, unsigned *summary)
{
    if (summary)
        *summary = br_ratelimit_flush(rl, now_ns);
    if (interval_over(rl, now_ns)) {
        rl->started = true;
        rl->begin_ns = now_ns;
        rl->used = 0;
    }
    if (rl->used < rl->burst) {
        rl->used++;
        return true;
    }
    rl->suppressed++;
    return false;
}

int64_t br_ratelimit_due_ns(const struct br_ratelimit *rl, uint64_t now_ns)
{
    if (!rl->suppressed)
        return -1;
    if (interval_over(rl, now_ns))
        return 0;
    return (int64_t)(rl->interval_ns - (now_ns - rl->begin_ns));
}

void br_vlog(enum br_log_level lvl, const char *fmt, va_list ap)
{
    static const char *const lvl_name[] = { "error", "warn", "info", "debug" };
    static const int syslog_prio[] = { 3, 4, 6, 7 };
    if (!br_log_enabled(lvl))
        return;
    int saved = errno;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    const char *dev = t_device[0] ? t_device : g_device;
    /* one fprintf per line so concurrent writers do not interleave inside it */
    if (stderr_is_journal())
        fprintf(stderr, "<%d>%s%s%s%s\n", syslog_prio[lvl], dev[0] ? "[" : "", dev,
                dev[0] ? "] " : "", msg);
    else
        fprintf(stderr, "vfio-user-bridge%s%s%s %s: %s\n", dev[0] ? "[" : "", dev,
                dev[0] ? "]" : "", lvl_name[lvl], msg);
    errno = saved;
}

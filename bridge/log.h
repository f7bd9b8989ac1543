/* SPDX-License-Identifier: MIT */
/*
 * log.h - the daemon's one log function. Lines go to stderr, prefixed with
 * the program name and the device address:
 *     vfio-user-bridge[0000:01:00.0] warn: client pid 42 uid 1000: DMA_MAP: ...
 * When stderr is connected to the systemd journal ($JOURNAL_STREAM names
 * stderr) the line carries a "<N>" syslog priority prefix instead, which
 * journald turns into the entry's priority.
 */
#ifndef BR_LOG_H
#define BR_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum br_log_level {
    BR_LOG_ERR = 0,
    BR_LOG_WARN = 1,
    BR_LOG_INFO = 2,
    BR_LOG_DEBUG = 3,
};

/* Device address shown in every line (copied; NULL = none). */
void br_log_set_device(const char *addr);
/* The same for the calling thread only (a thread serving one function of
 * a group: bridge/group.h); "" or NULL = the process's. */
void br_log_set_thread_device(const char *addr);
void br_log_set_level(enum br_log_level lvl);
enum br_log_level br_log_get_level(void);
/* "err", "error", "warn", "warning", "info", "debug" -> level; -EINVAL. */
int br_log_parse_level(const char *s, enum br_log_level *out);
/* Whether a message at lvl would be printed (to skip costly formatting). */
bool br_log_enabled(enum br_log_level lvl);

void br_log(enum br_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void br_vlog(enum br_log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t br_now_ns(void);

/* A rate limit for lines a peer can cause at will (connects, refusals):
 * at most `burst` lines per interval; the lines beyond are counted, and
 * once the interval is over the count is handed back for one summary line.
 * Times are passed in (br_now_ns()) so that tests can drive the clock. */
struct br_ratelimit {
    unsigned burst;
    uint64_t interval_ns;
    uint64_t begin_ns;       /* start of the current interval */
    unsigned used;           /* lines logged in it */
    unsigned suppressed;     /* lines not logged since the last summary */
    bool started;
};
void br_ratelimit_init(struct br_ratelimit *rl, unsigned burst, unsigned interval_ms);
/* Whether one more line may be logged at now_ns. *summary gets the number of
 * lines suppressed in an interval that has ended (log that first), else 0.
 * With summary NULL the count is kept for a later call, and then covers more
 * than one interval. */
bool br_ratelimit_allow(struct br_ratelimit *rl, uint64_t now_ns, unsigned *summary);
/* The count of suppressed lines if their interval has ended at now_ns (and
 * reset it), else 0: for a timer, so the summary does not wait for the next
 * event. */
unsigned br_ratelimit_flush(struct br_ratelimit *rl, uint64_t now_ns);
/* Nanoseconds until br_ratelimit_flush has something to say, or -1. */
int64_t br_ratelimit_due_ns(const struct br_ratelimit *rl, uint64_t now_ns);

#define br_err(...)   br_log(BR_LOG_ERR, __VA_ARGS__)
#define br_warn(...)  br_log(BR_LOG_WARN, __VA_ARGS__)
#define br_info(...)  br_log(BR_LOG_INFO, __VA_ARGS__)
#define br_debug(...) do { if (br_log_enabled(BR_LOG_DEBUG)) br_log(BR_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif /* BR_LOG_H */

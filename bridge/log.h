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

#include <stdbool.h>

enum br_log_level {
    BR_LOG_ERR = 0,
    BR_LOG_WARN = 1,
    BR_LOG_INFO = 2,
    BR_LOG_DEBUG = 3,
};

/* Device address shown in every line (copied; NULL = none). */
void br_log_set_device(const char *addr);
void br_log_set_level(enum br_log_level lvl);
enum br_log_level br_log_get_level(void);
/* "err", "error", "warn", "warning", "info", "debug" -> level; -EINVAL. */
int br_log_parse_level(const char *s, enum br_log_level *out);
/* Whether a message at lvl would be printed (to skip costly formatting). */
bool br_log_enabled(enum br_log_level lvl);

void br_log(enum br_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define br_err(...)   br_log(BR_LOG_ERR, __VA_ARGS__)
#define br_warn(...)  br_log(BR_LOG_WARN, __VA_ARGS__)
#define br_info(...)  br_log(BR_LOG_INFO, __VA_ARGS__)
#define br_debug(...) do { if (br_log_enabled(BR_LOG_DEBUG)) br_log(BR_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif /* BR_LOG_H */

/* SPDX-License-Identifier: MIT */
/*
 * inject.h - fault injection rules (`--inject RULE`, docs/testing-clients.md):
 * which received commands a rule matches, which of those it picks, and what
 * it does instead of (or to) the bridge's answer. Pure: parsing, matching
 * and the deterministic choice; tap.c carries the faults out.
 *
 *   RULE   := CMD [ ':' COND { ',' COND } ] [ '@' WHEN ] '=' ACTION
 *   CMD    := a command name (REGION_READ, DEVICE_GET_REGION_INFO or
 *             GET_REGION_INFO, ...), its number, or ANY
 *   COND   := region=N   the region named by GET_REGION_INFO, REGION_READ,
 *                        REGION_WRITE (or any entry of REGION_WRITE_MULTI)
 *           | index=N    the IRQ index of GET_IRQ_INFO or SET_IRQS
 *           | iova=X     a DMA_MAP / DMA_UNMAP whose range contains X
 *           | offset=X   a REGION_READ / REGION_WRITE whose bytes contain X
 *   WHEN   := nth=N | every=K | prob=P [ ',seed=S' ]   (default: every match)
 *   ACTION := errno=NAME|N | delay=MS | drop | close | data=HEX
 *
 * Counting is per rule over the daemon's life (not per session), so that a
 * rule that closes the connection does not fire again on every reconnect.
 * Every rule counts every message it matches; when several rules fire on
 * one message, the first given acts.
 */
#ifndef BR_INJECT_H
#define BR_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vu_proto.h"

/* Rules one daemon takes (--inject is repeatable). */
#define BR_INJECT_MAX_RULES   16u
/* Longest rule text. */
#define BR_INJECT_MAX_TEXT    600u
/* Bytes in a data=HEX pattern. */
#define BR_INJECT_MAX_DATA    256u
/* Longest delay=MS (the loop keeps serving signals and the listener). */
#define BR_INJECT_MAX_DELAY_MS 600000u
/* Injections logged per rule at warning level; later ones at debug. */
#define BR_INJECT_MAX_LOGGED  100u

enum br_inject_action {
    BR_INJ_ERRNO = 1,  /* error reply with that errno; the handler does not run */
    BR_INJ_DELAY,      /* the handler runs; its reply is sent delay_ms later */
    BR_INJ_DROP,       /* the handler runs; its reply is never sent */
    BR_INJ_CLOSE,      /* the handler does not run; the session ends (quiesce) */
    BR_INJ_DATA,       /* REGION_READ: these bytes (repeated) instead of the device's */
};

enum br_inject_when {
    BR_INJ_ALWAYS = 0,
    BR_INJ_NTH,        /* the n-th match only (1-based) */
    BR_INJ_EVERY,      /* every k-th match: k, 2k, 3k, ... */
    BR_INJ_PROB,       /* each match with probability p, from a seeded generator */
};

#define BR_INJ_COND_REGION (1u << 0)
#define BR_INJ_COND_INDEX  (1u << 1)
#define BR_INJ_COND_IOVA   (1u << 2)
#define BR_INJ_COND_OFFSET (1u << 3)

struct br_inject_rule {
    char text[BR_INJECT_MAX_TEXT];  /* as given, for logs and the trace */
    int cmd;                        /* VU_CMD_*, or -1 = ANY */
    unsigned conds;                 /* BR_INJ_COND_* given */
    uint32_t region, index;
    uint64_t iova, offset;
    enum br_inject_when when;
    uint64_t n;                     /* NTH: n; EVERY: k */
    double prob;                    /* PROB: 0 < p <= 1 */
    uint64_t seed;
    enum br_inject_action action;
    int errnum;                     /* ERRNO: positive, 1..4095 */
    uint32_t delay_ms;              /* DELAY: 1..BR_INJECT_MAX_DELAY_MS */
    uint8_t data[BR_INJECT_MAX_DATA];
    size_t data_len;                /* DATA: 1..BR_INJECT_MAX_DATA */
};

/* Parse one rule. -EINVAL with a one-line reason in err (naming the part
 * of the rule that is wrong) for anything not in the grammar, a condition
 * that does not apply to the command (index= on REGION_READ), data= on
 * anything but REGION_READ, out-of-range numbers. */
int br_inject_parse(const char *text, struct br_inject_rule *out, struct vub_err *err);

/* The rules of one daemon and their counters. */
struct br_inject {
    size_t n;
    struct br_inject_rule rules[BR_INJECT_MAX_RULES];
    uint64_t matched[BR_INJECT_MAX_RULES];   /* messages each rule matched */
    uint64_t fired[BR_INJECT_MAX_RULES];     /* faults each rule caused */
    uint64_t rng[BR_INJECT_MAX_RULES];       /* PROB: generator state */
};

/* Parse n rule texts into inj. -EINVAL (reason in err, the rule named) or
 * -E2BIG for more than BR_INJECT_MAX_RULES. */
int br_inject_init(struct br_inject *inj, const char *const *texts, size_t n, struct vub_err *err);

/* Whether a rule's command and conditions match m (a decodable command;
 * a message its decoder refuses matches only ANY without conditions). */
bool br_inject_matches(const struct br_inject_rule *rule, const struct vu_msg *m);

/* Count m against every rule and return the index of the rule that acts on
 * it, or -1. Deterministic: the same rules and messages give the same
 * choices. */
int br_inject_pick(struct br_inject *inj, const struct vu_msg *m);

/* "errno=EIO", "delay=6000", "data=ffffffff" ... into buf (for the trace). */
void br_inject_action_str(const struct br_inject_rule *rule, char *buf, size_t sz);

/* Errno name (EIO) for n, or NULL. And the reverse: -EINVAL if unknown. */
const char *br_errno_name(int n);
int br_errno_parse(const char *s, int *out);

#endif /* BR_INJECT_H */

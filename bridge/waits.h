/* SPDX-License-Identifier: MIT */
/*
 * waits.h - bounded waits between a group's threads: condition variables
 * on the monotonic clock (a wall-clock step never stretches or cuts a wait)
 * and the absolute deadline of a wait of ms milliseconds from now.
 */
#ifndef BR_WAITS_H
#define BR_WAITS_H

#include <pthread.h>
#include <time.h>

static inline void br_cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

static inline struct timespec br_deadline_ms(unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * handlers.h - one handler per vfio-user command (handlers.c): decode
 * strictly, then act. Not all of them reach host-vfio: VERSION, GET_INFO and
 * GET_IRQ_INFO answer from the device facts (device.c) alone, GET_REGION_INFO
 * too (plus the device's mmap fd), DMA_READ/WRITE and migration are refused.
 * DMA_MAP/UNMAP and SET_IRQS go through the session's tables first (dma.c,
 * irq.c: accounting and limits, QEMU's SET_IRQS chunks merged into one
 * re-enable), so one message may be several host-vfio calls or none.
 * REGION_READ/WRITE(_MULTIPLE) and DEVICE_RESET call host-vfio directly after
 * their bounds checks.
 */
#ifndef BR_HANDLERS_H
#define BR_HANDLERS_H

#include "session.h"

/* Handle one received message: decode strictly, act, reply (unless the
 * command had No_reply). Error replies carry a positive errno; the
 * connection is kept after any error the client caused. The message's fds
 * not taken by a handler stay in m (the caller releases m).
 * Returns 0 to go on, or a negative errno when the reply could not be sent
 * (the session must then be closed). */
int br_handle_message(struct br_session *s, struct vu_msg *m);

#endif /* BR_HANDLERS_H */

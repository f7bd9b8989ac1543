/* SPDX-License-Identifier: MIT */
/*
 * handlers.h - one handler per vfio-user command (handlers.c), each one step
 * away from the host-vfio ops call it makes.
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

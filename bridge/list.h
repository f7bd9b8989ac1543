/* SPDX-License-Identifier: MIT */
/* list.h - `vfio-user-bridge list [--json]`: the host's PCI functions and
 * whether each could be exported. */
#ifndef BR_LIST_H
#define BR_LIST_H

#include <stdbool.h>
#include <stdio.h>

#include "hv.h"

/* Print entries as a table or as a JSON array. Returns 0 or -errno. */
int br_list_print(FILE *out, const struct hv_list_entry *e, size_t n, bool json);
/* hv_list(sysfs) then br_list_print. Errors are printed to stderr. Returns an
 * exit status. */
int br_cmd_list(const char *sysfs, bool json);

#endif /* BR_LIST_H */

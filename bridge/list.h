/* SPDX-License-Identifier: MIT */
/* list.h - `vfio-user-bridge list [--json]`: the host's PCI functions and
 * whether each could be exported. */
#ifndef BR_LIST_H
#define BR_LIST_H

#include <stdbool.h>
#include <stdio.h>

#include "hv.h"

/* One IOMMU group as `list` shows it: its members (indexes into the
 * entries), which of them one daemon can serve (bound to vfio-pci, the
 * group viable), and why none can. */
#define BR_LIST_GROUP_MEMBERS 32u
struct br_list_group {
    int number;
    size_t n, members[BR_LIST_GROUP_MEMBERS];   /* n may exceed the array */
    size_t n_export;                            /* members exportable */
    const char *why;                            /* n_export == 0: the reason */
};
/* The groups of entries e[0, n) in order of first appearance, at most max
 * into out; returns how many there are. */
size_t br_list_groups(const struct hv_list_entry *e, size_t n, struct br_list_group *out,
                      size_t max);
/* Print entries as a table (then one paragraph per IOMMU group: members,
 * what can be exported and how) or as a JSON array (each function with a
 * "group" object: number, members with their drivers, exportable,
 * functions one daemon serves, reason). Returns 0 or -errno. */
int br_list_print(FILE *out, const struct hv_list_entry *e, size_t n, bool json);
/* hv_list(sysfs) then br_list_print. Errors are printed to stderr. Returns an
 * exit status. */
int br_cmd_list(const char *sysfs, bool json);

#endif /* BR_LIST_H */

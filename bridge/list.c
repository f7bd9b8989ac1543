/* SPDX-License-Identifier: MIT */
#include "list.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static int print_json(FILE *out, const struct hv_list_entry *e, size_t n)
{
    json_object *arr = json_object_new_array();
    if (!arr)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char id[8];
        json_object *o = json_object_new_object();
        if (!o) {
            json_object_put(arr);
            return -ENOMEM;
        }
        json_object_object_add(o, "address", json_object_new_string(e[i].addr));
        snprintf(id, sizeof(id), "%04x", e[i].id.vendor);
        json_object_object_add(o, "vendor_id", json_object_new_string(id));
        snprintf(id, sizeof(id), "%04x", e[i].id.device);
        json_object_object_add(o, "device_id", json_object_new_string(id));
        json_object_object_add(o, "vendor", json_object_new_string(e[i].id.vendor_name));
        json_object_object_add(o, "device", json_object_new_string(e[i].id.device_name));
        json_object_object_add(o, "class", json_object_new_string(e[i].id.class_name));
        json_object_object_add(o, "driver",
                               e[i].driver[0] ? json_object_new_string(e[i].driver) : NULL);
        json_object_object_add(o, "iommu_group",
                               e[i].group >= 0 ? json_object_new_int(e[i].group) : NULL);
        json_object_object_add(o, "exportable", json_object_new_boolean(e[i].exportable));
        json_object_object_add(o, "reason",
                               e[i].exportable ? NULL : json_object_new_string(e[i].why));
        json_object_array_add(arr, o);
    }
    fprintf(out, "%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
    return 0;
}

int br_list_print(FILE *out, const struct hv_list_entry *e, size_t n, bool json)
{
    if (json)
        return print_json(out, e, n);
    for (size_t i = 0; i < n; i++) {
        char group[16] = "-";
        if (e[i].group >= 0)
            snprintf(group, sizeof(group), "%d", e[i].group);
        fprintf(out, "%s  %04x:%04x  %s %s (%s)\n    driver %s, IOMMU group %s: %s%s\n",
                e[i].addr, e[i].id.vendor, e[i].id.device, e[i].id.vendor_name,
                e[i].id.device_name, e[i].id.class_name, e[i].driver[0] ? e[i].driver : "none",
                group, e[i].exportable ? "exportable" : "not exportable: ",
                e[i].exportable ? "" : e[i].why);
    }
    return 0;
}

int br_cmd_list(const char *sysfs, bool json)
{
    struct hv_list_entry *e = NULL;
    size_t n = 0;
    struct vub_err err = { "" };
    int r = hv_list(sysfs ? sysfs : HV_SYSFS_DEFAULT, &e, &n, &err);
    if (r < 0) {
        fprintf(stderr, "vfio-user-bridge list: %s\n", err.msg[0] ? err.msg : strerror(-r));
        return 1;
    }
    r = br_list_print(stdout, e, n, json);
    free(e);
    return r < 0 ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
#include "list.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t br_list_groups(const struct hv_list_entry *e, size_t n, struct br_list_group *out,
                      size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].group < 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = e[j].group == e[i].group;
        if (seen)
            continue;
        if (k < max) {
            struct br_list_group *g = &out[k];
            *g = (struct br_list_group){ .number = e[i].group };
            const char *vfio_why = NULL;
            for (size_t j = i; j < n; j++) {
                if (e[j].group != g->number)
                    continue;
                if (g->n < BR_LIST_GROUP_MEMBERS)
                    g->members[g->n] = j;
                g->n++;
                g->n_export += e[j].exportable;
                if (!e[j].exportable && !vfio_why && strcmp(e[j].driver, "vfio-pci") == 0)
                    vfio_why = e[j].why;
            }
            if (!g->n_export)
                g->why = vfio_why ? vfio_why : "no member is bound to vfio-pci";
        }
        k++;
    }
    return k;
}

/* The group of entry i (NULL if it has none or beyond max). */
static const struct br_list_group *group_of(const struct br_list_group *g, size_t ng, int number)
{
    for (size_t i = 0; i < ng; i++)
        if (g[i].number == number)
            return &g[i];
    return NULL;
}

static json_object *group_json(const struct hv_list_entry *e, const struct br_list_group *g)
{
    json_object *o = json_object_new_object(), *mem = json_object_new_array(),
                *fns = json_object_new_array();
    if (!o || !mem || !fns) {
        json_object_put(o);
        json_object_put(mem);
        json_object_put(fns);
        return NULL;
    }
    size_t shown = g->n < BR_LIST_GROUP_MEMBERS ? g->n : BR_LIST_GROUP_MEMBERS;
    for (size_t i = 0; i < shown; i++) {
        const struct hv_list_entry *m = &e[g->members[i]];
        json_object *x = json_object_new_object();
        if (!x)
            continue;
        json_object_object_add(x, "address", json_object_new_string(m->addr));
        json_object_object_add(x, "driver", m->driver[0] ? json_object_new_string(m->driver)
                                                           : NULL);
        json_object_array_add(mem, x);
        if (m->exportable)
            json_object_array_add(fns, json_object_new_string(m->addr));
    }
    json_object_object_add(o, "number", json_object_new_int(g->number));
    json_object_object_add(o, "members", mem);
    json_object_object_add(o, "exportable", json_object_new_boolean(g->n_export > 0));
    json_object_object_add(o, "functions", fns);
    json_object_object_add(o, "reason", g->n_export ? NULL : json_object_new_string(g->why));
    return o;
}

static int print_json(FILE *out, const struct hv_list_entry *e, size_t n,
                      const struct br_list_group *groups, size_t ng)
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
        json_object_object_add(o, "vfio_cdev",
                               e[i].cdev[0] ? json_object_new_string(e[i].cdev) : NULL);
        /* what --iommu auto serves it with */
        json_object_object_add(o, "iommu",
                               json_object_new_string(e[i].cdev[0] ? "iommufd" : "type1"));
        json_object_object_add(o, "exportable", json_object_new_boolean(e[i].exportable));
        json_object_object_add(o, "reason",
                               e[i].exportable ? NULL : json_object_new_string(e[i].why));
        const struct br_list_group *g = e[i].group >= 0 ? group_of(groups, ng, e[i].group) : NULL;
        json_object_object_add(o, "group", g ? group_json(e, g) : NULL);
        json_object_array_add(arr, o);
    }
    fprintf(out, "%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
    return 0;
}

#define BR_LIST_MAX_GROUPS 1024u   /* groups summarised (the functions are listed anyway) */

static void print_groups(FILE *out, const struct hv_list_entry *e,
                         const struct br_list_group *groups, size_t ng)
{
    fprintf(out, "\nIOMMU groups (one daemon serves the functions of one group):\n");
    for (size_t i = 0; i < ng; i++) {
        const struct br_list_group *g = &groups[i];
        size_t shown = g->n < BR_LIST_GROUP_MEMBERS ? g->n : BR_LIST_GROUP_MEMBERS;
        fprintf(out, "  group %d:", g->number);
        for (size_t j = 0; j < shown; j++) {
            const struct hv_list_entry *m = &e[g->members[j]];
            fprintf(out, " %s (%s)", m->addr, m->driver[0] ? m->driver : "no driver");
        }
        if (g->n > shown)
            fprintf(out, " and %zu more", g->n - shown);
        if (!g->n_export) {
            fprintf(out, "\n    not exportable: %s\n", g->why);
            continue;
        }
        fprintf(out, "\n    exportable: vfio-user-bridge");
        for (size_t j = 0; j < shown; j++)
            if (e[g->members[j]].exportable)
                fprintf(out, " --device %s --socket PATH", e[g->members[j]].addr);
        fprintf(out, "\n");
    }
}

int br_list_print(FILE *out, const struct hv_list_entry *e, size_t n, bool json)
{
    struct br_list_group *groups = calloc(BR_LIST_MAX_GROUPS, sizeof(*groups));
    if (!groups)
        return -ENOMEM;
    size_t ng = br_list_groups(e, n, groups, BR_LIST_MAX_GROUPS);
    if (ng > BR_LIST_MAX_GROUPS)
        ng = BR_LIST_MAX_GROUPS;
    if (json) {
        int r = print_json(out, e, n, groups, ng);
        free(groups);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        char group[16] = "-";
        if (e[i].group >= 0)
            snprintf(group, sizeof(group), "%d", e[i].group);
        char cdev[40] = "";
        if (e[i].cdev[0])
            snprintf(cdev, sizeof(cdev), ", VFIO cdev %s", e[i].cdev);
        fprintf(out, "%s  %04x:%04x  %s %s (%s)\n    driver %s, IOMMU group %s%s: %s%s%s\n",
                e[i].addr, e[i].id.vendor, e[i].id.device, e[i].id.vendor_name,
                e[i].id.device_name, e[i].id.class_name, e[i].driver[0] ? e[i].driver : "none",
                group, cdev, e[i].exportable ? "exportable" : "not exportable: ",
                e[i].exportable ? "" : e[i].why,
                e[i].exportable ? (e[i].cdev[0] ? " (iommufd)" : " (type1)") : "");
    }
    if (ng)
        print_groups(out, e, groups, ng);
    free(groups);
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

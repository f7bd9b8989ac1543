/* SPDX-License-Identifier: MIT */
/* view.c - gather what a vfio-user server says about its device and print
 * it for people (lspci-like) or for machines (--json). */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

#define VIEW_MAX_REGIONS 16u  /* device-specific regions past 9 are shown up to this */
#define VIEW_MAX_IRQS 8u

struct view_region {
    int err;                  /* 0 or the negative errno of GET_REGION_INFO */
    struct vu_client_region r;
};

struct view_irq {
    int err;
    struct vu_irq_info info;
};

struct view {
    struct vu_caps server;
    struct vu_device_info dev;
    uint32_t nregions, nirqs;
    struct view_region regions[VIEW_MAX_REGIONS];
    struct view_irq irqs[VIEW_MAX_IRQS];
    int cfg_err;
    uint8_t cfg[4096];
    struct pv_config pc;
    struct pv_names names;
};

static const char *region_name(uint32_t i, char *buf, size_t n)
{
    if (i <= VU_PCI_BAR5_REGION_INDEX)
        snprintf(buf, n, "BAR%u", i);
    else if (i == VU_PCI_ROM_REGION_INDEX)
        snprintf(buf, n, "ROM");
    else if (i == VU_PCI_CONFIG_REGION_INDEX)
        snprintf(buf, n, "CONFIG");
    else if (i == VU_PCI_VGA_REGION_INDEX)
        snprintf(buf, n, "VGA");
    else
        snprintf(buf, n, "DEV%u", i);
    return buf;
}

static const char *irq_name(uint32_t i)
{
    static const char *const names[] = {"INTx", "MSI", "MSI-X", "ERR", "REQ"};
    return i < VU_PCI_NUM_IRQS ? names[i] : "other";
}

/* "A|B|C" from the set bits of v, named by names[bit]; unknown bits in hex. */
static const char *flag_str(uint32_t v, const char *const *names, unsigned nnames, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (unsigned b = 0; b < 32; b++) {
        if (!(v & (1u << b)))
            continue;
        int w;
        if (b < nnames && names[b])
            w = snprintf(buf + used, n - used, "%s%s", used ? "|" : "", names[b]);
        else
            w = snprintf(buf + used, n - used, "%s0x%x", used ? "|" : "", 1u << b);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, n, "none");
    return buf;
}

static const char *const REGION_FLAGS[] = {"READ", "WRITE", "MMAP", "CAPS"};
static const char *const IRQ_FLAGS[] = {"EVENTFD", "MASKABLE", "AUTOMASKED", "NORESIZE"};
static const char *const DEV_FLAGS[] = {"RESET", "PCI"};

static const char *size_str(uint64_t s, char *buf, size_t n)
{
    if (s >= (1ull << 30) && !(s & ((1ull << 30) - 1)))
        snprintf(buf, n, "%lluG", (unsigned long long)(s >> 30));
    else if (s >= (1ull << 20) && !(s & ((1ull << 20) - 1)))
        snprintf(buf, n, "%lluM", (unsigned long long)(s >> 20));
    else if (s >= 1024 && !(s & 1023))
        snprintf(buf, n, "%lluK", (unsigned long long)(s >> 10));
    else
        snprintf(buf, n, "%llu", (unsigned long long)s);
    return buf;
}

int probe_read_config(struct vu_client *c, uint8_t *buf, size_t len)
{
    const struct vu_caps *sc = vu_client_server_caps(c);
    size_t chunk = sc && sc->max_data_xfer_size ? sc->max_data_xfer_size : 256;
    if (chunk > 4096)
        chunk = 4096;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t r = vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, off, buf + off, (uint32_t)n);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -EIO;
        off += (size_t)r;
    }
    return 0;
}

static int gather(struct vu_client *c, struct view *v)
{
    int rc = vu_client_get_info(c, &v->dev);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-probe: DEVICE_GET_INFO: %s\n", vu_client_error(c));
        return rc;
    }
    v->nregions = v->dev.num_regions < VIEW_MAX_REGIONS ? v->dev.num_regions : VIEW_MAX_REGIONS;
    v->nirqs = v->dev.num_irqs < VIEW_MAX_IRQS ? v->dev.num_irqs : VIEW_MAX_IRQS;
    for (uint32_t i = 0; i < v->nregions; i++) {
        v->regions[i].r.fd = -1;
        v->regions[i].err = vu_client_get_region_info(c, i, 0, &v->regions[i].r);
        if (v->regions[i].r.fd >= 0) {
            close(v->regions[i].r.fd);
            v->regions[i].r.fd = 0;  /* remember that one came */
        } else {
            v->regions[i].r.fd = -1;
        }
    }
    for (uint32_t i = 0; i < v->nirqs; i++)
        v->irqs[i].err = vu_client_get_irq_info(c, i, &v->irqs[i].info);

    size_t cfglen = 256;
    if (v->nregions > VU_PCI_CONFIG_REGION_INDEX && !v->regions[VU_PCI_CONFIG_REGION_INDEX].err) {
        uint64_t s = v->regions[VU_PCI_CONFIG_REGION_INDEX].r.info.size;
        cfglen = s >= 4096 ? 4096 : s >= 256 ? 256 : (size_t)s;
    }
    v->cfg_err = probe_read_config(c, v->cfg, cfglen);
    if (!v->cfg_err) {
        pv_config_decode(v->cfg, cfglen, &v->pc);
        pv_lookup_names(&v->pc, &v->names);
    }
    return 0;
}

/* ---- text ------------------------------------------------------------------- */

static void print_field(const struct pv_field *f)
{
    switch (f->kind) {
    case PV_U64: printf(" %s=%llu", f->key, (unsigned long long)f->u); break;
    case PV_HEX: printf(" %s=0x%llx", f->key, (unsigned long long)f->u); break;
    case PV_BOOL: printf(" %s=%s", f->key, f->u ? "yes" : "no"); break;
    case PV_STR: printf(" %s=\"%s\"", f->key, f->s); break;
    }
}

static void print_bar(int i, uint32_t bar, const uint32_t *bars)
{
    if (!bar)
        return;
    if (bar & 1) {
        printf("    BAR%d: I/O at 0x%x\n", i, bar & ~3u);
        return;
    }
    unsigned type = (bar >> 1) & 3;
    uint64_t addr = bar & ~0xfu;
    if (type == 2 && i < 5)
        addr |= (uint64_t)bars[i + 1] << 32;
    printf("    BAR%d: memory at 0x%llx (%s%s)\n", i, (unsigned long long)addr,
           type == 2 ? "64-bit" : "32-bit", bar & 8 ? ", prefetchable" : "");
}

static void print_text(const char *sock, const struct view *v)
{
    char b1[128], b2[32], name[16];
    const struct pv_config *pc = &v->pc;

    printf("%s: vfio-user server\n", sock);
    printf("  server: max_msg_fds %u, max_data_xfer_size %llu, max_dma_maps %u, pgsizes 0x%llx%s%s\n",
           v->server.max_msg_fds, (unsigned long long)v->server.max_data_xfer_size,
           v->server.max_dma_maps, (unsigned long long)v->server.pgsizes,
           v->server.write_multiple ? ", write_multiple" : "",
           v->server.has_migration ? ", migration" : "");
    printf("  device: flags %s, %u regions, %u IRQ indexes\n",
           flag_str(v->dev.flags, DEV_FLAGS, 2, b1, sizeof(b1)), v->dev.num_regions, v->dev.num_irqs);

    if (v->cfg_err) {
        printf("  config space: cannot read (%s)\n", strerror(-v->cfg_err));
    } else {
        printf("  %04x:%04x %s [%04x]: %s %s (rev %02x)\n", pc->vendor, pc->device,
               v->names.class_name, pc->class_code >> 8, v->names.vendor, v->names.device, pc->revision);
        if (v->names.progif[0])
            printf("    prog-if %02x [%s]\n", pc->class_code & 0xff, v->names.progif);
        if (pc->subsys_vendor || pc->subsys_device)
            printf("    subsystem %04x:%04x %s\n", pc->subsys_vendor, pc->subsys_device, v->names.subsys);
    }

    printf("  regions:\n");
    for (uint32_t i = 0; i < v->nregions; i++) {
        const struct view_region *r = &v->regions[i];
        region_name(i, name, sizeof(name));
        if (r->err) {
            printf("    %u %-6s not available (%s)\n", i, name, strerror(-r->err));
            continue;
        }
        if (!r->r.info.size) {
            printf("    %u %-6s unused\n", i, name);
            continue;
        }
        printf("    %u %-6s size %s (0x%llx), flags %s", i, name, size_str(r->r.info.size, b2, sizeof(b2)),
               (unsigned long long)r->r.info.size, flag_str(r->r.info.flags, REGION_FLAGS, 4, b1, sizeof(b1)));
        if (r->r.fd == 0)
            printf(", mmap fd at offset 0x%llx", (unsigned long long)r->r.info.offset);
        printf("\n");
        const struct vu_region_caps *rc = &r->r.caps;
        if (rc->msix_mappable)
            printf("             cap MSIX_MAPPABLE (the MSI-X table may be mmapped)\n");
        if (rc->has_type)
            printf("             cap TYPE type %u subtype %u\n", rc->type, rc->subtype);
        if (rc->has_sparse) {
            printf("             cap SPARSE_MMAP, %u area%s%s\n", rc->nr_areas, rc->nr_areas == 1 ? "" : "s",
                   rc->nr_areas_kept < rc->nr_areas ? " (some not shown)" : "");
            for (uint32_t a = 0; a < rc->nr_areas_kept; a++)
                printf("               mmap 0x%llx-0x%llx (%s)\n", (unsigned long long)rc->areas[a].offset,
                       (unsigned long long)(rc->areas[a].offset + rc->areas[a].size - 1),
                       size_str(rc->areas[a].size, b2, sizeof(b2)));
        }
        uint32_t known = rc->msix_mappable + rc->has_type + rc->has_sparse;
        if (rc->nr_caps > known)
            printf("             %u other cap%s\n", rc->nr_caps - known, rc->nr_caps - known == 1 ? "" : "s");
    }

    printf("  irqs:\n");
    for (uint32_t i = 0; i < v->nirqs; i++) {
        const struct view_irq *q = &v->irqs[i];
        if (q->err)
            printf("    %u %-6s not available (%s)\n", i, irq_name(i), strerror(-q->err));
        else
            printf("    %u %-6s count %u, flags %s\n", i, irq_name(i), q->info.count,
                   flag_str(q->info.flags, IRQ_FLAGS, 4, b1, sizeof(b1)));
    }

    if (v->cfg_err)
        return;
    printf("  config space (%zu bytes):\n", pc->len);
    printf("    command 0x%04x (%s%s%s%s), status 0x%04x%s\n", pc->command,
           pc->command & 1 ? "I/O " : "", pc->command & 2 ? "MEM " : "",
           pc->command & 4 ? "BUSMASTER " : "", pc->command & 0x400 ? "INTx-disabled" : "INTx",
           pc->status, pc->status & 8 ? " (INTx pending)" : "");
    printf("    header type 0x%02x, interrupt pin %c, line %u\n", pc->header_type,
           pc->int_pin >= 1 && pc->int_pin <= 4 ? 'A' + pc->int_pin - 1 : '-', pc->int_line);
    for (int i = 0; i < 6; i++) {
        print_bar(i, pc->bar[i], pc->bar);
        if (pc->bar[i] && !(pc->bar[i] & 1) && ((pc->bar[i] >> 1) & 3) == 2)
            i++;
    }
    printf("    capabilities:\n");
    for (int i = 0; i < pc->ncaps; i++) {
        const struct pv_cap *c = &pc->caps[i];
        if (c->ext)
            printf("      [%03x] ext 0x%04x %s v%u:", c->off, c->id, c->name, c->version);
        else
            printf("      [%02x] 0x%02x %s:", c->off, c->id, c->name);
        for (int f = 0; f < c->nf; f++)
            print_field(&c->f[f]);
        printf("\n");
    }
    if (!pc->ncaps)
        printf("      none\n");
    if (pc->problem[0])
        printf("    problem: %s\n", pc->problem);
}

/* ---- JSON -------------------------------------------------------------------- */

static json_object *jflags(uint32_t v, const char *const *names, unsigned n)
{
    json_object *a = json_object_new_array();
    for (unsigned b = 0; b < 32; b++) {
        if (!(v & (1u << b)))
            continue;
        char tmp[16];
        if (b < n)
            json_object_array_add(a, json_object_new_string(names[b]));
        else {
            snprintf(tmp, sizeof(tmp), "0x%x", 1u << b);
            json_object_array_add(a, json_object_new_string(tmp));
        }
    }
    return a;
}

static void jset(json_object *o, const char *k, json_object *v)
{
    json_object_object_add(o, k, v);
}

static json_object *ju(uint64_t v)
{
    return json_object_new_uint64(v);
}

static json_object *jerr(int err)
{
    json_object *o = json_object_new_object();
    jset(o, "error", json_object_new_string(strerror(-err)));
    jset(o, "errno", json_object_new_int(-err));
    return o;
}

static void print_json(const char *sock, const struct view *v)
{
    char name[16];
    json_object *root = json_object_new_object();
    jset(root, "socket", json_object_new_string(sock));

    json_object *srv = json_object_new_object();
    jset(srv, "max_msg_fds", ju(v->server.max_msg_fds));
    jset(srv, "max_data_xfer_size", ju(v->server.max_data_xfer_size));
    jset(srv, "max_dma_maps", ju(v->server.max_dma_maps));
    jset(srv, "pgsizes", ju(v->server.pgsizes));
    jset(srv, "write_multiple", json_object_new_boolean(v->server.write_multiple));
    jset(srv, "migration", json_object_new_boolean(v->server.has_migration));
    jset(root, "server", srv);

    json_object *dev = json_object_new_object();
    jset(dev, "flags", jflags(v->dev.flags, DEV_FLAGS, 2));
    jset(dev, "num_regions", ju(v->dev.num_regions));
    jset(dev, "num_irqs", ju(v->dev.num_irqs));
    jset(root, "device", dev);

    if (!v->cfg_err) {
        const struct pv_config *pc = &v->pc;
        json_object *id = json_object_new_object();
        jset(id, "vendor_id", ju(pc->vendor));
        jset(id, "device_id", ju(pc->device));
        jset(id, "subsystem_vendor_id", ju(pc->subsys_vendor));
        jset(id, "subsystem_id", ju(pc->subsys_device));
        jset(id, "class", ju(pc->class_code));
        jset(id, "revision", ju(pc->revision));
        jset(id, "vendor", json_object_new_string(v->names.vendor));
        jset(id, "device", json_object_new_string(v->names.device));
        jset(id, "subsystem", json_object_new_string(v->names.subsys));
        jset(id, "class_name", json_object_new_string(v->names.class_name));
        jset(id, "prog_if", json_object_new_string(v->names.progif));
        jset(root, "id", id);
    }

    json_object *regs = json_object_new_array();
    for (uint32_t i = 0; i < v->nregions; i++) {
        const struct view_region *r = &v->regions[i];
        json_object *o = r->err ? jerr(r->err) : json_object_new_object();
        jset(o, "index", ju(i));
        jset(o, "name", json_object_new_string(region_name(i, name, sizeof(name))));
        if (!r->err) {
            const struct vu_region_caps *rc = &r->r.caps;
            jset(o, "size", ju(r->r.info.size));
            jset(o, "flags", jflags(r->r.info.flags, REGION_FLAGS, 4));
            jset(o, "offset", ju(r->r.info.offset));
            jset(o, "fd", json_object_new_boolean(r->r.fd == 0));
            jset(o, "msix_mappable", json_object_new_boolean(rc->msix_mappable));
            if (rc->has_type) {
                jset(o, "type", ju(rc->type));
                jset(o, "subtype", ju(rc->subtype));
            }
            if (rc->has_sparse) {
                json_object *areas = json_object_new_array();
                for (uint32_t a = 0; a < rc->nr_areas_kept; a++) {
                    json_object *ar = json_object_new_object();
                    jset(ar, "offset", ju(rc->areas[a].offset));
                    jset(ar, "size", ju(rc->areas[a].size));
                    json_object_array_add(areas, ar);
                }
                jset(o, "sparse_mmap", areas);
            }
            jset(o, "num_caps", ju(rc->nr_caps));
        }
        json_object_array_add(regs, o);
    }
    jset(root, "regions", regs);

    json_object *irqs = json_object_new_array();
    for (uint32_t i = 0; i < v->nirqs; i++) {
        const struct view_irq *q = &v->irqs[i];
        json_object *o = q->err ? jerr(q->err) : json_object_new_object();
        jset(o, "index", ju(i));
        jset(o, "name", json_object_new_string(irq_name(i)));
        if (!q->err) {
            jset(o, "count", ju(q->info.count));
            jset(o, "flags", jflags(q->info.flags, IRQ_FLAGS, 4));
        }
        json_object_array_add(irqs, o);
    }
    jset(root, "irqs", irqs);

    if (v->cfg_err) {
        jset(root, "config", jerr(v->cfg_err));
    } else {
        const struct pv_config *pc = &v->pc;
        json_object *cfg = json_object_new_object();
        jset(cfg, "size", ju(pc->len));
        jset(cfg, "command", ju(pc->command));
        jset(cfg, "status", ju(pc->status));
        jset(cfg, "header_type", ju(pc->header_type));
        jset(cfg, "interrupt_pin", ju(pc->int_pin));
        json_object *bars = json_object_new_array();
        for (int i = 0; i < 6; i++)
            json_object_array_add(bars, ju(pc->bar[i]));
        jset(cfg, "bars", bars);
        json_object *caps = json_object_new_array();
        for (int i = 0; i < pc->ncaps; i++) {
            const struct pv_cap *c = &pc->caps[i];
            json_object *o = json_object_new_object();
            jset(o, "offset", ju(c->off));
            jset(o, "id", ju(c->id));
            jset(o, "extended", json_object_new_boolean(c->ext));
            if (c->ext)
                jset(o, "version", ju(c->version));
            jset(o, "name", json_object_new_string(c->name));
            for (int f = 0; f < c->nf; f++) {
                const struct pv_field *fl = &c->f[f];
                switch (fl->kind) {
                case PV_U64:
                case PV_HEX: /* JSON has no hex */
                    jset(o, fl->key, ju(fl->u));
                    break;
                case PV_BOOL: jset(o, fl->key, json_object_new_boolean(fl->u != 0)); break;
                case PV_STR: jset(o, fl->key, json_object_new_string(fl->s)); break;
                }
            }
            json_object_array_add(caps, o);
        }
        jset(cfg, "capabilities", caps);
        if (pc->problem[0])
            jset(cfg, "problem", json_object_new_string(pc->problem));
        jset(root, "config", cfg);
    }

    puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}

int probe_view(struct vu_client *c, const struct probe_opts *o)
{
    struct view *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    const struct vu_caps *sc = vu_client_server_caps(c);
    if (sc)
        v->server = *sc;
    int rc = gather(c, v);
    if (!rc) {
        if (o->json)
            print_json(o->socket, v);
        else
            print_text(o->socket, v);
    }
    free(v);
    return rc;
}

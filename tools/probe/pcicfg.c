/* SPDX-License-Identifier: MIT */
/* pcicfg.c - decode a PCI function's configuration space (header and
 * capability lists) into fields the view prints as text or JSON. */
#include <stdio.h>
#include <string.h>

#include "probe.h"

static uint32_t rd(const uint8_t *cfg, size_t len, size_t off, unsigned n)
{
    uint32_t v = 0;
    if (off + n > len)
        return 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint32_t)cfg[off + i] << (8 * i);
    return v;
}

static struct pv_field *add(struct pv_cap *c, const char *key, enum pv_kind kind)
{
    if (c->nf >= PV_MAX_FIELDS)
        return NULL;
    struct pv_field *f = &c->f[c->nf++];
    memset(f, 0, sizeof(*f));
    f->key = key;
    f->kind = kind;
    return f;
}

static void add_u(struct pv_cap *c, const char *key, uint64_t v)
{
    struct pv_field *f = add(c, key, PV_U64);
    if (f)
        f->u = v;
}

static void add_x(struct pv_cap *c, const char *key, uint64_t v)
{
    struct pv_field *f = add(c, key, PV_HEX);
    if (f)
        f->u = v;
}

static void add_b(struct pv_cap *c, const char *key, bool v)
{
    struct pv_field *f = add(c, key, PV_BOOL);
    if (f)
        f->u = v;
}

static void add_s(struct pv_cap *c, const char *key, const char *s)
{
    struct pv_field *f = add(c, key, PV_STR);
    if (f)
        snprintf(f->s, sizeof(f->s), "%s", s);
}

static const char *cap_name(uint16_t id)
{
    switch (id) {
    case 0x01: return "Power Management";
    case 0x02: return "AGP";
    case 0x03: return "Vital Product Data";
    case 0x04: return "Slot Identification";
    case 0x05: return "MSI";
    case 0x06: return "CompactPCI Hot Swap";
    case 0x07: return "PCI-X";
    case 0x08: return "HyperTransport";
    case 0x09: return "Vendor Specific";
    case 0x0a: return "Debug port";
    case 0x0b: return "CompactPCI central resource control";
    case 0x0c: return "PCI Hot-plug";
    case 0x0d: return "Bridge subsystem vendor/device ID";
    case 0x0e: return "AGP 8x";
    case 0x0f: return "Secure device";
    case 0x10: return "PCI Express";
    case 0x11: return "MSI-X";
    case 0x12: return "SATA";
    case 0x13: return "Advanced Features";
    case 0x14: return "Enhanced Allocation";
    case 0x15: return "Flattening Portal Bridge";
    default: return "Unknown";
    }
}

static const char *ext_cap_name(uint16_t id)
{
    switch (id) {
    case 0x01: return "Advanced Error Reporting";
    case 0x02: return "Virtual Channel";
    case 0x03: return "Device Serial Number";
    case 0x04: return "Power Budgeting";
    case 0x05: return "Root Complex Link Declaration";
    case 0x06: return "Root Complex Internal Link Control";
    case 0x07: return "Root Complex Event Collector Endpoint Association";
    case 0x08: return "Multi-Function VC Arbitration";
    case 0x09: return "Virtual Channel (MFVC)";
    case 0x0a: return "Root Complex Register Block";
    case 0x0b: return "Vendor Specific";
    case 0x0c: return "Configuration Access Correlation";
    case 0x0d: return "Access Control Services";
    case 0x0e: return "Alternative Routing-ID Interpretation";
    case 0x0f: return "Address Translation Services";
    case 0x10: return "Single Root I/O Virtualization";
    case 0x11: return "Multi-Root I/O Virtualization";
    case 0x12: return "Multicast";
    case 0x13: return "Page Request";
    case 0x15: return "Resizable BAR";
    case 0x16: return "Dynamic Power Allocation";
    case 0x17: return "TPH Requester";
    case 0x18: return "Latency Tolerance Reporting";
    case 0x19: return "Secondary PCI Express";
    case 0x1a: return "Protocol Multiplexing";
    case 0x1b: return "Process Address Space ID";
    case 0x1d: return "Downstream Port Containment";
    case 0x1e: return "L1 PM Substates";
    case 0x1f: return "Precision Time Measurement";
    case 0x23: return "Designated Vendor-Specific";
    case 0x25: return "Data Link Feature";
    case 0x26: return "Physical Layer 16.0 GT/s";
    case 0x27: return "Lane Margining at the Receiver";
    default: return "Unknown";
    }
}

static const char *pcie_type(unsigned t)
{
    switch (t) {
    case 0x0: return "Endpoint";
    case 0x1: return "Legacy Endpoint";
    case 0x4: return "Root Port";
    case 0x5: return "Upstream Port";
    case 0x6: return "Downstream Port";
    case 0x7: return "PCIe to PCI/PCI-X Bridge";
    case 0x8: return "PCI/PCI-X to PCIe Bridge";
    case 0x9: return "Root Complex Integrated Endpoint";
    case 0xa: return "Root Complex Event Collector";
    default: return "Unknown";
    }
}

static void decode_std(const uint8_t *cfg, size_t len, struct pv_cap *c)
{
    size_t o = c->off;
    uint32_t ctl = rd(cfg, len, o + 2, 2);

    switch (c->id) {
    case 0x01: { /* PM */
        uint32_t pmcsr = rd(cfg, len, o + 4, 2);
        add_u(c, "version", ctl & 7);
        add_b(c, "d1", ctl & (1u << 9));
        add_b(c, "d2", ctl & (1u << 10));
        add_x(c, "pme_support", (ctl >> 11) & 0x1f);
        add_u(c, "power_state", pmcsr & 3);
        add_b(c, "no_soft_reset", pmcsr & (1u << 3));
        break;
    }
    case 0x05: { /* MSI */
        bool is64 = ctl & (1u << 7);
        bool mask = ctl & (1u << 8);
        add_b(c, "enabled", ctl & 1);
        add_u(c, "vectors_capable", 1u << ((ctl >> 1) & 7));
        add_u(c, "vectors_enabled", 1u << ((ctl >> 4) & 7));
        add_b(c, "64bit", is64);
        add_b(c, "per_vector_mask", mask);
        uint64_t addr = rd(cfg, len, o + 4, 4);
        if (is64)
            addr |= (uint64_t)rd(cfg, len, o + 8, 4) << 32;
        add_x(c, "address", addr);
        add_x(c, "data", rd(cfg, len, o + (is64 ? 12 : 8), 2));
        break;
    }
    case 0x09: /* vendor specific */
        add_u(c, "length", rd(cfg, len, o + 2, 1));
        break;
    case 0x10: { /* PCIe */
        unsigned type = (ctl >> 4) & 0xf;
        uint32_t devcap = rd(cfg, len, o + 4, 4);
        uint32_t lnkcap = rd(cfg, len, o + 12, 4);
        uint32_t lnksta = rd(cfg, len, o + 18, 2);
        add_u(c, "version", ctl & 0xf);
        add_s(c, "port_type", pcie_type(type));
        add_u(c, "max_payload", 128u << (devcap & 7));
        add_b(c, "flr", devcap & (1u << 28));
        if (type != 0x9 && lnkcap) {
            add_u(c, "link_speed_max", lnkcap & 0xf);
            add_u(c, "link_width_max", (lnkcap >> 4) & 0x3f);
            add_u(c, "link_speed", lnksta & 0xf);
            add_u(c, "link_width", (lnksta >> 4) & 0x3f);
        }
        break;
    }
    case 0x11: { /* MSI-X */
        uint32_t table = rd(cfg, len, o + 4, 4);
        uint32_t pba = rd(cfg, len, o + 8, 4);
        add_u(c, "table_size", (ctl & 0x7ff) + 1);
        add_b(c, "enabled", ctl & (1u << 15));
        add_b(c, "function_mask", ctl & (1u << 14));
        add_u(c, "table_bir", table & 7);
        add_x(c, "table_offset", table & ~7u);
        add_u(c, "pba_bir", pba & 7);
        add_x(c, "pba_offset", pba & ~7u);
        break;
    }
    default:
        break;
    }
}

static void decode_ext(const uint8_t *cfg, size_t len, struct pv_cap *c)
{
    size_t o = c->off;
    switch (c->id) {
    case 0x03: { /* DSN */
        uint64_t sn = rd(cfg, len, o + 4, 4) | (uint64_t)rd(cfg, len, o + 8, 4) << 32;
        add_x(c, "serial", sn);
        break;
    }
    case 0x0b: { /* VSEC */
        uint32_t h = rd(cfg, len, o + 4, 4);
        add_x(c, "vsec_id", h & 0xffff);
        add_u(c, "vsec_rev", (h >> 16) & 0xf);
        add_u(c, "length", h >> 20);
        break;
    }
    case 0x01: /* AER */
        add_x(c, "uncorrectable_status", rd(cfg, len, o + 4, 4));
        add_x(c, "correctable_status", rd(cfg, len, o + 16, 4));
        break;
    case 0x0e: /* ARI */
        add_u(c, "next_function", (rd(cfg, len, o + 4, 2) >> 8) & 0xff);
        break;
    case 0x10: /* SR-IOV */
        add_u(c, "total_vfs", rd(cfg, len, o + 14, 2));
        add_u(c, "num_vfs", rd(cfg, len, o + 16, 2));
        break;
    default:
        break;
    }
}

void pv_config_decode(const uint8_t *cfg, size_t len, struct pv_config *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->len = len;
    if (len < 64) {
        snprintf(pc->problem, sizeof(pc->problem), "config space too short (%zu bytes)", len);
        return;
    }
    pc->vendor = rd(cfg, len, 0x00, 2);
    pc->device = rd(cfg, len, 0x02, 2);
    pc->command = rd(cfg, len, 0x04, 2);
    pc->status = rd(cfg, len, 0x06, 2);
    pc->revision = rd(cfg, len, 0x08, 1);
    pc->class_code = rd(cfg, len, 0x09, 3);
    pc->header_type = rd(cfg, len, 0x0e, 1);
    if ((pc->header_type & 0x7f) == 0) {
        for (int i = 0; i < 6; i++)
            pc->bar[i] = rd(cfg, len, 0x10 + 4 * i, 4);
        pc->subsys_vendor = rd(cfg, len, 0x2c, 2);
        pc->subsys_device = rd(cfg, len, 0x2e, 2);
    }
    pc->int_line = rd(cfg, len, 0x3c, 1);
    pc->int_pin = rd(cfg, len, 0x3d, 1);

    /* Standard list: pointers >= 0x40, dword aligned, at most 48 steps. */
    if (pc->status & (1u << 4)) {
        unsigned ptr = rd(cfg, len, 0x34, 1) & 0xfc;
        int steps = 0;
        while (ptr) {
            if (ptr < 0x40 || ptr + 2 > len) {
                snprintf(pc->problem, sizeof(pc->problem), "capability pointer 0x%x is out of range", ptr);
                break;
            }
            if (++steps > PV_MAX_CAPS || pc->ncaps >= PV_MAX_CAPS) {
                snprintf(pc->problem, sizeof(pc->problem), "capability list loops (at 0x%x)", ptr);
                break;
            }
            struct pv_cap *c = &pc->caps[pc->ncaps++];
            c->id = rd(cfg, len, ptr, 1);
            c->off = ptr;
            c->name = cap_name(c->id);
            decode_std(cfg, len, c);
            ptr = rd(cfg, len, ptr + 1, 1) & 0xfc;
        }
    }

    /* Extended list from 0x100: next strictly ahead avoids loops. */
    if (len > 0x100 && pv_config_find(pc, false, 0x10)) {
        unsigned ptr = 0x100;
        while (ptr && pc->ncaps < PV_MAX_CAPS) {
            if (ptr < 0x100 || ptr + 4 > len) {
                snprintf(pc->problem, sizeof(pc->problem), "extended capability pointer 0x%x out of range", ptr);
                break;
            }
            uint32_t h = rd(cfg, len, ptr, 4);
            if (h == 0 || h == 0xffffffffu)
                break;
            struct pv_cap *c = &pc->caps[pc->ncaps++];
            c->id = h & 0xffff;
            c->version = (h >> 16) & 0xf;
            c->off = ptr;
            c->ext = true;
            c->name = ext_cap_name(c->id);
            decode_ext(cfg, len, c);
            unsigned next = (h >> 20) & 0xffc;
            if (next && next <= ptr) {
                snprintf(pc->problem, sizeof(pc->problem), "extended capability list goes back (0x%x -> 0x%x)", ptr, next);
                break;
            }
            ptr = next;
        }
    }
}

const struct pv_cap *pv_config_find(const struct pv_config *pc, bool ext, uint16_t id)
{
    for (int i = 0; i < pc->ncaps; i++)
        if (pc->caps[i].ext == ext && pc->caps[i].id == id)
            return &pc->caps[i];
    return NULL;
}

const struct pv_field *pv_cap_field(const struct pv_cap *cap, const char *key)
{
    for (int i = 0; cap && i < cap->nf; i++)
        if (strcmp(cap->f[i].key, key) == 0)
            return &cap->f[i];
    return NULL;
}

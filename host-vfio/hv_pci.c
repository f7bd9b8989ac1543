/* SPDX-License-Identifier: MIT */
/*
 * hv_pci.c - identity of a PCI function through libpci: ids from its config
 * space, names from the pci.ids database. libpci reports fatal errors through
 * a callback that must not return; ours jumps back to the caller, so nothing
 * prints and nothing exits.
 */
#include "hv.h"
#include "hv_internal.h"

#include <errno.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static _Thread_local jmp_buf *pci_jmp;
static _Thread_local char pci_msg[160];

static void __attribute__((noreturn, format(printf, 1, 2))) pci_error_cb(char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    vsnprintf(pci_msg, sizeof(pci_msg), msg, ap);
    va_end(ap);
    longjmp(*pci_jmp, 1);
}

static void __attribute__((format(printf, 1, 2))) pci_quiet_cb(char *msg, ...)
{
    (void)msg;
}

/* A pci_access that never prints; error() only valid while pci_jmp is set. */
static struct pci_access *quiet_access(void)
{
    struct pci_access *a = pci_alloc();
    if (!a)
        return NULL;
    a->error = pci_error_cb;
    a->warning = pci_quiet_cb;
    a->debug = pci_quiet_cb;
    return a;
}

struct pci_access *hv_pci_names_open(void)
{
    return quiet_access();
}

void hv_pci_names_close(struct pci_access *pacc)
{
    if (pacc)
        pci_cleanup(pacc);
}

static void lookup(struct pci_access *pacc, char *out, size_t outsz, const char *kind,
                   unsigned fallback_id, int flags, unsigned a1, unsigned a2)
{
    volatile bool found = false;
    if (pacc) {
        jmp_buf jb;
        jmp_buf *saved = pci_jmp;
        char buf[128];
        if (setjmp(jb) == 0) {
            pci_jmp = &jb;
            const char *name = pci_lookup_name(pacc, buf, (int)sizeof(buf),
                                               flags | PCI_LOOKUP_NO_NUMBERS, a1, a2);
            if (name) {
                hv_strlcpy(out, name, outsz);
                found = true;
            }
        }
        pci_jmp = saved;
    }
    if (!found)
        snprintf(out, outsz, "Unknown %s %04x", kind, fallback_id);
}

void hv_pci_fill_names(struct pci_access *pacc, struct hv_pci_ident *id)
{
    lookup(pacc, id->vendor_name, sizeof(id->vendor_name), "vendor", id->vendor,
           PCI_LOOKUP_VENDOR, (unsigned)id->vendor, 0u);
    lookup(pacc, id->device_name, sizeof(id->device_name), "device", id->device,
           PCI_LOOKUP_DEVICE, (unsigned)id->vendor, (unsigned)id->device);
    lookup(pacc, id->class_name, sizeof(id->class_name), "class",
           id->class_code >> 8, PCI_LOOKUP_CLASS, (unsigned)(id->class_code >> 8), 0u);
}

void hv_pci_names(uint16_t vendor, uint16_t device, uint32_t class_code, struct hv_pci_ident *out)
{
    memset(out, 0, sizeof(*out));
    out->vendor = vendor;
    out->device = device;
    out->class_code = class_code & 0xffffff;
    struct pci_access *a = hv_pci_names_open();
    hv_pci_fill_names(a, out);
    hv_pci_names_close(a);
}

int hv_pci_identify(const char *addr_in, struct hv_pci_ident *out, struct vub_err *err)
{
    char addr[HV_ADDR_LEN], path[HV_PATH_MAX];
    unsigned dom, bus, dev, fn;
    struct stat st;

    memset(out, 0, sizeof(*out));
    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);
    if (sscanf(addr, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address", addr_in);
    hv_path(path, sizeof(path), "%s/bus/pci/devices/%s", HV_SYSFS_DEFAULT, addr);
    if (stat(path, &st) < 0)
        return vub_fail(err, -ENODEV, "no PCI function %s (nothing at %s)", addr, path);

    struct pci_access *a = quiet_access();
    if (!a)
        return vub_fail(err, -ENOMEM, "%s: libpci: out of memory", addr);
    jmp_buf jb;
    jmp_buf *volatile saved = pci_jmp;
    volatile int r = 0;
    if (setjmp(jb) == 0) {
        pci_jmp = &jb;
        pci_init(a);
        struct pci_dev *d = pci_get_dev(a, (int)dom, (int)bus, (int)dev, (int)fn);
        if (!d) {
            r = vub_fail(err, -ENOMEM, "%s: libpci: out of memory", addr);
        } else {
            pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT |
                                 PCI_FILL_SUBSYS);
            out->vendor = d->vendor_id;
            out->device = d->device_id;
            out->class_code = ((uint32_t)d->device_class << 8) | d->prog_if;
            out->subsys_vendor = d->subsys_vendor_id;
            out->subsys_device = d->subsys_id;
            pci_free_dev(d);
        }
    } else {
        r = vub_fail(err, -EIO, "%s: libpci: %s", addr, pci_msg);
    }
    pci_jmp = saved;
    if (r == 0) {
        if (out->vendor == 0xffff)
            r = vub_fail(err, -EIO, "%s: config space reads all ones (device gone?)", addr);
        else
            hv_pci_fill_names(a, out);
    }
    pci_cleanup(a);
    return r;
}

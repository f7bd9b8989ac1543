/* SPDX-License-Identifier: MIT */
/* names.c - vendor, device and class names from the pci.ids database
 * through libpci's name lookup (no device access: ids only). */
#include <pci/pci.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

static void quiet(char *msg, ...)
{
    (void)msg;
}

/* libpci calls this only when it cannot go on (out of memory). The message
 * is a format of libpci's; printed as plain text, not interpreted. */
static void __attribute__((noreturn)) fatal(char *msg, ...)
{
    fprintf(stderr, "vfio-user-probe: libpci: %s\n", msg);
    exit(2);
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void pv_lookup_names(const struct pv_config *pc, struct pv_names *out)
{
    char buf[256];
    memset(out, 0, sizeof(*out));

    /* pci_init() is not needed for name look-ups, and it would try to open
     * this machine's PCI bus; only the message hooks must be set. */
    struct pci_access *a = pci_alloc();
    if (!a)
        return;
    a->warning = quiet;
    a->debug = quiet;
    a->error = fatal;

    copy(out->vendor, sizeof(out->vendor),
         pci_lookup_name(a, buf, sizeof(buf), PCI_LOOKUP_VENDOR, pc->vendor));
    copy(out->device, sizeof(out->device),
         pci_lookup_name(a, buf, sizeof(buf), PCI_LOOKUP_DEVICE, pc->vendor, pc->device));
    if (pc->subsys_vendor || pc->subsys_device)
        copy(out->subsys, sizeof(out->subsys),
             pci_lookup_name(a, buf, sizeof(buf), PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE,
                             pc->vendor, pc->device, pc->subsys_vendor, pc->subsys_device));
    const char *cls = pci_lookup_name(a, buf, sizeof(buf), PCI_LOOKUP_CLASS | PCI_LOOKUP_NO_NUMBERS,
                                      pc->class_code >> 8);
    if (cls)
        copy(out->class_name, sizeof(out->class_name), cls);
    else
        snprintf(out->class_name, sizeof(out->class_name), "Class %04x", pc->class_code >> 8);
    const char *p = pci_lookup_name(a, buf, sizeof(buf), PCI_LOOKUP_PROGIF | PCI_LOOKUP_NO_NUMBERS,
                                    pc->class_code >> 8, pc->class_code & 0xff);
    copy(out->progif, sizeof(out->progif), p);
    pci_cleanup(a);
}

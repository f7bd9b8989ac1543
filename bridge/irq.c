/* SPDX-License-Identifier: MIT */
/*
 * The per-client IRQ shadow tables and the SET_IRQS translation.
 *
 * The client's eventfds go straight to the kernel (VFIO_DEVICE_SET_IRQS):
 * the kernel signals them with no hop through the bridge. For MSI and MSI-X
 * the bridge also keeps a dup of every trigger eventfd, because QEMU sends a
 * long eventfd array in chunks of at most max_msg_fds, while the kernel (for
 * NORESIZE indexes) sizes the vector set on the first enable and refuses
 * vectors beyond it. When a chunk extends an enabled set, the whole set is
 * disabled and enabled again in one call built from the shadow table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "irq.h"
#include "log.h"

#define DISABLE_FLAGS (VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER)
#define ENABLE_FLAGS  (VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER)

void br_irq_init(struct br_irq_state *st, const struct br_dev *dev)
{
    memset(st, 0, sizeof(*st));
    st->n = dev->num_irqs;
    for (uint32_t i = 0; i < st->n; i++) {
        /* an index the bridge reserved looks empty to the client */
        st->idx[i].count = (dev->reserved_irqs & (1u << i)) ? 0 : dev->irqs[i].count;
        st->idx[i].flags = dev->irqs[i].flags;
    }
}

static bool is_msi_like(uint32_t index)
{
    return index == VU_PCI_MSI_IRQ_INDEX || index == VU_PCI_MSIX_IRQ_INDEX;
}

static void shadow_clear(struct br_irq_index *ix)
{
    if (ix->fds) {
        for (uint32_t i = 0; i < ix->count; i++) {
            if (ix->fds[i] >= 0)
                close(ix->fds[i]);
            ix->fds[i] = -1;
        }
    }
    ix->active = 0;
    ix->used = false;
}

static int shadow_alloc(struct br_irq_index *ix)
{
    if (ix->fds)
        return 0;
    ix->fds = malloc(ix->count * sizeof(int));
    if (!ix->fds)
        return -ENOMEM;
    for (uint32_t i = 0; i < ix->count; i++)
        ix->fds[i] = -1;
    return 0;
}

/* MSI/MSI-X trigger eventfds: merge [start, start+count) into the shadow
 * table and bring the kernel to the merged set. */
static int set_msi_trigger(struct br_irq_index *ix, struct hv_device *hv, uint32_t index,
                           uint32_t start, uint32_t count, const int *fds, size_t nfds)
{
    uint32_t end = start + count;
    int r = shadow_alloc(ix);
    if (r < 0)
        return r;

    /* our own copies of the new eventfds (the message keeps the originals) */
    int *dups = malloc(count * sizeof(int));
    int32_t *kdata = malloc((size_t)(end > ix->active ? end : ix->active) * sizeof(int32_t));
    if (!dups || !kdata) {
        r = -ENOMEM;
        free(dups);
        free(kdata);
        return r;
    }
    for (uint32_t i = 0; i < count; i++)
        dups[i] = -1;
    for (uint32_t i = 0; i < count && nfds; i++) {
        dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (dups[i] < 0) {
            r = -errno;
            goto out;
        }
    }

    bool noresize = (ix->flags & VU_IRQ_INFO_NORESIZE) || index == VU_PCI_MSI_IRQ_INDEX;
    if (ix->active == 0 || (end > ix->active && noresize)) {
        /* (re-)enable the whole set [0, new_n) from the shadow + this chunk */
        uint32_t new_n = end > ix->active ? end : ix->active;
        for (uint32_t i = 0; i < new_n; i++)
            kdata[i] = (i >= start && i < end) ? dups[i - start] : ix->fds[i];
        if (ix->active) {
            br_debug("SET_IRQS %u: vectors %u..%u extend the enabled set of %u: re-enabling %u",
                     index, start, end - 1, ix->active, new_n);
            r = hv_set_irqs(hv, DISABLE_FLAGS, index, 0, 0, NULL);
            if (r < 0)
                goto out;
        }
        r = hv_set_irqs(hv, ENABLE_FLAGS, index, 0, new_n, kdata);
        if (r < 0) {
            if (ix->active) {
                /* put the previous set back */
                for (uint32_t i = 0; i < ix->active; i++)
                    kdata[i] = ix->fds[i];
                if (hv_set_irqs(hv, ENABLE_FLAGS, index, 0, ix->active, kdata) < 0) {
                    br_warn("SET_IRQS %u: could not restore %u vectors", index, ix->active);
                    shadow_clear(ix);
                }
            }
            goto out;
        }
        ix->active = new_n;
    } else {
        /* inside the enabled set (or the kernel can grow it): forward as is */
        for (uint32_t i = 0; i < count; i++)
            kdata[i] = dups[i];
        r = hv_set_irqs(hv, ENABLE_FLAGS, index, start, count, kdata);
        if (r < 0)
            goto out;
        if (end > ix->active)
            ix->active = end;
    }

    /* committed: the shadow takes the dups */
    for (uint32_t i = 0; i < count; i++) {
        if (ix->fds[start + i] >= 0)
            close(ix->fds[start + i]);
        ix->fds[start + i] = dups[i];
        dups[i] = -1;
    }
    ix->used = true;
    r = 0;
out:
    for (uint32_t i = 0; i < count; i++)
        if (dups[i] >= 0)
            close(dups[i]);
    free(dups);
    free(kdata);
    return r;
}

int br_irq_set(struct br_irq_state *st, struct hv_device *hv, const struct vu_irq_set *set,
               const uint8_t *bools, const int *fds, size_t nfds)
{
    if (set->index >= st->n)
        return -EINVAL;
    struct br_irq_index *ix = &st->idx[set->index];
    uint32_t data = set->flags & VU_IRQ_SET_DATA_MASK;
    uint32_t action = set->flags & VU_IRQ_SET_ACTION_MASK_ALL;

    if (set->count == 0) {
        /* the decoder allows count 0 only as "disable the index" */
        if (ix->count == 0) {
            shadow_clear(ix);
            return 0;    /* nothing the client could have enabled */
        }
        int r = hv_set_irqs(hv, DISABLE_FLAGS, set->index, 0, 0, NULL);
        if (r < 0)
            return r;
        shadow_clear(ix);
        return 0;
    }
    if ((uint64_t)set->start + set->count > ix->count)
        return -EINVAL;
    if (data == VU_IRQ_SET_DATA_EVENTFD && nfds != 0 && nfds != set->count)
        return -EINVAL;

    if (is_msi_like(set->index) && data == VU_IRQ_SET_DATA_EVENTFD &&
        action == VU_IRQ_SET_ACTION_TRIGGER)
        return set_msi_trigger(ix, hv, set->index, set->start, set->count, fds, nfds);

    const void *kdata = NULL;
    int32_t *arr = NULL;
    if (data == VU_IRQ_SET_DATA_EVENTFD) {
        /* no fds = de-assign: the kernel's -1 */
        arr = malloc(set->count * sizeof(int32_t));
        if (!arr)
            return -ENOMEM;
        for (uint32_t i = 0; i < set->count; i++)
            arr[i] = nfds ? fds[i] : -1;
        kdata = arr;
    } else if (data == VU_IRQ_SET_DATA_BOOL) {
        kdata = bools;
    }
    int r = hv_set_irqs(hv, set->flags, set->index, set->start, set->count, kdata);
    free(arr);
    if (r == 0 && action == VU_IRQ_SET_ACTION_TRIGGER && data == VU_IRQ_SET_DATA_EVENTFD)
        ix->used = true;
    return r;
}

void br_irq_disable_all(struct br_irq_state *st, struct hv_device *hv)
{
    for (uint32_t i = 0; i < st->n; i++) {
        struct br_irq_index *ix = &st->idx[i];
        if (ix->count == 0)
            continue;
        /* Expected to fail for an index that is not enabled (the kernel says
         * EINVAL then); only the state afterwards matters. */
        int r = hv_set_irqs(hv, DISABLE_FLAGS, i, 0, 0, NULL);
        if (r < 0 && ix->used)
            br_warn("disabling IRQ index %u failed: %s", i, strerror(-r));
        shadow_clear(ix);
    }
}

void br_irq_free(struct br_irq_state *st)
{
    for (uint32_t i = 0; i < st->n; i++) {
        shadow_clear(&st->idx[i]);
        free(st->idx[i].fds);
        st->idx[i].fds = NULL;
    }
}

unsigned br_irq_open_fds(const struct br_irq_state *st)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < st->n; i++)
        for (uint32_t k = 0; st->idx[i].fds && k < st->idx[i].count; k++)
            n += st->idx[i].fds[k] >= 0;
    return n;
}

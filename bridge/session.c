/* SPDX-License-Identifier: MIT */
/* Client session lifecycle: open on accept, quiesce and release on close. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "session.h"

#define PCI_COMMAND        0x04u
#define PCI_COMMAND_MASTER 0x04u

int br_dev_restore_command(const struct br_dev *dev)
{
    uint16_t v = dev->command0 & (uint16_t)~PCI_COMMAND_MASTER;
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    ssize_t n = dev->hv->ops->region_write(dev->hv, VU_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, b, 2);
    if (n < 0)
        return (int)n;
    return n == 2 ? 0 : -EIO;
}

int br_dev_bus_master_off(struct hv_device *hv)
{
    uint8_t b[2];
    ssize_t n = hv->ops->region_read(hv, VU_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, b, 2);
    if (n < 0)
        return (int)n;
    if (n != 2)
        return -EIO;
    if (!(b[0] & PCI_COMMAND_MASTER))
        return 0;
    b[0] &= (uint8_t)~PCI_COMMAND_MASTER;
    n = hv->ops->region_write(hv, VU_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, b, 2);
    if (n < 0)
        return (int)n;
    return n == 2 ? 0 : -EIO;
}


int br_session_open(struct br_session **out, struct br_dev *dev, int fd, const struct ucred *peer)
{
    struct br_session *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    s->dev = dev;
    s->peer = *peer;
    /* Non-blocking: the loop never waits on a client longer than the I/O
     * timeout (a message it started, or room for a reply). */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int r = -errno;
        close(fd);
        free(s);
        return r;
    }
    vu_conn_init_socket(&s->conn, fd, &dev->lim);
    s->conn.io_timeout_ms = (int)(dev->cfg->io_timeout_ms ? dev->cfg->io_timeout_ms
                                                          : BR_DEFAULT_IO_TIMEOUT_MS);
    br_dma_init(&s->dma, dev->caps.max_dma_maps, dev->cfg->max_dma_bytes, dev->page_size);
    br_irq_init(&s->irq, dev);
    *out = s;
    return 0;
}

void br_session_close(struct br_session *s)
{
    if (!s)
        return;
    struct hv_device *hv = s->dev->hv;
    size_t maps = s->dma.n;
    unsigned irq_fds = br_irq_open_fds(&s->irq);
    int r;

    /* Before VERSION every command is refused: such a client (a connection
     * probe, a refused handshake) cannot have touched the device. */
    bool quiesce = s->negotiated;
    if (quiesce) {
        /* Stop the device mastering the bus before its memory goes away. */
        if ((r = br_dev_bus_master_off(hv)) < 0)
            br_warn("clearing bus master failed: %s", strerror(-r));
        br_irq_disable_all(&s->irq, hv);
        br_dma_unmap_all(&s->dma, hv);
        if ((s->dev->flags & VU_DEVICE_FLAGS_RESET) && !s->dev->cfg->no_reset) {
            if ((r = hv->ops->reset(hv)) < 0)
                br_warn("device reset failed: %s", strerror(-r));
        }
        if ((r = br_dev_restore_command(s->dev)) < 0)
            br_warn("restoring the COMMAND register failed: %s", strerror(-r));
    }

    vu_conn_close(&s->conn);
    br_irq_free(&s->irq);
    br_dma_free(&s->dma);
    br_log(s->log_quiet ? BR_LOG_DEBUG : BR_LOG_INFO,
           "client pid %d uid %u disconnected (%s): %llu messages, %llu errors; released "
           "%zu DMA maps, %u IRQ eventfds%s",
            (int)s->peer.pid, (unsigned)s->peer.uid, s->close_reason ? s->close_reason : "closed",
            (unsigned long long)s->n_msgs, (unsigned long long)s->n_errors, maps, irq_fds,
            !quiesce ? ", device untouched"
                     : (s->dev->flags & VU_DEVICE_FLAGS_RESET) && !s->dev->cfg->no_reset
                           ? ", device reset" : "");
    free(s);
}

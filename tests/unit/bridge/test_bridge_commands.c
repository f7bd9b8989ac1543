/* SPDX-License-Identifier: MIT */
/* Every command's success and error paths, through a real socket. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "edu_regs.h"
#include "harness.h"

static int setup_edu(void **state)
{
    *state = th_new(false, NULL);
    return 0;
}

static int setup_nvme(void **state)
{
    *state = th_new(true, NULL);
    return 0;
}

static uint32_t rd32(struct vu_client *c, uint32_t region, uint64_t off)
{
    uint32_t v = 0;
    assert_int_equal(vu_client_region_read(c, region, off, &v, 4), 4);
    return v;
}

static void wr32(struct vu_client *c, uint32_t region, uint64_t off, uint32_t v)
{
    assert_int_equal(vu_client_region_write(c, region, off, &v, 4, false), 4);
}

/* ---- VERSION ------------------------------------------------------------------------ */

static void test_version_caps(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, false);
    struct vu_caps sc;
    assert_int_equal(vu_client_negotiate(c, NULL, &sc), 0);
    assert_int_equal(sc.max_msg_fds, 16);
    /* the IOMMU's sizes that the client (4 KiB, like QEMU) also offered */
    assert_int_equal(sc.pgsizes, t->sc.pgsizes & 0x1000);
    assert_int_equal(sc.max_dma_maps, 65535);
    assert_true(sc.max_data_xfer_size >= (1u << 20));
    assert_true(sc.write_multiple);
    assert_false(sc.twin_socket);
    /* a second VERSION is refused, the connection stays */
    struct vu_version v = { 0, 0 };
    char msg[64];
    memcpy(msg, &v, sizeof(v));
    strcpy(msg + sizeof(v), "{\"capabilities\":{}}");
    assert_int_equal(th_call(c, VU_CMD_VERSION, 0, msg, sizeof(v) + 20, NULL, 0, NULL), -EINVAL);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    vu_client_close(c);
}

static void test_version_reply_fits_request(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, false);
    /* A QEMU-sized request of ~200 bytes: the reply must not be larger. */
    const char *json = "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
                       "\"pgsizes\":4096,\"max_dma_maps\":65535,\"migration\":{\"pgsize\":4096,"
                       "\"max_bitmap_size\":268435456},\"write_multiple\":true}}";
    size_t len = sizeof(struct vu_version) + strlen(json) + 1;
    uint8_t *req = calloc(1, len);
    memcpy(req + sizeof(struct vu_version), json, strlen(json) + 1);
    struct vu_msg reply;
    assert_int_equal(th_call(c, VU_CMD_VERSION, 0, req, len, NULL, 0, &reply), 0);
    assert_true(reply.hdr.msg_size <= VU_HDR_SIZE + len);
    assert_int_equal(reply.nfds, 0);
    struct vu_version_req vr;
    assert_int_equal(vu_decode_version_reply(&reply, &vr, NULL), 0);
    assert_int_equal(vr.major, 0);
    assert_int_equal(vr.minor, 0);
    assert_non_null(vr.json);
    vu_msg_release(&reply);
    free(req);
    /* major 1 is refused */
    vu_client_close(c);
    c = th_connect(t, false);
    struct vu_version v1 = { 1, 0 };
    uint8_t msg[64] = { 0 };
    memcpy(msg, &v1, sizeof(v1));
    strcpy((char *)msg + sizeof(v1), "{\"capabilities\":{}}");
    assert_true(th_call(c, VU_CMD_VERSION, 0, msg, sizeof(v1) + 20, NULL, 0, NULL) < 0);
    vu_client_close(c);
}

static void test_commands_before_version(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, false);
    struct vu_device_info q = { .argsz = sizeof(q) };
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_INFO, 0, &q, sizeof(q), NULL, 0, NULL), -EINVAL);
    /* still usable: VERSION then GET_INFO */
    assert_int_equal(vu_client_negotiate(c, NULL, NULL), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    vu_client_close(c);
}

/* ---- GET_INFO, GET_IRQ_INFO ----------------------------------------------------------- */

static void test_get_info(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    assert_int_equal(di.argsz, 16);
    assert_int_equal(di.flags, VU_DEVICE_FLAGS_PCI | VU_DEVICE_FLAGS_RESET);
    assert_int_equal(di.num_regions, 9);
    assert_int_equal(di.num_irqs, 5);
    /* argsz too small and bad payload sizes */
    struct vu_device_info q = { .argsz = 8 };
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_INFO, 0, &q, sizeof(q), NULL, 0, NULL), -EINVAL);
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_INFO, 0, &q, 8, NULL, 0, NULL), -EINVAL);
    vu_client_close(c);
}

static void test_get_irq_info(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_irq_info ii;
    assert_int_equal(vu_client_get_irq_info(c, VU_PCI_INTX_IRQ_INDEX, &ii), 0);
    assert_int_equal(ii.count, 1);
    assert_int_equal(ii.flags, VU_IRQ_INFO_EVENTFD | VU_IRQ_INFO_MASKABLE | VU_IRQ_INFO_AUTOMASKED);
    assert_int_equal(vu_client_get_irq_info(c, VU_PCI_MSIX_IRQ_INDEX, &ii), 0);
    assert_int_equal(ii.count, 65);
    assert_int_equal(ii.index, VU_PCI_MSIX_IRQ_INDEX);
    assert_true(ii.flags & VU_IRQ_INFO_NORESIZE);
    assert_int_equal(vu_client_get_irq_info(c, 5, &ii), -EINVAL);
    vu_client_close(c);
}

/* ---- GET_REGION_INFO --------------------------------------------------------------- */

static void test_region_info_bar0_mmap(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_client_region r;
    assert_int_equal(vu_client_get_region_info(c, 0, 0, &r), 0);
    assert_int_equal(r.info.size, 1u << 20);
    assert_int_equal(r.info.flags, VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE |
                                   VU_REGION_INFO_FLAG_MMAP | VU_REGION_INFO_FLAG_CAPS);
    /* no kernel sparse cap: published with one area, the whole BAR */
    assert_true(r.caps.has_sparse);
    assert_int_equal(r.caps.nr_areas, 1);
    assert_int_equal(r.caps.areas[0].offset, 0);
    assert_int_equal(r.caps.areas[0].size, 1u << 20);
    assert_true(r.fd >= 0);
    /* the fd maps the BAR at the kernel's offset: the id register shows */
    uint8_t *bar = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd,
                        (off_t)r.info.offset);
    assert_true(bar != MAP_FAILED);
    uint32_t id;
    memcpy(&id, bar, 4);
    assert_int_equal(id, EDU_ID_VALUE);
    /* plain memory above the registers: messages and the mapping agree */
    wr32(c, 0, 0x1000, 0xcafef00d);
    memcpy(&id, bar + 0x1000, 4);
    assert_int_equal(id, 0xcafef00d);
    munmap(bar, 1u << 20);
    close(r.fd);

    /* config space: no mmap, no fd */
    assert_int_equal(vu_client_get_region_info(c, 7, 0, &r), 0);
    assert_int_equal(r.info.size, 4096);
    assert_false(r.info.flags & VU_REGION_INFO_FLAG_MMAP);
    assert_int_equal(r.fd, -1);
    /* no region 9: an error; VGA, which this device lacks: size 0, no flags */
    assert_int_equal(vu_client_get_region_info(c, 9, 0, &r), -EINVAL);
    assert_int_equal(vu_client_get_region_info(c, 8, 0, &r), 0);
    assert_int_equal(r.info.size, 0);
    assert_int_equal(r.info.flags, 0);
    assert_int_equal(r.fd, -1);
    struct vu_region_info q = { .argsz = 32, .index = 0, .size = 1 };   /* size must be 0 */
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_INFO, 0, &q, sizeof(q), NULL, 0, NULL),
                     -EINVAL);
    vu_client_close(c);
}

static void test_region_info_caps_flag_rule(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_region_info q = { .argsz = 32, .index = 2 };
    struct vu_msg m;
    struct vu_region_info a;

    /* argsz 32 on a region with caps: fixed part only, no CAPS, no fd */
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_INFO, 0, &q, sizeof(q), NULL, 0, &m), 0);
    assert_int_equal(m.payload_len, 32);
    assert_int_equal(m.nfds, 0);
    memcpy(&a, m.payload, sizeof(a));
    assert_int_equal(a.argsz, 32 + 8 + 32);     /* MSIX_MAPPABLE + a whole-BAR sparse cap */
    assert_false(a.flags & VU_REGION_INFO_FLAG_CAPS);
    assert_true(a.flags & VU_REGION_INFO_FLAG_MMAP);
    assert_int_equal(a.cap_offset, 0);
    assert_int_equal(a.size, 0x4000);
    vu_msg_release(&m);

    /* with the argsz asked for: caps, cap_offset 32, exactly one fd */
    q.argsz = a.argsz;
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_INFO, 0, &q, sizeof(q), NULL, 0, &m), 0);
    assert_int_equal(m.payload_len, 72);
    assert_int_equal(m.nfds, 1);
    memcpy(&a, m.payload, sizeof(a));
    assert_true(a.flags & VU_REGION_INFO_FLAG_CAPS);
    assert_int_equal(a.cap_offset, 32);
    struct vu_region_caps caps;
    assert_int_equal(vu_region_caps_parse(m.payload, m.payload_len, &caps, NULL), 0);
    assert_true(caps.msix_mappable);
    assert_true(caps.has_sparse);
    assert_int_equal(caps.nr_areas, 1);
    assert_int_equal(caps.areas[0].size, 0x4000);
    vu_msg_release(&m);

    /* a bigger argsz than needed: still only what is needed */
    q.argsz = 4096;
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_INFO, 0, &q, sizeof(q), NULL, 0, &m), 0);
    assert_int_equal(m.payload_len, 72);
    assert_int_equal(m.nfds, 1);
    vu_msg_release(&m);
    vu_client_close(c);
}

static void setup_nvme_kernel_tweak(struct th *t)
{
    t->cfg.msix_mmap = BR_MSIX_MMAP_KERNEL;
}

static int setup_nvme_kernel(void **state)
{
    *state = th_new(true, setup_nvme_kernel_tweak);
    return 0;
}

static void setup_nvme_nommap_tweak(struct th *t)
{
    t->cfg.no_mmap = true;
}

static int setup_nvme_nommap(void **state)
{
    *state = th_new(true, setup_nvme_nommap_tweak);
    return 0;
}

static void test_no_mmap_gives_no_fd(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    for (uint32_t i = 0; i < 8; i++) {
        struct vu_region_info q = { .argsz = 1024, .index = i };
        struct vu_msg m;
        assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_INFO, 0, &q, sizeof(q), NULL, 0, &m),
                         0);
        struct vu_region_info a;
        memcpy(&a, m.payload, sizeof(a));
        assert_false(a.flags & VU_REGION_INFO_FLAG_MMAP);
        assert_int_equal(m.nfds, 0);
        struct vu_region_caps caps;
        assert_int_equal(vu_region_caps_parse(m.payload, m.payload_len, &caps, NULL), 0);
        assert_false(caps.msix_mappable);
        assert_false(caps.has_sparse);
        vu_msg_release(&m);
    }
    /* access by message still works */
    assert_int_equal(rd32(c, 0, EDU_ID), EDU_ID_VALUE);
    vu_client_close(c);
}

static void setup_nvme_sparse_tweak(struct th *t)
{
    t->cfg.msix_mmap = BR_MSIX_MMAP_SPARSE;
}

static int setup_nvme_sparse(void **state)
{
    *state = th_new(true, setup_nvme_sparse_tweak);
    return 0;
}

static void test_sparse_msix_areas(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_client_region r;
    /* BAR2: 16 KiB, table at 0x2000 (65 entries), PBA at 0x3000 */
    assert_int_equal(vu_client_get_region_info(c, 2, 0, &r), 0);
    assert_true(r.info.flags & VU_REGION_INFO_FLAG_MMAP);
    assert_true(r.caps.has_sparse);
    assert_false(r.caps.msix_mappable);
    assert_int_equal(r.caps.nr_areas, 1);
    assert_int_equal(r.caps.areas[0].offset, 0);
    assert_int_equal(r.caps.areas[0].size, 0x2000);
    assert_true(r.fd >= 0);
    close(r.fd);
    /* BAR0 has no MSI-X: one area, the whole BAR */
    assert_int_equal(vu_client_get_region_info(c, 0, 0, &r), 0);
    assert_true(r.caps.has_sparse);
    assert_int_equal(r.caps.nr_areas, 1);
    assert_int_equal(r.caps.areas[0].size, r.info.size);
    assert_true(r.fd >= 0);
    close(r.fd);
    /* the holes are reachable by messages: the PBA reads (all clear) */
    assert_int_equal(rd32(c, 2, 0x3000), 0);
    vu_client_close(c);
}

/* A kernel that itself reports sparse areas around the table page (older
 * kernels): forwarded unchanged; with --sparse-msix intersected with ours. */
static void kernel_sparse(struct th *t, bool ours)
{
    th_init(t);
    t->sc.msix = HV_SIM_MSIX_SPARSE_CAP;
    t->cfg.msix_mmap = ours ? BR_MSIX_MMAP_SPARSE : BR_MSIX_MMAP_KERNEL;
    th_start(t);
}

static void test_kernel_sparse_cap(void **state)
{
    struct th *t = malloc(sizeof(*t));
    for (int ours = 0; ours < 2; ours++) {
        kernel_sparse(t, ours);
        struct vu_client *c = th_connect(t, true);
        struct vu_client_region r;
        assert_int_equal(vu_client_get_region_info(c, 2, 0, &r), 0);
        assert_true(r.caps.has_sparse);
        assert_true(r.fd >= 0);
        close(r.fd);
        assert_int_equal(r.caps.areas[0].offset, 0);
        assert_int_equal(r.caps.areas[0].size, 0x2000);
        if (!ours) {           /* the kernel's: only the table page is out */
            assert_int_equal(r.caps.nr_areas, 2);
            assert_int_equal(r.caps.areas[1].offset, 0x3000);
            assert_int_equal(r.caps.areas[1].size, 0x1000);
        } else {               /* ours also leaves out the PBA page */
            assert_int_equal(r.caps.nr_areas, 1);
        }
        vu_client_close(c);
        th_stop(t);
    }
    free(t);
}

/* ---- REGION_READ / REGION_WRITE / WRITE_MULTI ----------------------------------------- */

static void test_region_rw(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    assert_int_equal(rd32(c, 0, EDU_ID), EDU_ID_VALUE);
    wr32(c, 0, EDU_LIVENESS, 0x12345678);
    assert_int_equal(rd32(c, 0, EDU_LIVENESS), 0xedcba987);
    /* config space goes to the device: ids, and COMMAND bus master */
    assert_int_equal(rd32(c, 7, 0), (uint32_t)t->sc.device << 16 | t->sc.vendor);
    uint16_t cmd;
    assert_int_equal(vu_client_region_read(c, 7, 4, &cmd, 2), 2);
    cmd |= 4;
    assert_int_equal(vu_client_region_write(c, 7, 4, &cmd, 2, false), 2);
    assert_true(hv_sim_stats_of(t->hv).command & 4);
    /* a large read: the whole config space */
    uint8_t *buf = malloc(4096);
    assert_int_equal(vu_client_region_read(c, 7, 0, buf, 4096), 4096);
    free(buf);
    /* zero-length access */
    assert_int_equal(vu_client_region_read(c, 0, 0, NULL, 0), 0);
    vu_client_close(c);
}

static void test_region_rw_bounds(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    uint32_t v = 0;
    assert_int_equal(vu_client_region_read(c, 0, (1u << 20) - 2, &v, 4), -EINVAL);
    assert_int_equal(vu_client_region_read(c, 0, UINT64_MAX - 1, &v, 4), -EINVAL);
    assert_int_equal(vu_client_region_read(c, 1, 0, &v, 4), -EINVAL);     /* size 0 */
    assert_int_equal(vu_client_region_read(c, 9, 0, &v, 4), -EINVAL);     /* no region */
    assert_int_equal(vu_client_region_read(c, 8, 0, &v, 4), -EINVAL);     /* no VGA */
    assert_int_equal(vu_client_region_read(c, 7, 4096, &v, 1), -EINVAL);
    assert_int_equal(vu_client_region_write(c, 0, 1u << 20, &v, 4, false), -EINVAL);
    /* more than max_data_xfer_size */
    struct vu_region_access big = { .offset = 0, .region = 0, .count = (1u << 20) + 1 };
    assert_int_equal(th_call(c, VU_CMD_REGION_READ, 0, &big, sizeof(big), NULL, 0, NULL), -E2BIG);
    /* a write whose data does not match count */
    uint8_t w[16 + 2] = { 0 };
    struct vu_region_access h = { .offset = 0x1000, .region = 0, .count = 4 };
    memcpy(w, &h, sizeof(h));
    assert_int_equal(th_call(c, VU_CMD_REGION_WRITE, 0, w, sizeof(w), NULL, 0, NULL), -EINVAL);
    /* and the connection is fine */
    assert_int_equal(rd32(c, 0, EDU_ID), EDU_ID_VALUE);
    vu_client_close(c);
}

static void test_no_reply_writes(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    /* a posted write takes effect, in order, without a reply */
    uint32_t v = 0x11111111;
    assert_int_equal(vu_client_region_write(c, 0, EDU_LIVENESS, &v, 4, true), 4);
    /* a posted write that fails gets no error reply either */
    assert_int_equal(vu_client_region_write(c, 0, 1u << 20, &v, 4, true), 4);
    /* a posted unknown command too */
    assert_int_equal(th_call(c, 99, VU_F_NO_REPLY, NULL, 0, NULL, 0, NULL), 0);
    /* the next reply is the read's (a stray reply would be a protocol error
     * for the client: it matches ids) */
    assert_int_equal(rd32(c, 0, EDU_LIVENESS), ~0x11111111u);
    vu_client_close(c);
}

static void test_write_multi(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_write_multi_entry e[3] = {
        { .offset = 0x1000, .region = 0, .count = 4 },
        { .offset = 0x1004, .region = 0, .count = 2 },
        { .offset = 0x04, .region = 0, .count = 4 },
    };
    uint32_t a = 0xaabbccdd, l = 0x0f0f0f0f;
    uint16_t b = 0x1234;
    memcpy(e[0].data, &a, 4);
    memcpy(e[1].data, &b, 2);
    memcpy(e[2].data, &l, 4);
    assert_int_equal(vu_client_region_write_multi(c, e, 3, false), 3);
    assert_int_equal(rd32(c, 0, 0x1000), 0xaabbccdd);
    uint16_t got;
    assert_int_equal(vu_client_region_read(c, 0, 0x1004, &got, 2), 2);
    assert_int_equal(got, 0x1234);
    assert_int_equal(rd32(c, 0, EDU_LIVENESS), ~0x0f0f0f0fu);
    /* posted (as QEMU sends them) */
    a = 0x55667788;
    memcpy(e[0].data, &a, 4);
    assert_int_equal(vu_client_region_write_multi(c, e, 1, true), 1);
    assert_int_equal(rd32(c, 0, 0x1000), 0x55667788);
    /* an entry outside its region fails the message */
    e[1].offset = (1u << 20) - 1;
    assert_int_equal(vu_client_region_write_multi(c, e, 2, false), -EINVAL);
    /* malformed: count 9 */
    uint8_t raw[8 + 24];
    uint64_t one = 1;
    e[0].count = 9;
    memcpy(raw, &one, 8);
    memcpy(raw + 8, &e[0], 24);
    assert_int_equal(th_call(c, VU_CMD_REGION_WRITE_MULTI, 0, raw, sizeof(raw), NULL, 0, NULL),
                     -EINVAL);
    vu_client_close(c);
}

/* ---- DEVICE_RESET ----------------------------------------------------------------- */

static void test_reset(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    unsigned before = hv_sim_stats_of(t->hv).resets;
    wr32(c, 0, 0x1000, 0xdeadbeef);
    assert_int_equal(vu_client_reset(c), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).resets, before + 1);
    assert_int_equal(rd32(c, 0, 0x1000), 0);       /* the device really was reset */
    /* with a payload it is malformed */
    uint32_t junk = 0;
    assert_int_equal(th_call(c, VU_CMD_DEVICE_RESET, 0, &junk, 4, NULL, 0, NULL), -EINVAL);
    vu_client_close(c);
}

static void setup_noreset_tweak(struct th *t)
{
    t->sc.reset = false;
}

static int setup_noreset(void **state)
{
    *state = th_new(false, setup_noreset_tweak);
    return 0;
}

static void test_reset_unsupported(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    assert_false(di.flags & VU_DEVICE_FLAGS_RESET);
    assert_int_equal(vu_client_reset(c), -ENOTSUP);
    assert_int_equal(hv_sim_stats_of(t->hv).resets, 0);
    vu_client_close(c);
}

/* ---- not supported, unknown, wrong direction --------------------------------------- */

static void test_unsupported_commands(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    struct vu_region_io_fds_request io = { .argsz = 16, .index = 0 };
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_IO_FDS, 0, &io, sizeof(io), NULL, 0, NULL),
                     -ENOTSUP);
    io.flags = 1;
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_REGION_IO_FDS, 0, &io, sizeof(io), NULL, 0, NULL),
                     -EINVAL);
    struct vu_device_feature f = { .argsz = 16, .flags = VU_DEVICE_FEATURE_GET | 1 };
    assert_int_equal(th_call(c, VU_CMD_DEVICE_FEATURE, 0, &f, sizeof(f), NULL, 0, NULL), -ENOTSUP);
    f.flags = VU_DEVICE_FEATURE_GET | VU_DEVICE_FEATURE_SET | 2;    /* GET and SET */
    assert_int_equal(th_call(c, VU_CMD_DEVICE_FEATURE, 0, &f, sizeof(f), NULL, 0, NULL), -EINVAL);
    assert_int_equal(th_call(c, VU_CMD_DEVICE_FEATURE, 0, &f, 4, NULL, 0, NULL), -EINVAL);
    struct vu_mig_data md = { .argsz = 8 + 64, .size = 64 };
    assert_int_equal(th_call(c, VU_CMD_MIG_DATA_READ, 0, &md, sizeof(md), NULL, 0, NULL), -ENOTSUP);
    assert_int_equal(th_call(c, VU_CMD_MIG_DATA_READ, 0, &md, 4, NULL, 0, NULL), -EINVAL);
    uint8_t mw[8 + 4] = { 0 };
    struct vu_mig_data mwh = { .argsz = 12, .size = 4 };
    memcpy(mw, &mwh, sizeof(mwh));
    assert_int_equal(th_call(c, VU_CMD_MIG_DATA_WRITE, 0, mw, sizeof(mw), NULL, 0, NULL), -ENOTSUP);
    assert_int_equal(th_call(c, VU_CMD_MIG_DATA_WRITE, 0, mw, 10, NULL, 0, NULL), -EINVAL);
    /* unknown commands, the retired 14, and server-to-client commands */
    assert_int_equal(th_call(c, 14, 0, NULL, 0, NULL, 0, NULL), -ENOSYS);
    assert_int_equal(th_call(c, 0, 0, NULL, 0, NULL, 0, NULL), -ENOSYS);
    assert_int_equal(th_call(c, 4242, 0, &io, sizeof(io), NULL, 0, NULL), -ENOSYS);
    struct vu_dma_access da = { .address = 0, .count = 4 };
    assert_int_equal(th_call(c, VU_CMD_DMA_READ, 0, &da, sizeof(da), NULL, 0, NULL), -EINVAL);
    assert_int_equal(th_call(c, VU_CMD_DMA_WRITE, 0, &da, sizeof(da), NULL, 0, NULL), -EINVAL);
    /* the connection is still good */
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    vu_client_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_version_caps, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_version_reply_fits_request, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_commands_before_version, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_get_info, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_get_irq_info, setup_nvme, th_teardown),
        cmocka_unit_test_setup_teardown(test_region_info_bar0_mmap, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_region_info_caps_flag_rule, setup_nvme_kernel,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(test_no_mmap_gives_no_fd, setup_nvme_nommap, th_teardown),
        cmocka_unit_test_setup_teardown(test_sparse_msix_areas, setup_nvme_sparse, th_teardown),
        cmocka_unit_test(test_kernel_sparse_cap),
        cmocka_unit_test_setup_teardown(test_region_rw, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_region_rw_bounds, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_no_reply_writes, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_write_multi, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup_edu, th_teardown),
        cmocka_unit_test_setup_teardown(test_reset_unsupported, setup_noreset, th_teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_commands, setup_edu, th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

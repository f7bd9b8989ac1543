/* SPDX-License-Identifier: MIT */
/* The probe's config space decoder: header fields, both capability lists,
 * and that broken lists (loops, wild pointers, short buffers) stay bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "probe.h"

static uint8_t cfg[4096];

static void put(size_t off, uint32_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        cfg[off + i] = (uint8_t)(v >> (8 * i));
}

/* A PCIe endpoint: 1b36:0010 class 010802, BAR0 64-bit, caps
 * PM@0x40 -> MSI@0x50 -> MSI-X@0x70 -> PCIe@0x90, ext AER@0x100 -> DSN@0x140
 * -> VSEC@0x180. */
static void build_device(void)
{
    memset(cfg, 0, sizeof(cfg));
    put(0x00, 0x1b36, 2);
    put(0x02, 0x0010, 2);
    put(0x04, 0x0006, 2);
    put(0x06, 0x0010, 2);            /* CAP_LIST */
    put(0x08, 0x01080202, 4);        /* class 010802 rev 2 */
    put(0x10, 0xfebd0004, 4);        /* 64-bit memory BAR */
    put(0x14, 0x00000001, 4);
    put(0x2c, 0x1af4, 2);
    put(0x2e, 0x1100, 2);
    put(0x34, 0x40, 1);
    put(0x3d, 1, 1);
    /* PM v3, D3hot */
    put(0x40, 0x01, 1);
    put(0x41, 0x50, 1);
    put(0x42, 0x0003, 2);
    put(0x44, 0x0003, 2);
    /* MSI: 4 vectors capable (2 << 1), 64-bit, enabled, addr/data */
    put(0x50, 0x05, 1);
    put(0x51, 0x70, 1);
    put(0x52, (1u << 7) | (2u << 1) | 1u, 2);
    put(0x54, 0xfee00000, 4);
    put(0x58, 0x1, 4);
    put(0x5c, 0x4041, 2);
    /* MSI-X: 65 vectors, table BAR0+0x2000, PBA BAR0+0x3000 */
    put(0x70, 0x11, 1);
    put(0x71, 0x90, 1);
    put(0x72, 64, 2);
    put(0x74, 0x2000, 4);
    put(0x78, 0x3000, 4);
    /* PCIe v2 endpoint, FLR */
    put(0x90, 0x10, 1);
    put(0x91, 0x00, 1);
    put(0x92, 0x0002, 2);
    put(0x94, 1u << 28, 4);
    /* extended */
    put(0x100, 0x0001 | (2u << 16) | (0x140u << 20), 4);
    put(0x140, 0x0003 | (1u << 16) | (0x180u << 20), 4);
    put(0x144, 0x89abcdef, 4);
    put(0x148, 0x01234567, 4);
    put(0x180, 0x000b | (1u << 16), 4);
    put(0x184, 0x1234 | (1u << 16) | (0x18u << 20), 4);
}

static uint64_t field(const struct pv_cap *c, const char *key)
{
    const struct pv_field *f = pv_cap_field(c, key);
    assert_non_null(f);
    return f->u;
}

static void test_header_and_caps(void **state)
{
    (void)state;
    struct pv_config pc;
    build_device();
    pv_config_decode(cfg, sizeof(cfg), &pc);
    assert_int_equal(pc.vendor, 0x1b36);
    assert_int_equal(pc.device, 0x0010);
    assert_int_equal(pc.class_code, 0x010802);
    assert_int_equal(pc.revision, 2);
    assert_int_equal(pc.subsys_vendor, 0x1af4);
    assert_int_equal(pc.subsys_device, 0x1100);
    assert_int_equal(pc.bar[0], 0xfebd0004);
    assert_int_equal(pc.int_pin, 1);
    assert_string_equal(pc.problem, "");
    assert_int_equal(pc.ncaps, 7);

    const struct pv_cap *pm = pv_config_find(&pc, false, 0x01);
    assert_non_null(pm);
    assert_int_equal(pm->off, 0x40);
    assert_int_equal(field(pm, "version"), 3);
    assert_int_equal(field(pm, "power_state"), 3);

    const struct pv_cap *msi = pv_config_find(&pc, false, 0x05);
    assert_non_null(msi);
    assert_int_equal(field(msi, "enabled"), 1);
    assert_int_equal(field(msi, "vectors_capable"), 4);
    assert_int_equal(field(msi, "64bit"), 1);
    assert_int_equal(field(msi, "address"), 0x1fee00000ull);
    assert_int_equal(field(msi, "data"), 0x4041);

    const struct pv_cap *mx = pv_config_find(&pc, false, 0x11);
    assert_non_null(mx);
    assert_int_equal(field(mx, "table_size"), 65);
    assert_int_equal(field(mx, "table_bir"), 0);
    assert_int_equal(field(mx, "table_offset"), 0x2000);
    assert_int_equal(field(mx, "pba_offset"), 0x3000);
    assert_int_equal(field(mx, "enabled"), 0);

    const struct pv_cap *pe = pv_config_find(&pc, false, 0x10);
    assert_non_null(pe);
    assert_int_equal(field(pe, "flr"), 1);
    assert_string_equal(pv_cap_field(pe, "port_type")->s, "Endpoint");

    const struct pv_cap *aer = pv_config_find(&pc, true, 0x01);
    assert_non_null(aer);
    assert_int_equal(aer->off, 0x100);
    assert_int_equal(aer->version, 2);
    const struct pv_cap *dsn = pv_config_find(&pc, true, 0x03);
    assert_non_null(dsn);
    assert_int_equal(field(dsn, "serial"), 0x0123456789abcdefull);
    const struct pv_cap *vsec = pv_config_find(&pc, true, 0x0b);
    assert_non_null(vsec);
    assert_int_equal(field(vsec, "vsec_id"), 0x1234);
    assert_int_equal(field(vsec, "length"), 0x18);
    assert_null(pv_config_find(&pc, false, 0x09));
}

static void test_no_cap_list_bit(void **state)
{
    (void)state;
    struct pv_config pc;
    build_device();
    put(0x06, 0, 2);
    pv_config_decode(cfg, 256, &pc);
    assert_int_equal(pc.ncaps, 0);
}

static void test_legacy_space_has_no_ext_caps(void **state)
{
    (void)state;
    struct pv_config pc;
    build_device();
    pv_config_decode(cfg, 256, &pc);  /* only 256 bytes read */
    assert_int_equal(pc.ncaps, 4);
    assert_null(pv_config_find(&pc, true, 0x01));
}

static void test_loop_is_bounded(void **state)
{
    (void)state;
    struct pv_config pc;
    build_device();
    put(0x91, 0x40, 1);  /* PCIe -> back to PM */
    pv_config_decode(cfg, 256, &pc);
    assert_true(pc.ncaps <= PV_MAX_CAPS);
    assert_string_not_equal(pc.problem, "");
}

static void test_wild_pointers(void **state)
{
    (void)state;
    struct pv_config pc;
    build_device();
    put(0x51, 0x20, 1);  /* into the header */
    pv_config_decode(cfg, 256, &pc);
    assert_int_equal(pc.ncaps, 2);
    assert_non_null(strstr(pc.problem, "0x20"));

    build_device();
    put(0x91, 0xfc, 1);  /* last dword of a 256-byte space: header fits */
    put(0xfc, 0x09, 1);
    put(0xfd, 0x00, 1);
    pv_config_decode(cfg, 256, &pc);
    assert_int_equal(pc.ncaps, 5);
    assert_string_equal(pc.problem, "");

    build_device();
    put(0x140, 0x0003 | (1u << 16) | (0x100u << 20), 4);  /* DSN -> back to AER */
    pv_config_decode(cfg, sizeof(cfg), &pc);
    assert_int_equal(pc.ncaps, 6);
    assert_non_null(strstr(pc.problem, "back"));

    build_device();
    put(0x180, 0x000b | (1u << 16) | (0xffcu << 20), 4);  /* next at 0xffc: header fits, then 0 */
    pv_config_decode(cfg, sizeof(cfg), &pc);
    assert_int_equal(pc.ncaps, 7);
    assert_string_equal(pc.problem, "");
}

static void test_short_buffer(void **state)
{
    (void)state;
    struct pv_config pc;
    build_device();
    pv_config_decode(cfg, 32, &pc);
    assert_int_equal(pc.vendor, 0);
    assert_int_equal(pc.ncaps, 0);
    assert_string_not_equal(pc.problem, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_caps),
        cmocka_unit_test(test_no_cap_list_bit),
        cmocka_unit_test(test_legacy_space_has_no_ext_caps),
        cmocka_unit_test(test_loop_is_bounded),
        cmocka_unit_test(test_wild_pointers),
        cmocka_unit_test(test_short_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

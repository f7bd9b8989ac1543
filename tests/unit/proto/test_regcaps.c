/* SPDX-License-Identifier: MIT */
/* Region-info capability chains: builder and bounded parser. */
#include <errno.h>

#include "proto_test.h"

struct rbuf {
    uint8_t b[2048];
    size_t len;
};

static void put_info(struct rbuf *r, uint32_t flags, uint32_t cap_offset, uint64_t size)
{
    struct vu_region_info ri = {
        .argsz = 0, .flags = flags, .index = 0, .cap_offset = cap_offset, .size = size,
    };
    memcpy(r->b, &ri, sizeof(ri));
    if (r->len < sizeof(ri))
        r->len = sizeof(ri);
}

static void put_hdr(struct rbuf *r, size_t at, uint16_t id, uint32_t next)
{
    struct vu_cap_header h = {.id = id, .version = 1, .next = next};
    memcpy(r->b + at, &h, sizeof(h));
    if (r->len < at + sizeof(h))
        r->len = at + sizeof(h);
}

static void put_u32(struct rbuf *r, size_t at, uint32_t v)
{
    memcpy(r->b + at, &v, 4);
    if (r->len < at + 4)
        r->len = at + 4;
}

/* info(32) | sparse(2 areas, 48) @32 | type(16) @80 | msix(8) @96 = 104 */
static void build_full(struct rbuf *r)
{
    memset(r, 0, sizeof(*r));
    put_info(r, VU_REGION_INFO_FLAG_CAPS | VU_REGION_INFO_FLAG_MMAP, 32, 0x10000);
    struct vu_sparse_mmap_area areas[2] = {{0, 0x3000}, {0x4000, 0xc000}};
    ssize_t n = vu_region_cap_sparse_build(r->b, sizeof(r->b), 32, areas, 2);
    assert_int_equal(n, 48);
    put_hdr(r, 32, VU_REGION_INFO_CAP_SPARSE_MMAP, 80); /* link it */
    put_u32(r, 40, 2);
    put_hdr(r, 80, VU_REGION_INFO_CAP_TYPE, 96);
    put_u32(r, 88, 0x80000000u);
    put_u32(r, 92, 3);
    put_hdr(r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
    r->len = 104;
}

static void test_full_chain(void **state)
{
    (void)state;
    struct rbuf r;
    struct vu_region_caps c;
    build_full(&r);
    assert_int_equal(vu_region_caps_parse(r.b, r.len, &c, NULL), 0);
    assert_true(c.has_sparse);
    assert_int_equal(c.nr_areas, 2);
    assert_int_equal(c.nr_areas_kept, 2);
    assert_int_equal(c.areas[1].offset, 0x4000);
    assert_int_equal(c.areas[1].size, 0xc000);
    assert_true(c.has_type);
    assert_int_equal(c.type, 0x80000000u);
    assert_int_equal(c.subtype, 3);
    assert_true(c.msix_mappable);
    assert_int_equal(c.nr_caps, 3);
}

static void test_no_caps_flag(void **state)
{
    (void)state;
    struct rbuf r;
    struct vu_region_caps c;
    build_full(&r);
    put_info(&r, VU_REGION_INFO_FLAG_MMAP, 32, 0x10000); /* chain present, flag not */
    memset(&c, 0xff, sizeof(c));
    assert_int_equal(vu_region_caps_parse(r.b, r.len, &c, NULL), 0);
    assert_false(c.has_sparse);
    assert_false(c.has_type);
    assert_int_equal(c.nr_caps, 0);
    assert_int_equal(vu_region_caps_parse(r.b, 31, &c, NULL), -EINVAL);
}

static void expect_bad(struct rbuf *r, int rc, const char *sub)
{
    struct vu_region_caps c;
    struct vub_err e = {{0}};
    assert_int_equal(vu_region_caps_parse(r->b, r->len, &c, &e), rc);
    if (!strstr(e.msg, sub))
        fail_msg("reason \"%s\" lacks \"%s\"", e.msg, sub);
}

static void test_cap_offset_bad(void **state)
{
    (void)state;
    struct rbuf r;
    build_full(&r);
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 0, 0x10000); /* the kernel's too-small reply */
    expect_bad(&r, -EINVAL, "FLAG_CAPS with cap_offset 0");
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 16, 0x10000);
    expect_bad(&r, -EINVAL, "cap_offset 16");
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 104, 0x10000);
    expect_bad(&r, -EINVAL, "cap_offset 104");
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 100, 0x10000); /* header would end at 108 */
    expect_bad(&r, -EINVAL, "cap_offset 100");
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 0xfffffff8u, 0x10000);
    expect_bad(&r, -EINVAL, "cap_offset");
    /* only the 32 bytes: FLAG_CAPS cannot be satisfied */
    build_full(&r);
    r.len = 32;
    expect_bad(&r, -EINVAL, "cap_offset 32");
}

static void test_loops(void **state)
{
    (void)state;
    struct rbuf r;
    build_full(&r);
    put_hdr(&r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 32); /* back to the first */
    expect_bad(&r, -EINVAL, "loop");
    build_full(&r);
    put_hdr(&r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 96); /* self */
    expect_bad(&r, -EINVAL, "next 96");
    build_full(&r);
    put_hdr(&r, 32, VU_REGION_INFO_CAP_SPARSE_MMAP, 64); /* inside the sparse areas */
    put_u32(&r, 40, 2);
    expect_bad(&r, -EINVAL, "overlap");
}

static void test_next_out_of_bounds(void **state)
{
    (void)state;
    struct rbuf r;
    build_full(&r);
    put_hdr(&r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 200);
    expect_bad(&r, -EINVAL, "cap at 200 outside");
    put_hdr(&r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 100); /* inside itself */
    expect_bad(&r, -EINVAL, "overlap");
    put_hdr(&r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
    put_hdr(&r, 80, VU_REGION_INFO_CAP_TYPE, 100); /* header would end at 108 */
    expect_bad(&r, -EINVAL, "cap at 100 outside");
    put_hdr(&r, 96, VU_REGION_INFO_CAP_MSIX_MAPPABLE, 0xffffffffu);
    expect_bad(&r, -EINVAL, "outside");
}

static void test_truncated_caps(void **state)
{
    (void)state;
    struct rbuf r;
    build_full(&r);
    put_u32(&r, 40, 3); /* third area would overlap the type cap, then past it */
    expect_bad(&r, -EINVAL, "overlap");
    build_full(&r);
    put_hdr(&r, 32, VU_REGION_INFO_CAP_SPARSE_MMAP, 0);
    put_u32(&r, 40, 5); /* 16 + 80 > 72 bytes left */
    expect_bad(&r, -EINVAL, "5 areas do not fit");
    put_u32(&r, 40, 0xffffffffu);
    expect_bad(&r, -EINVAL, "do not fit");
    build_full(&r);
    r.len = 44; /* sparse cap header only (12 of 16 bytes) */
    put_hdr(&r, 32, VU_REGION_INFO_CAP_SPARSE_MMAP, 0);
    r.len = 44;
    expect_bad(&r, -EINVAL, "sparse-mmap cap at 32 truncated");
    build_full(&r);
    r.len = 90; /* type cap cut */
    expect_bad(&r, -EINVAL, "type cap at 80 truncated");
}

static void test_duplicates_and_unknown(void **state)
{
    (void)state;
    struct rbuf r;
    build_full(&r);
    put_hdr(&r, 96, VU_REGION_INFO_CAP_TYPE, 0);
    r.len = 112;
    expect_bad(&r, -EINVAL, "second type cap");

    build_full(&r);
    put_hdr(&r, 80, 77, 96); /* unknown id: skipped, counted */
    struct vu_region_caps c;
    assert_int_equal(vu_region_caps_parse(r.b, r.len, &c, NULL), 0);
    assert_int_equal(c.nr_caps, 3);
    assert_false(c.has_type);
    assert_true(c.msix_mappable);
}

static void test_area_outside_region(void **state)
{
    (void)state;
    struct rbuf r;
    build_full(&r);
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 32, 0x8000); /* area 1 ends at 0x10000 */
    expect_bad(&r, -EINVAL, "sparse area 1");
    build_full(&r);
    struct vu_sparse_mmap_area bad = {UINT64_MAX, 2};
    memcpy(r.b + 48, &bad, sizeof(bad));
    expect_bad(&r, -EINVAL, "sparse area 0");
}

static void test_many_areas(void **state)
{
    (void)state;
    /* 63 areas fill the 1024-byte cap budget exactly: 16 + 63 * 16 = 1024 */
    struct rbuf r;
    memset(&r, 0, sizeof(r));
    put_info(&r, VU_REGION_INFO_FLAG_CAPS, 32, 1ull << 30);
    struct vu_sparse_mmap_area a[63];
    for (int i = 0; i < 63; i++)
        a[i] = (struct vu_sparse_mmap_area){(uint64_t)i << 16, 0x1000};
    ssize_t n = vu_region_cap_sparse_build(r.b, sizeof(r.b), 32, a, 63);
    assert_int_equal(n, 1024);
    r.len = 32 + 1024;
    struct vu_region_caps c;
    assert_int_equal(vu_region_caps_parse(r.b, r.len, &c, NULL), 0);
    assert_int_equal(c.nr_areas, 63);
    assert_int_equal(c.nr_areas_kept, 63);
    assert_int_equal(c.areas[62].offset, 62ull << 16);
    r.len++; /* one byte beyond the budget */
    expect_bad(&r, -E2BIG, "exceed 1024");
}

static void test_sparse_build(void **state)
{
    (void)state;
    uint8_t b[64];
    struct vu_sparse_mmap_area a[2] = {{0, 0x1000}, {0x2000, 0x1000}};
    assert_int_equal(vu_region_cap_sparse_build(b, sizeof(b), 32, a, 2), -ENOSPC);
    assert_int_equal(vu_region_cap_sparse_build(b, sizeof(b), 32, a, 1), 32);
    assert_int_equal(vu_region_cap_sparse_build(b, sizeof(b), 65, a, 0), -ENOSPC);
    assert_int_equal(vu_region_cap_sparse_build(b, sizeof(b), 48, a, 0), 16);
    struct vu_region_cap_sparse_mmap sm;
    memcpy(&sm, b + 48, sizeof(sm));
    assert_int_equal(sm.header.id, VU_REGION_INFO_CAP_SPARSE_MMAP);
    assert_int_equal(sm.header.version, 1);
    assert_int_equal(sm.header.next, 0);
    assert_int_equal(sm.nr_areas, 0);
    assert_int_equal(vu_region_cap_sparse_build(b, sizeof(b), SIZE_MAX, a, 1), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_chain),
        cmocka_unit_test(test_no_caps_flag),
        cmocka_unit_test(test_cap_offset_bad),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_next_out_of_bounds),
        cmocka_unit_test(test_truncated_caps),
        cmocka_unit_test(test_duplicates_and_unknown),
        cmocka_unit_test(test_area_outside_region),
        cmocka_unit_test(test_many_areas),
        cmocka_unit_test(test_sparse_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

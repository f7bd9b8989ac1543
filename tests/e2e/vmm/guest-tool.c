/* SPDX-License-Identifier: MIT
 *
 * guest-tool - static helper run inside the INNER guest (the Linux guest that
 * QEMU's vfio-user-pci client boots on devices served by the bridge). It
 * checks what busybox cannot check precisely: O_DIRECT block I/O with a
 * verified pattern, and the edu device's BAR0 through a user mapping of
 * /sys/bus/pci/devices/<addr>/resource0.
 *
 *   guest-tool readlba DEV LBA PREFIX      O_DIRECT read of 512-byte block LBA;
 *                                          exit 0 if it starts with PREFIX
 *   guest-tool verify DEV LBA COUNT        O_DIRECT read of COUNT blocks from LBA
 *                                          and check the testbed's pattern
 *                                          "VUB-E2E-NVME LBA <n>\n" + '.' + "\n"
 *   guest-tool rw DEV OFFSET BYTES SEED    O_DIRECT write a SEED pattern, read it
 *                                          back (other buffer), compare
 *   guest-tool loop DEV OFFSET BYTES       rw with seeds 1, 2, ... forever,
 *                                          printing "loop N" now and then
 *   guest-tool setmark DEV LBA TEXT        O_DIRECT write TEXT (NUL padded) to LBA
 *   guest-tool getmark DEV LBA             print the NUL-terminated text at LBA
 *   guest-tool edu ADDR                    BAR0 via resource0: id, liveness,
 *                                          factorial
 *   guest-tool edu-vfio ADDR               with a guest IOMMU, the edu bound to
 *                                          vfio-pci: its DMA engine reaches
 *                                          what the IOMMU maps and nothing
 *                                          else (two maps, one range unmap,
 *                                          re-maps of one IOVA to other pages,
 *                                          the buffer's physical address);
 *                                          prints "VMM-CHECKPOINT edu_mapped"
 *                                          and idles with two pages mapped
 *                                          until the host's line on fd 3 (the
 *                                          control port inner-init.sh opens;
 *                                          none: 20 s)
 *
 *   guest-tool side BRIDGED DIRECT ROUNDS  the VM side-by-side bench (issue 18):
 *                                          per round, on both disks in
 *                                          alternating order, O_DIRECT 8 MiB
 *                                          sequential read and write (128 KiB),
 *                                          4 KiB random reads at queue depth 1
 *                                          and 16 (16 threads); one line each:
 *                                          "SIDE round kind who usec ops irqs"
 * Built with the host's gcc -static by build-inner-guest.sh (the inner guest
 * has no libc). Prints one line per check; exit 0 only when all passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BLK 512u
#define ALIGN 4096u
#define MAX_IO (4u << 20)

static int usage(void)
{
	fprintf(stderr, "usage: guest-tool readlba|verify|rw|loop|setmark|getmark|edu|edu-vfio|side ...\n");
	return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || *s == '\0' || *end != '\0') ? -1 : 0;
}

static void *xalloc(size_t n)
{
	void *p = NULL;

	if (posix_memalign(&p, ALIGN, n) != 0)
		return NULL;
	memset(p, 0, n);
	return p;
}

/* Read or write exactly n bytes at off on an O_DIRECT fd. */
static int xfer(int fd, void *buf, size_t n, uint64_t off, int wr)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = wr ? pwrite(fd, (char *)buf + done, n - done, (off_t)(off + done))
			       : pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "%s at %" PRIu64 ": %s\n", wr ? "pwrite" : "pread",
				off + done, r < 0 ? strerror(errno) : "short");
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

static int open_direct(const char *dev, int flags)
{
	int fd = open(dev, flags | O_DIRECT);

	if (fd < 0)
		fprintf(stderr, "open %s O_DIRECT: %s\n", dev, strerror(errno));
	return fd;
}

/* The 512-byte block the testbed writes at LBA n of its image. */
static void testbed_block(char *b, uint64_t n)
{
	int len = snprintf(b, BLK, "VUB-E2E-NVME LBA %" PRIu64 "\n", n);

	memset(b + len, '.', BLK - 1 - (size_t)len);
	b[BLK - 1] = '\n';
}

static int cmd_readlba(const char *dev, uint64_t lba, const char *prefix)
{
	char *buf = xalloc(ALIGN);
	int fd = open_direct(dev, O_RDONLY), rc = 1;

	if (fd < 0 || !buf)
		goto out;
	/* O_DIRECT wants logical-block alignment; read the aligned 4 KiB around it. */
	uint64_t base = lba * BLK / ALIGN * ALIGN;
	if (xfer(fd, buf, ALIGN, base, 0) == 0) {
		const char *b = buf + (lba * BLK - base);
		rc = strncmp(b, prefix, strlen(prefix)) != 0;
		printf("readlba %" PRIu64 ": %.*s\n", lba, (int)strcspn(b, "\n") > 60 ? 60 : (int)strcspn(b, "\n"), b);
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int cmd_verify(const char *dev, uint64_t lba, uint64_t count)
{
	size_t n = (size_t)(count * BLK);
	char *buf, want[BLK];
	int fd, rc = 1;

	if (count == 0 || n > MAX_IO || (lba * BLK) % ALIGN || n % ALIGN)
		return usage();
	buf = xalloc(n);
	fd = open_direct(dev, O_RDONLY);
	if (fd < 0 || !buf)
		goto out;
	if (xfer(fd, buf, n, lba * BLK, 0) != 0)
		goto out;
	for (uint64_t i = 0; i < count; i++) {
		testbed_block(want, lba + i);
		if (memcmp(buf + i * BLK, want, BLK) != 0) {
			printf("verify: LBA %" PRIu64 " differs: %.30s\n", lba + i, buf + i * BLK);
			goto out;
		}
	}
	printf("verify: LBA %" PRIu64 "..%" PRIu64 " hold the testbed pattern\n", lba, lba + count - 1);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static void fill(uint64_t *p, size_t n, uint64_t seed, uint64_t off)
{
	for (size_t i = 0; i < n / 8; i++) {
		uint64_t x = seed * 0x9e3779b97f4a7c15ull + off + i * 8;
		x ^= x >> 31;
		x *= 0xbf58476d1ce4e5b9ull;
		p[i] = x ^ (x >> 29);
	}
}

static int rw_once(int fd, uint64_t *wbuf, uint64_t *rbuf, size_t n, uint64_t off, uint64_t seed)
{
	fill(wbuf, n, seed, off);
	memset(rbuf, 0xa5, n);
	if (xfer(fd, wbuf, n, off, 1) != 0 || fdatasync(fd) != 0)
		return -1;
	if (xfer(fd, rbuf, n, off, 0) != 0)
		return -1;
	if (memcmp(wbuf, rbuf, n) != 0) {
		size_t i = 0;
		while (i < n / 8 && wbuf[i] == rbuf[i])
			i++;
		printf("rw: mismatch at byte %zu of %zu (seed %" PRIu64 ")\n", i * 8, n, seed);
		return -1;
	}
	return 0;
}

static int cmd_rw(const char *dev, uint64_t off, uint64_t bytes, uint64_t seed, int loop)
{
	uint64_t *w = NULL, *r = NULL;
	int fd, rc = 1;

	if (bytes == 0 || bytes > MAX_IO || bytes % ALIGN || off % ALIGN)
		return usage();
	w = xalloc(bytes);
	r = xalloc(bytes);
	fd = open_direct(dev, O_RDWR);
	if (fd < 0 || !w || !r)
		goto out;
	if (!loop) {
		if (rw_once(fd, w, r, bytes, off, seed) == 0) {
			printf("rw: %" PRIu64 " bytes at %" PRIu64 " written and read back (seed %" PRIu64 ")\n",
			       bytes, off, seed);
			rc = 0;
		}
		goto out;
	}
	for (uint64_t i = 1;; i++) {
		if (rw_once(fd, w, r, bytes, off, i) != 0)
			goto out;
		if (i == 1 || i % 4 == 0) {
			printf("loop %" PRIu64 "\n", i);
			fflush(stdout);
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(w);
	free(r);
	return rc;
}

static int cmd_setmark(const char *dev, uint64_t lba, const char *text)
{
	char *buf = xalloc(ALIGN);
	int fd = open_direct(dev, O_RDWR), rc = 1;

	if (fd < 0 || !buf || strlen(text) >= ALIGN || (lba * BLK) % ALIGN)
		goto out;
	memcpy(buf, text, strlen(text));
	rc = (xfer(fd, buf, ALIGN, lba * BLK, 1) != 0 || fdatasync(fd) != 0);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int cmd_getmark(const char *dev, uint64_t lba)
{
	char *buf = xalloc(ALIGN);
	int fd = open_direct(dev, O_RDONLY), rc = 1;

	if (fd < 0 || !buf || (lba * BLK) % ALIGN)
		goto out;
	if (xfer(fd, buf, ALIGN, lba * BLK, 0) == 0) {
		buf[ALIGN - 1] = '\0';
		printf("%s\n", buf);
		rc = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int sysfs_fd(const char *addr, const char *file, int flags)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", addr, file);
	fd = open(path, flags);
	if (fd < 0)
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
	return fd;
}

/* A checkpoint (inner-init.sh's, the same lines): idle until the host has
 * compared the bridge's DMA table with QEMU's and says so with a line on the
 * control port, fd 3 (120 s at most); without the port, 20 s. */
static void checkpoint(const char *step)
{
	char ch;
	int waited = 0, got = 0;

	printf("VMM-CHECKPOINT %s\n", step);
	fflush(stdout);
	if (fcntl(3, F_GETFD) < 0) {
		sleep(20);
	} else {
		while (!got && waited < 120) {
			struct pollfd p = { .fd = 3, .events = POLLIN };
			int n = poll(&p, 1, 1000);

			if (n < 0 && errno != EINTR)
				break;
			if (n <= 0) {
				waited++;
				continue;
			}
			if (read(3, &ch, 1) != 1)
				break;
			got = ch == '\n';
		}
		if (!got)
			printf("VMM: no word from the host at checkpoint %s\n", step);
	}
	printf("VMM-CHECKPOINT-END %s\n", step);
	fflush(stdout);
}

static int check(int ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok  " : "FAIL", what);
	return ok ? 0 : 1;
}

static int cmd_edu(const char *addr)
{
	volatile uint32_t *bar;
	uint16_t cmd;
	int fails = 0, fd;
	char what[128];

	/* Memory decoding on (the firmware usually did it; nothing else will). */
	fd = sysfs_fd(addr, "config", O_RDWR);
	if (fd < 0 || pread(fd, &cmd, 2, 4) != 2)
		return 1;
	if (!(cmd & 2)) {
		cmd |= 2;
		if (pwrite(fd, &cmd, 2, 4) != 2) {
			close(fd);
			return 1;
		}
	}
	close(fd);

	fd = sysfs_fd(addr, "resource0", O_RDWR | O_SYNC);
	if (fd < 0)
		return 1;
	bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (bar == MAP_FAILED) {
		fprintf(stderr, "mmap resource0: %s\n", strerror(errno));
		return 1;
	}
	uint32_t id = bar[0];
	snprintf(what, sizeof(what), "edu BAR0 id register reads 0x%08x (want 0x010000ed)", id);
	fails += check(id == 0x010000ed, what);

	bar[1] = 0x12345678;
	uint32_t live = bar[1];
	snprintf(what, sizeof(what), "edu liveness: wrote 0x12345678, read 0x%08x (want 0xedcba987)", live);
	fails += check(live == 0xedcba987, what);

	bar[2] = 10;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((bar[8] & 1) && t.tv_sec - t0.tv_sec < 10);
	uint32_t fact = bar[2];
	snprintf(what, sizeof(what), "edu factorial of 10 reads %u (want 3628800)", fact);
	fails += check(fact == 3628800, what);

	munmap((void *)bar, 4096);
	return fails != 0;
}

/* ---- edu through VFIO in the inner guest (its IOMMU in between) ---------- */

struct vdev {
	int container, group, dev;
	uint64_t bar0, cfg;   /* region offsets in the device fd */
};

static int reg_wr(struct vdev *v, uint32_t off, uint32_t val)
{
	return pwrite(v->dev, &val, 4, (off_t)(v->bar0 + off)) == 4 ? 0 : -1;
}

static uint32_t reg_rd(struct vdev *v, uint32_t off)
{
	uint32_t val = 0xffffffff;

	if (pread(v->dev, &val, 4, (off_t)(v->bar0 + off)) != 4)
		return 0xffffffff;
	return val;
}

/* One edu DMA of len bytes: to_ram from its buffer (0x40000) to iova, else
 * from iova into its buffer. 0 once the engine says done. */
static int edu_dma(struct vdev *v, uint64_t iova, uint32_t len, int to_ram)
{
	struct timespec t0, t;

	if (reg_wr(v, 0x80, (uint32_t)(to_ram ? 0x40000 : iova)) ||
	    reg_wr(v, 0x88, (uint32_t)(to_ram ? iova : 0x40000)) || reg_wr(v, 0x90, len) ||
	    reg_wr(v, 0x98, to_ram ? 3 : 1))
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((reg_rd(v, 0x98) & 1) && t.tv_sec - t0.tv_sec < 20);
	return (reg_rd(v, 0x98) & 1) ? -1 : 0;
}

static int vmap(struct vdev *v, uint64_t iova, void *p, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uint64_t)(uintptr_t)p, .iova = iova, .size = size,
	};
	return ioctl(v->container, VFIO_IOMMU_MAP_DMA, &m);
}

static int vunmap(struct vdev *v, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = size };
	return ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &u);
}

static uint64_t phys_of(void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, 8, (off_t)((uintptr_t)p / 4096 * 8)) != 8)
		e = 0;
	close(fd);
	return (e & (1ull << 63)) ? (e & ((1ull << 55) - 1)) * 4096 : 0;
}

static int vdev_open(const char *addr, struct vdev *v)
{
	char path[256], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", addr);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		fprintf(stderr, "%s: no IOMMU group (no guest IOMMU?)\n", addr);
		return -1;
	}
	link[n] = '\0';
	snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
	v->container = open("/dev/vfio/vfio", O_RDWR);
	v->group = open(path, O_RDWR);
	if (v->container < 0 || v->group < 0) {
		fprintf(stderr, "open /dev/vfio/vfio or %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) ||
	    ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
		fprintf(stderr, "VFIO container setup: %s\n", strerror(errno));
		return -1;
	}
	v->dev = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, addr);
	if (v->dev < 0) {
		fprintf(stderr, "VFIO_GROUP_GET_DEVICE_FD %s: %s\n", addr, strerror(errno));
		return -1;
	}
	struct vfio_region_info r = { .argsz = sizeof(r), .index = VFIO_PCI_BAR0_REGION_INDEX };
	if (ioctl(v->dev, VFIO_DEVICE_GET_REGION_INFO, &r))
		return -1;
	v->bar0 = r.offset;
	r = (struct vfio_region_info){ .argsz = sizeof(r), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	if (ioctl(v->dev, VFIO_DEVICE_GET_REGION_INFO, &r))
		return -1;
	v->cfg = r.offset;
	uint16_t cmd = 0;
	if (pread(v->dev, &cmd, 2, (off_t)(v->cfg + 4)) != 2)
		return -1;
	cmd |= 0x6;   /* memory decoding and bus mastering */
	return pwrite(v->dev, &cmd, 2, (off_t)(v->cfg + 4)) == 2 ? 0 : -1;
}

#define IOVA_A 0x100000u
#define PG 4096u

static int cmd_edu_vfio(const char *addr)
{
	struct vdev v = { -1, -1, -1, 0, 0 };
	int fails = 0, ok;
	char what[160];
	uint8_t *mem, pat[256];

	if (vdev_open(addr, &v) < 0)
		return check(0, "the edu opened through VFIO on the guest IOMMU") + 1;
	mem = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	memset(mem, 0, 8 * PG);
	for (unsigned i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 13 + 7);
	memcpy(mem, pat, sizeof(pat));
	uint32_t id = reg_rd(&v, 0);
	snprintf(what, sizeof(what), "edu id through VFIO reads 0x%08x", id);
	fails += check(id == 0x010000ed, what);

	/* two guest IOMMU mappings, one page each */
	ok = vmap(&v, IOVA_A, mem, PG) == 0 && vmap(&v, IOVA_A + PG, mem + PG, PG) == 0;
	fails += check(ok, "two 4 KiB maps at 0x100000 and 0x101000");
	ok = edu_dma(&v, IOVA_A, sizeof(pat), 0) == 0 && edu_dma(&v, IOVA_A + PG, sizeof(pat), 1) == 0;
	fails += check(ok && memcmp(mem + PG, pat, sizeof(pat)) == 0,
		       "edu DMA RAM 0x100000 -> device -> RAM 0x101000 through the guest IOMMU lands");
	checkpoint("edu_mapped");

	/* one unmap of the range holding both */
	fails += check(vunmap(&v, IOVA_A, 2 * PG) == 0, "one unmap of 0x100000+0x2000");
	memset(mem + PG, 0, PG);
	ok = edu_dma(&v, IOVA_A + PG, sizeof(pat), 1) == 0;
	fails += check(ok && mem[PG] == 0 && memcmp(mem + PG, mem + 2 * PG, sizeof(pat)) == 0,
		       "edu DMA to 0x101000 after its unmap does not reach the old page");

	/* re-map one IOVA to other pages: the device writes the new page only */
	int remap_bad = 0;
	for (unsigned i = 0; i < 8; i++) {
		uint8_t *page = mem + (2 + i % 4) * PG, *prev = mem + (2 + (i + 3) % 4) * PG;
		memset(mem + 2 * PG, 0, 4 * PG);
		if (vmap(&v, IOVA_A + PG, page, PG) || edu_dma(&v, IOVA_A + PG, sizeof(pat), 1) ||
		    vunmap(&v, IOVA_A + PG, PG)) {
			remap_bad++;
			continue;
		}
		if (memcmp(page, pat, sizeof(pat)) != 0 || (i && prev[0] != 0))
			remap_bad++;
	}
	snprintf(what, sizeof(what), "8 re-maps of 0x101000 to other pages: %d wrong", remap_bad);
	fails += check(remap_bad == 0, what);

	/* memory the IOMMU never mapped for the device, at its physical address */
	uint64_t pa = phys_of(mem + 6 * PG);
	memset(mem + 6 * PG, 0, PG);
	if (pa && pa < (1u << 28)) {
		ok = edu_dma(&v, pa, sizeof(pat), 1) == 0;
		snprintf(what, sizeof(what), "edu DMA to the physical address 0x%" PRIx64
			 " of an unmapped page does not reach it", pa);
		fails += check(ok && mem[6 * PG] == 0 && memcmp(mem + 6 * PG, mem + 7 * PG, 16) == 0,
			       what);
	} else {
		fails += check(0, "the physical address of a page (from /proc/self/pagemap)");
	}
	close(v.dev);
	close(v.group);
	close(v.container);
	munmap(mem, 8 * PG);
	return fails != 0;
}

/* ---- side: one VM, a bridged and a directly assigned nvme, alternating ---- */

#define SIDE_SEQ (8u << 20)
#define SIDE_SEQ_BS (128u << 10)
#define SIDE_SPAN (16u << 20)   /* random reads within the first 16 MiB */
#define SIDE_QD1_OPS 600u
#define SIDE_QD16_THREADS 16u
#define SIDE_QD16_OPS 60u       /* per thread */

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Interrupts of controller "nvmeN" (every "nvmeNq*" row of /proc/interrupts). */
static uint64_t nvme_irqs(const char *ctrl)
{
	char line[4096], want[32];
	uint64_t sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "%sq", ctrl);
	while (fgets(line, sizeof(line), f)) {
		char *name = strrchr(line, ' ');
		if (!name || strncmp(name + 1, want, strlen(want)) != 0)
			continue;
		char *p = strchr(line, ':');
		while (p && *++p) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);
			if (end == p)
				break;
			sum += v;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

struct side_job {
	int fd;
	uint64_t seed;
	unsigned ops;
	int err;
};

static void *side_rand(void *arg)
{
	struct side_job *j = arg;
	void *buf = xalloc(ALIGN);
	uint64_t x = j->seed * 6364136223846793005ull + 1442695040888963407ull;

	j->err = buf ? 0 : -1;
	for (unsigned i = 0; buf && i < j->ops && !j->err; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t off = ((x >> 33) % (SIDE_SPAN / ALIGN)) * ALIGN;
		j->err = xfer(j->fd, buf, ALIGN, off, 0);
	}
	free(buf);
	return NULL;
}

/* One measurement on one disk: usec, or 0 on an error. */
static uint64_t side_one(int fd, const char *kind, uint64_t seed, unsigned *ops)
{
	uint64_t t0 = now_us();

	if (!strcmp(kind, "seqread") || !strcmp(kind, "seqwrite")) {
		int wr = kind[3] == 'w';
		void *buf = xalloc(SIDE_SEQ_BS);
		if (!buf)
			return 0;
		memset(buf, (int)seed, SIDE_SEQ_BS);
		for (uint64_t off = 0; off < SIDE_SEQ; off += SIDE_SEQ_BS)
			if (xfer(fd, buf, SIDE_SEQ_BS, off, wr) != 0) {
				free(buf);
				return 0;
			}
		if (wr && fdatasync(fd) != 0) {
			free(buf);
			return 0;
		}
		free(buf);
		*ops = SIDE_SEQ / SIDE_SEQ_BS;
	} else {
		unsigned n = !strcmp(kind, "rand4k_qd1") ? 1 : SIDE_QD16_THREADS;
		struct side_job jobs[SIDE_QD16_THREADS];
		pthread_t th[SIDE_QD16_THREADS];
		for (unsigned i = 0; i < n; i++) {
			jobs[i] = (struct side_job){ fd, seed * 131 + i, n == 1 ? SIDE_QD1_OPS : SIDE_QD16_OPS, 0 };
			if (pthread_create(&th[i], NULL, side_rand, &jobs[i]) != 0)
				return 0;
		}
		int err = 0;
		for (unsigned i = 0; i < n; i++) {
			pthread_join(th[i], NULL);
			err |= jobs[i].err;
		}
		if (err)
			return 0;
		*ops = n * jobs[0].ops;
	}
	uint64_t us = now_us() - t0;
	return us ? us : 1;
}

/* "/dev/nvme1n1" -> "nvme1" */
static void ctrl_of(const char *dev, char *out, size_t n)
{
	const char *b = strrchr(dev, '/');

	snprintf(out, n, "%s", b ? b + 1 : dev);
	char *p = strchr(out + 4, 'n');
	if (p)
		*p = '\0';
}

static int cmd_side(const char *bridged, const char *direct, uint64_t rounds)
{
	static const char *kinds[] = { "seqread", "seqwrite", "rand4k_qd1", "rand4k_qd16" };
	const char *dev[2] = { bridged, direct }, *who[2] = { "bridge", "direct" };
	char ctrl[2][32];
	int fd[2];

	for (int d = 0; d < 2; d++) {
		ctrl_of(dev[d], ctrl[d], sizeof(ctrl[d]));
		fd[d] = open_direct(dev[d], O_RDWR);
		if (fd[d] < 0)
			return 1;
	}
	for (uint64_t r = 0; r < rounds; r++)
		for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			for (int i = 0; i < 2; i++) {
				int d = (int)((r + k + (unsigned)i) % 2);   /* alternate who goes first */
				unsigned ops = 0;
				uint64_t i0 = nvme_irqs(ctrl[d]);
				uint64_t us = side_one(fd[d], kinds[k], r + 1, &ops);
				uint64_t irqs = nvme_irqs(ctrl[d]) - i0;
				if (!us) {
					printf("SIDE-FAIL %" PRIu64 " %s %s\n", r, kinds[k], who[d]);
					return 1;
				}
				printf("SIDE %" PRIu64 " %s %s %" PRIu64 " %u %" PRIu64 "\n", r, kinds[k],
				       who[d], us, ops, irqs);
			}
	close(fd[0]);
	close(fd[1]);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t a, b, c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "readlba") && argc == 5 && !parse_u64(argv[3], &a))
		return cmd_readlba(argv[2], a, argv[4]);
	if (!strcmp(cmd, "verify") && argc == 5 && !parse_u64(argv[3], &a) && !parse_u64(argv[4], &b))
		return cmd_verify(argv[2], a, b);
	if (!strcmp(cmd, "rw") && argc == 6 && !parse_u64(argv[3], &a) && !parse_u64(argv[4], &b) &&
	    !parse_u64(argv[5], &c))
		return cmd_rw(argv[2], a, b, c, 0);
	if (!strcmp(cmd, "loop") && argc == 5 && !parse_u64(argv[3], &a) && !parse_u64(argv[4], &b))
		return cmd_rw(argv[2], a, b, 0, 1);
	if (!strcmp(cmd, "setmark") && argc == 5 && !parse_u64(argv[3], &a))
		return cmd_setmark(argv[2], a, argv[4]);
	if (!strcmp(cmd, "getmark") && argc == 4 && !parse_u64(argv[3], &a))
		return cmd_getmark(argv[2], a);
	if (!strcmp(cmd, "edu") && argc == 3)
		return cmd_edu(argv[2]);
	if (!strcmp(cmd, "edu-vfio") && argc == 3)
		return cmd_edu_vfio(argv[2]);
	if (!strcmp(cmd, "side") && argc == 5 && !parse_u64(argv[4], &a) && a > 0 && a <= 100)
		return cmd_side(argv[2], argv[3], a);
	return usage();
}

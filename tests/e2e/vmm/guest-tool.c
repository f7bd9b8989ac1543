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
 *
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
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BLK 512u
#define ALIGN 4096u
#define MAX_IO (4u << 20)

static int usage(void)
{
	fprintf(stderr, "usage: guest-tool readlba|verify|rw|loop|setmark|getmark|edu ...\n");
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
		if (i == 1 || i % 16 == 0) {
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
	return usage();
}

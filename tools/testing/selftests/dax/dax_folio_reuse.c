// SPDX-License-Identifier: GPL-2.0
/*
 * The blocks of a file on an fs-dax filesystem are mapped through the folios
 * of the pmem device's pages, at the order of the fault: a 2 MiB folio for a
 * PMD fault, 4 KiB folios for PTE faults. When a file range's last mapping
 * goes (here: a hole is punched), a large folio must be returned to order-0
 * pages, or mapping the same blocks again at another order finds a folio
 * that still claims them (dax_folio_init() warns, the rmap is wrong).
 *
 * Each test maps 2 MiB of a file at one order, writes it, punches the range
 * and allocates it again (getting the same blocks back, which it checks with
 * FIEMAP), maps it at the other order, and checks that the same physical
 * pages are mapped (/proc/self/pagemap), at the order expected (PAGEMAP_SCAN),
 * with the data written through each mapping, and that the kernel did not
 * warn meanwhile (/dev/kmsg, with the warnings that warn once re-armed).
 *
 * The filesystem is the first fs-dax mount in /proc/mounts (mounted with
 * -o dax, on pmem with pages: legacy pmem from memmap=SIZE!ADDR, or an
 * fsdax namespace). The tests skip without one, without root (physical
 * addresses in /proc/self/pagemap, /dev/kmsg), on pages other than 4 KiB
 * with 2 MiB PMDs, and when the filesystem does not give 2 MiB of a file
 * on 2 MiB aligned blocks, or the same blocks again after a punch (a
 * filesystem with a journal reuses freed blocks only after a commit:
 * ext4 without one, "mkfs.ext4 -O ^has_journal", does at once).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kselftest_harness.h"

#define SZ_4K		4096UL
#define SZ_2M		(2UL << 20)
#define NR_4K		(SZ_2M / SZ_4K)
#define FILE_SIZE	(8UL << 20)

/* The directory of the first fs-dax mount, or NULL */
static char *dax_dir(void)
{
	static char dir[4096];
	char line[8192];
	FILE *f = fopen("/proc/mounts", "r");

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		char mnt[4096], opts[4096], *opt, *save;

		if (sscanf(line, "%*s %4095s %*s %4095s", mnt, opts) != 2)
			continue;
		for (opt = strtok_r(opts, ",", &save); opt;
		     opt = strtok_r(NULL, ",", &save)) {
			if (!strcmp(opt, "dax") || !strcmp(opt, "dax=always")) {
				strcpy(dir, mnt);
				fclose(f);
				return dir;
			}
		}
	}
	fclose(f);
	return NULL;
}

/* Re-arm the kernel's warnings that warn once, if debugfs is there */
static void rearm_warn_once(void)
{
	int fd = open("/sys/kernel/debug/clear_warn_once", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			ksft_print_msg("clear_warn_once: %s\n", strerror(errno));
		close(fd);
	}
}

/* The first kernel warning, BUG or bad page logged on @kmsg since it was read */
static bool kernel_warned(int kmsg, char *line, size_t size)
{
	for (;;) {
		ssize_t n = read(kmsg, line, size - 1);

		if (n < 0 && errno == EPIPE)
			continue;	/* overwritten records: read on */
		if (n <= 0)
			return false;
		line[n] = 0;
		if (strstr(line, "WARNING:") || strstr(line, "BUG:") ||
		    strstr(line, "Bad page"))
			return true;
	}
}

/*
 * The physical offset of file offset @off, if one extent maps all of
 * [@off, @off + @len); -1 otherwise.
 */
static int64_t physical(int fd, off_t off, size_t len)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent fe[1];
	} m = {};

	m.fm.fm_start = off;
	m.fm.fm_length = len;
	m.fm.fm_flags = FIEMAP_FLAG_SYNC;
	m.fm.fm_extent_count = 1;
	if (ioctl(fd, FS_IOC_FIEMAP, &m.fm) || m.fm.fm_mapped_extents != 1)
		return -1;
	if (m.fe[0].fe_logical > (uint64_t)off ||
	    m.fe[0].fe_logical + m.fe[0].fe_length < off + len)
		return -1;
	return m.fe[0].fe_physical + (off - m.fe[0].fe_logical);
}

/* The PFN /proc/self/pagemap shows for @addr, or 0 if none */
static uint64_t pfn_of(int pagemap, void *addr)
{
	uint64_t e;
	off_t pos = (uintptr_t)addr / SZ_4K * sizeof(e);

	if (pread(pagemap, &e, sizeof(e), pos) != sizeof(e) || !(e >> 63))
		return 0;
	return e & ((1ULL << 55) - 1);
}

/* How many bytes of [@addr, @addr + @len) PAGEMAP_SCAN sees mapped huge */
static long huge_bytes(int pagemap, void *addr, size_t len)
{
	struct page_region r[8];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)addr,
		.end = (uintptr_t)addr + len,
		.vec = (uintptr_t)r,
		.vec_len = 8,
		.category_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	long n, i, bytes = 0;

	n = ioctl(pagemap, PAGEMAP_SCAN, &arg);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++)
		bytes += r[i].end - r[i].start;
	return bytes;
}

/*
 * Map 2 MiB of @fd from @off at a 2 MiB aligned address (PMD faults) or at
 * one 4 KiB off it (PTE faults only: the file and the address then differ
 * in their offset in a 2 MiB block).
 */
static char *map(int fd, off_t off, bool huge)
{
	char *area, *p;

	area = mmap(NULL, 3 * SZ_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (area == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)area + SZ_2M - 1) & ~(SZ_2M - 1));
	if (!huge)
		p += SZ_4K;
	if (mmap(p, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, off) != p) {
		munmap(area, 3 * SZ_2M);
		return NULL;
	}
	/* Keep only the file's mapping */
	munmap(area, p - area);
	munmap(p + SZ_2M, area + 3 * SZ_2M - (p + SZ_2M));
	return p;
}

static unsigned char pattern(int round, unsigned long i)
{
	return (unsigned char)(round * 37 + i * 7 + 1);
}

/* A file on the fs-dax filesystem, and the 2 MiB of it the test maps */
struct dax_file {
	char path[4200];
	int fd;
	int pagemap;
	int kmsg;
	off_t off;
	int64_t phys;
};

FIXTURE(dax) {
	struct dax_file f;
};

FIXTURE_SETUP(dax)
{
	struct dax_file *f = &self->f;
	char *dir = dax_dir();
	char pmd[32] = "";
	struct statx stx;
	off_t off;
	FILE *fp;

	f->fd = -1;
	f->pagemap = -1;
	f->kmsg = -1;
	if (!dir)
		SKIP(return, "no fs-dax mount (-o dax) in /proc/mounts");
	if (geteuid())
		SKIP(return, "not root: no PFNs in /proc/self/pagemap");
	fp = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
	if (fp) {
		if (!fgets(pmd, sizeof(pmd), fp))
			pmd[0] = 0;
		fclose(fp);
	}
	if (sysconf(_SC_PAGESIZE) != SZ_4K || strtoul(pmd, NULL, 10) != SZ_2M)
		SKIP(return, "pages of %ld bytes, PMDs of %s bytes: not 4 KiB and 2 MiB",
		     sysconf(_SC_PAGESIZE), pmd[0] ? pmd : "unknown ");

	f->pagemap = open("/proc/self/pagemap", O_RDONLY);
	ASSERT_GE(f->pagemap, 0);
	f->kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ASSERT_GE(f->kmsg, 0) TH_LOG("/dev/kmsg: %s", strerror(errno));
	ASSERT_LE(0, lseek(f->kmsg, 0, SEEK_END));
	rearm_warn_once();

	snprintf(f->path, sizeof(f->path), "%s/dax_folio_reuse.%d",
		 dir, getpid());
	f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_GE(f->fd, 0) TH_LOG("%s: %s", f->path, strerror(errno));
	/* Gone with the test, however it ends */
	unlink(f->path);
	ASSERT_EQ(0, statx(f->fd, "", AT_EMPTY_PATH, 0, &stx));
	if (!(stx.stx_attributes & STATX_ATTR_DAX))
		SKIP(return, "%s is not a DAX file", f->path);
	if (fallocate(f->fd, 0, 0, FILE_SIZE) && errno == EOPNOTSUPP)
		SKIP(return, "the filesystem does not fallocate()");
	ASSERT_EQ(FILE_SIZE, (unsigned long)lseek(f->fd, 0, SEEK_END))
		TH_LOG("fallocate: %s", strerror(errno));

	/*
	 * A 2 MiB block of the file on a 2 MiB aligned physical block, with
	 * blocks of the file before it (the allocator's goal when the block
	 * is allocated again).
	 */
	f->off = -1;
	for (off = SZ_2M; off + SZ_2M <= FILE_SIZE; off += SZ_2M) {
		int64_t phys = physical(f->fd, off, SZ_2M);

		if (phys >= 0 && !(phys % SZ_2M)) {
			f->off = off;
			f->phys = phys;
			break;
		}
	}
	if (f->off < 0)
		SKIP(return, "no 2 MiB of the file on 2 MiB aligned blocks");
}

FIXTURE_TEARDOWN(dax)
{
	struct dax_file *f = &self->f;

	if (f->fd >= 0)
		close(f->fd);
	if (f->pagemap >= 0)
		close(f->pagemap);
	if (f->kmsg >= 0)
		close(f->kmsg);
}

#define SKIPPED() (_metadata->exit_code == KSFT_SKIP)

/*
 * Map the test's 2 MiB at one order, check it reads zeroes, write @round's
 * pattern, check the order of the mapping and that its pages are 512 PFNs
 * from a 2 MiB aligned one, and that the file has the pattern once it is
 * unmapped. Return the first PFN, or 0 after a failure or a skip. No PMD
 * mapping skips the test on its first PMD round (PMDs may be off), and fails
 * it on a later one (the blocks were PMD mapped before).
 */
static uint64_t write_at_order(struct __test_metadata *_metadata,
			       struct dax_file *f, bool huge, int round,
			       bool first_huge)
{
	unsigned char *buf;
	uint64_t pfn0;
	unsigned long i;
	char *p;

	p = map(f->fd, f->off, huge);
	EXPECT_NE(NULL, p) TH_LOG("mmap: %s", strerror(errno));
	if (!p)
		return 0;

	for (i = 0; i < SZ_2M; i += SZ_4K) {
		if (p[i]) {
			EXPECT_EQ(0, p[i]) TH_LOG("page %lu, round %d",
						  i / SZ_4K, round);
			break;
		}
	}
	for (i = 0; i < SZ_2M; i += SZ_4K)
		memset(p + i, pattern(round, i / SZ_4K), SZ_4K);

	if (huge) {
		long bytes = huge_bytes(f->pagemap, p, SZ_2M);

		if (bytes == 0 && first_huge &&
		    _metadata->exit_code == KSFT_PASS) {
			munmap(p, SZ_2M);
			SKIP(return 0,
			     "no PMD mapping of fs-dax (CONFIG_FS_DAX_PMD?)");
		}
		EXPECT_EQ((long)SZ_2M, bytes) TH_LOG("round %d", round);
	} else {
		EXPECT_EQ(0L, huge_bytes(f->pagemap, p, SZ_2M));
	}

	pfn0 = pfn_of(f->pagemap, p);
	EXPECT_NE(0ULL, pfn0)
		TH_LOG("no PFN in /proc/self/pagemap (CAP_SYS_ADMIN?)");
	EXPECT_EQ(0ULL, pfn0 % NR_4K);
	for (i = 1; i < NR_4K; i++) {
		uint64_t pfn = pfn_of(f->pagemap, p + i * SZ_4K);

		if (pfn != pfn0 + i) {
			EXPECT_EQ(pfn0 + i, pfn) TH_LOG("page %lu", i);
			break;
		}
	}
	EXPECT_EQ(0, msync(p, SZ_2M, MS_SYNC));
	EXPECT_EQ(0, munmap(p, SZ_2M));

	buf = malloc(SZ_2M);
	EXPECT_NE(NULL, buf);
	if (!buf)
		return 0;
	EXPECT_EQ((ssize_t)SZ_2M, pread(f->fd, buf, SZ_2M, f->off));
	for (i = 0; i < SZ_2M; i++) {
		if (buf[i] != pattern(round, i / SZ_4K)) {
			EXPECT_EQ(pattern(round, i / SZ_4K), buf[i])
				TH_LOG("file byte %lu, round %d", i, round);
			break;
		}
	}
	free(buf);
	return _metadata->exit_code == KSFT_PASS ? pfn0 : 0;
}

/*
 * Punch the test's 2 MiB out of the file, which ends the last mapping of its
 * folios, and allocate it again: the same blocks must come back.
 */
static void punch_and_refill(struct __test_metadata *_metadata,
			     struct dax_file *f)
{
	ASSERT_EQ(0, fallocate(f->fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE, f->off, SZ_2M))
		TH_LOG("punch: %s", strerror(errno));
	ASSERT_EQ(-1, physical(f->fd, f->off, SZ_2M));
	ASSERT_EQ(0, fsync(f->fd));
	ASSERT_EQ(0, fallocate(f->fd, 0, f->off, SZ_2M))
		TH_LOG("fallocate: %s", strerror(errno));
	if (physical(f->fd, f->off, SZ_2M) != f->phys)
		SKIP(return, "the filesystem did not give the same blocks back (a journal?)");
}

/*
 * Three rounds over the same blocks, at alternating orders starting with
 * @huge, each after the previous round's folios lost their last mapping.
 */
static void rounds(struct __test_metadata *_metadata, struct dax_file *f,
		   bool huge)
{
	uint64_t first = 0, pfn;
	char line[8192];	/* a record of /dev/kmsg, whole */
	int round;

	for (round = 1; round <= 3; round++, huge = !huge) {
		if (round > 1) {
			punch_and_refill(_metadata, f);
			if (SKIPPED())
				return;
		}
		pfn = write_at_order(_metadata, f, huge, round,
				     huge && round <= 2);
		if (SKIPPED())
			return;
		ASSERT_NE(0ULL, pfn);
		if (round == 1)
			first = pfn;
		/* The same blocks (FIEMAP) are the same pmem pages */
		ASSERT_EQ(first, pfn) TH_LOG("round %d", round);
	}

	EXPECT_FALSE(kernel_warned(f->kmsg, line, sizeof(line)))
		TH_LOG("the kernel logged: %s", line);
}

/* A 2 MiB folio's blocks mapped again as 4 KiB folios, and back */
TEST_F(dax, pmd_then_pte)
{
	rounds(_metadata, &self->f, true);
}

/* 4 KiB folios' blocks mapped again as a 2 MiB folio, and back */
TEST_F(dax, pte_then_pmd)
{
	rounds(_metadata, &self->f, false);
}

TEST_HARNESS_MAIN

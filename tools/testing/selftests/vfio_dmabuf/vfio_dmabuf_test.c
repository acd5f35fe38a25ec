// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO_DEVICE_FEATURE_DMA_BUF: export slices of PCI BARs as dma-bufs.
 *
 * The tests bind emulated PCI devices to vfio-pci, open them through the
 * iommufd cdev (/dev/vfio/devices/vfioN bound to /dev/iommu) and through the
 * legacy group and container (/dev/vfio/N, /dev/vfio/vfio with the type1v2
 * IOMMU), export dma-bufs from their BARs, and check the results, every error
 * with its errno, and, with the test_dmabuf_importer module, what an importer
 * gets: the DMA addresses of the mapping, which importers are refused, and
 * the move_notify calls when the exporter revokes the buffer.
 *
 * Topology (QEMU q35 with intel-iommu; devices are found by vendor:device,
 * tests whose device is missing are skipped):
 *
 *   root port -- switch -+- downstream port -- ivshmem-plain (1af4:1110):
 *                        |     BAR0 256 bytes of registers, BAR2 64-bit
 *                        |     prefetchable RAM (4 MiB), the exporter
 *                        +- downstream port -- edu (1234:11e8), the peer
 *   root port -- edu (1234:11e8), alone on its bus: it can be reset, and it
 *                reaches the ivshmem only through the host bridge
 *   pci-testdev (1b36:0005): BAR1 is an I/O BAR
 *
 * In q35 bus addresses are CPU physical addresses, so the bus address of a
 * BAR is the start given in /sys/bus/pci/devices/X/resource.
 *
 * Needs root, CONFIG_VFIO_PCI_DMABUF and the test_dmabuf_importer module
 * (CONFIG_TEST_DMABUF_IMPORTER=m), which the test loads itself: the one found
 * under /lib/modules/$(uname -r), or the one $VFIO_DMABUF_IMPORTER_MODULE
 * names.
 *
 * The DMA test moves bytes from the ivshmem BAR to guest memory with the DMA
 * engine of the peer edu, at the bus address the importer got. If the host
 * wrote the pattern described at HOST_MAGIC into the backing file of the
 * ivshmem, it checks that; otherwise it writes its own through the BAR.
 * Through the iommufd cdev the edu also writes into the BAR (DEVICE_MAGIC),
 * where the host can read the bytes after the run.
 *
 * "vfio_dmabuf_test --bench" measures instead of testing: export time,
 * attach, map and unmap times, and the number of DMA ranges of the mapping,
 * for 1, 64 and 4096 ranges and totals from 4 KiB to 1 GiB.
 */

#include "../kselftest_harness.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/udmabuf.h>

#include "vfio_dmabuf.h"

/* The uAPI is the one of mainline: check its layout. */
static_assert(VFIO_DEVICE_FEATURE_DMA_BUF == 11, "feature number");
static_assert(sizeof(struct vfio_region_dma_range) == 16, "range size");
static_assert(offsetof(struct vfio_region_dma_range, offset) == 0, "offset");
static_assert(offsetof(struct vfio_region_dma_range, length) == 8, "length");
static_assert(sizeof(struct vfio_device_feature_dma_buf) == 16, "header size");
static_assert(offsetof(struct vfio_device_feature_dma_buf, region_index) == 0,
	      "region_index");
static_assert(offsetof(struct vfio_device_feature_dma_buf, open_flags) == 4,
	      "open_flags");
static_assert(offsetof(struct vfio_device_feature_dma_buf, flags) == 8,
	      "flags");
static_assert(offsetof(struct vfio_device_feature_dma_buf, nr_ranges) == 12,
	      "nr_ranges");
static_assert(offsetof(struct vfio_device_feature_dma_buf, dma_ranges) == 16,
	      "dma_ranges");
static_assert(sizeof(struct vfio_device_feature) == 8, "feature header");

/* And the one of the importer, which has no padding holes. */
static_assert(sizeof(struct test_dmabuf_importer_attach) == 32, "attach");
static_assert(sizeof(struct test_dmabuf_importer_map) == 32, "map");
static_assert(sizeof(struct test_dmabuf_importer_id) == 8, "id");
static_assert(sizeof(struct test_dmabuf_importer_info) == 48, "info");
static_assert(sizeof(struct test_dmabuf_importer_bench) == 48, "bench");

/*
 * Calls of move_notify for one revocation of a dma-buf, and for one
 * un-revocation: the exporter notifies its importers of both, as mainline
 * does, so that they map again.
 */
#define REVOKE_NOTIFIES		1
#define UNREVOKE_NOTIFIES	1

/* edu registers and its DMA engine. */
#define EDU_ID			0x00
#define EDU_DMA_SRC		0x80
#define EDU_DMA_DST		0x88
#define EDU_DMA_COUNT		0x90
#define EDU_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_PCI		0x2
#define EDU_DMA_BUF		0x40000
#define EDU_DMA_BUF_SIZE	4096
/*
 * QEMU 7.2's edu rejects a transfer that ends exactly at the end of its
 * buffer (an off-by-one in its range check, which stops QEMU with a hardware
 * error), so the test moves the first half of the buffer.
 */
#define EDU_DMA_LEN		(EDU_DMA_BUF_SIZE / 2)

/*
 * The host may fill the backing file of the ivshmem before the guest boots:
 * these 16 bytes at offset 0, and in the page at 4096 byte i is
 * host_pattern(i), e.g.
 *
 *   printf 'vfio_dmabuf host' | dd of=$FILE conv=notrunc
 *   python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 255
 *     for i in range(4096)))' | dd of=$FILE bs=4096 seek=1 conv=notrunc
 */
#define HOST_MAGIC		"vfio_dmabuf host"
#define HOST_PATTERN_OFFSET	4096

static uint8_t host_pattern(size_t i)
{
	return (i * 7 + 3) & 0xff;
}

/* The pattern of the host, or the one the test writes if it has none. */
static uint8_t expected_byte(bool host, size_t i)
{
	return host ? host_pattern(i) : host_pattern(i) ^ 0x5a;
}

#define MAX_ENTRIES		64

/* Any PCI device of the topology but @not, as the importing device. */
static const struct vd_pci *any_pci_but(const struct vd_env *env,
					const struct vd_pci *not)
{
	const struct vd_pci *all[] = {
		&env->ivshmem, &env->edu_peer, &env->edu_alone, &env->testdev,
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(all); i++)
		if (all[i]->present && strcmp(all[i]->name, not->name))
			return all[i];
	return NULL;
}

/* Any PCI device of the topology, as the importing device. */
static const struct vd_pci *any_pci(const struct vd_env *env)
{
	if (env->ivshmem.present)
		return &env->ivshmem;
	if (env->edu_peer.present)
		return &env->edu_peer;
	if (env->edu_alone.present)
		return &env->edu_alone;
	if (env->testdev.present)
		return &env->testdev;
	return NULL;
}

/* What a test of the fixture works with. */
struct vd_test {
	struct vd_env env;
	struct vd_vfio vfio;
	int importer;
	long page;
	/* A test removed this device: the teardown rescans the bus. */
	char rescan[16];
};

FIXTURE(vfio_dmabuf) {
	struct vd_test t;
};

FIXTURE_VARIANT(vfio_dmabuf) {
	/* The iommufd cdev, or the group and container path. */
	bool cdev;
};

FIXTURE_VARIANT_ADD(vfio_dmabuf, iommufd) {
	.cdev = true,
};

FIXTURE_VARIANT_ADD(vfio_dmabuf, group) {
	.cdev = false,
};

FIXTURE_SETUP(vfio_dmabuf)
{
	int ret;

	self->t.importer = -1;
	self->t.vfio.iommufd = -1;
	self->t.vfio.container = -1;
	if (geteuid())
		SKIP(return, "must be run as root");
	vd_find_devices(&self->t.env);
	if (!any_pci(&self->t.env))
		SKIP(return, "%s", vd_missing("device of the test topology"));
	self->t.page = self->t.env.page_size;
	ret = vd_vfio_init(&self->t.vfio, variant->cdev);
	ASSERT_EQ(0, ret)
		TH_LOG("%s", vd_errmsg);
}

FIXTURE_TEARDOWN(vfio_dmabuf)
{
	if (self->t.importer >= 0)
		close(self->t.importer);
	vd_vfio_fini(&self->t.vfio);
	/* Bring a removed device back for the tests that follow. */
	if (self->t.rescan[0]) {
		char path[PATH_MAX];
		int fd;

		fd = open("/sys/bus/pci/rescan", O_WRONLY | O_CLOEXEC);
		EXPECT_LE(0, fd)
			TH_LOG("/sys/bus/pci/rescan: %s", strerror(errno));
		if (fd >= 0) {
			EXPECT_EQ(1, write(fd, "1", 1))
				TH_LOG("rescan: %s", strerror(errno));
			close(fd);
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s",
			 self->t.rescan);
		EXPECT_EQ(0, access(path, F_OK))
			TH_LOG("%s did not come back: %s", self->t.rescan,
			       strerror(errno));
	}
}

/*
 * Open a device of the topology. Returns false if the test must end: the
 * device is missing (skip) or cannot be opened (fail).
 */
static bool open_dev(struct __test_metadata *_metadata,
		     struct vd_test *self, const struct vd_pci *pci,
		     const char *what, struct vd_dev *dev)
{
	int ret;

	struct vfio_device_feature probe = {
		.argsz = sizeof(probe),
		.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
			 VFIO_DEVICE_FEATURE_DMA_BUF,
	};

	if (!pci->present)
		SKIP(return false, "%s", vd_missing(what));
	ret = vd_dev_open(&self->vfio, pci, dev);
	EXPECT_EQ(0, ret)
		TH_LOG("%s %s: %s", what, pci->name, vd_errmsg);
	if (ret)
		return false;
	/* A kernel without the feature: nothing to test (kselftest convention). */
	if (vd_feature_ioctl(dev->fd, &probe) == -ENOTTY) {
		vd_dev_close(dev);
		SKIP(return false,
		     "kernel without VFIO_DEVICE_FEATURE_DMA_BUF (ENOTTY): CONFIG_VFIO_PCI_DMABUF");
	}
	return true;
}

static bool open_ivshmem(struct __test_metadata *_metadata,
			 struct vd_test *self, struct vd_dev *dev)
{
	if (!open_dev(_metadata, self, &self->env.ivshmem,
		      "ivshmem-plain (1af4:1110)", dev))
		return false;
	EXPECT_LE(4 * self->page, dev->regions[IVSHMEM_RAM_BAR].size)
		TH_LOG("the ivshmem RAM BAR is too small");
	return dev->regions[IVSHMEM_RAM_BAR].size >= 4 * self->page;
}

/*
 * Open the importer. A kernel built without the test module skips (the
 * config asks for it); a module that is there but cannot be used fails.
 */
static bool open_importer(struct __test_metadata *_metadata,
			  struct vd_test *self)
{
	self->importer = vd_importer_open();
	if (self->importer == -ENOENT &&
	    access("/sys/module/" IMPORTER_NAME, F_OK))
		SKIP(return false, "%s", vd_errmsg);
	EXPECT_LE(0, self->importer)
		TH_LOG("%s", vd_errmsg);
	return self->importer >= 0;
}

static int export1(struct vd_dev *dev, __u32 region, __u64 offset,
		   __u64 length, __u32 open_flags)
{
	struct vfio_region_dma_range r = { .offset = offset, .length = length };

	return vd_export(dev->fd, region, &r, 1, open_flags);
}

static off_t dmabuf_size(int fd)
{
	return lseek(fd, 0, SEEK_END);
}

/* A VFIO_DEVICE_FEATURE buffer for VFIO_DEVICE_FEATURE_DMA_BUF. */
struct feature_buf {
	__u64 buf[(sizeof(struct vfio_device_feature) +
		   sizeof(struct vfio_device_feature_dma_buf) +
		   4 * sizeof(struct vfio_region_dma_range)) / sizeof(__u64)];
	struct vfio_device_feature *feature;
	struct vfio_device_feature_dma_buf *get;
	struct vfio_region_dma_range *ranges;
};

static void feature_buf_init(struct feature_buf *b, __u32 flags, __u32 region,
			     __u32 nr)
{
	memset(b->buf, 0, sizeof(b->buf));
	b->feature = (void *)b->buf;
	b->get = (void *)b->feature->data;
	b->ranges = b->get->dma_ranges;
	b->feature->argsz = sizeof(*b->feature) + sizeof(*b->get) +
			    nr * sizeof(*b->ranges);
	b->feature->flags = flags | VFIO_DEVICE_FEATURE_DMA_BUF;
	b->get->region_index = region;
	b->get->open_flags = O_RDWR | O_CLOEXEC;
	b->get->nr_ranges = nr;
}

static __u64 sum_ranges(const struct vfio_region_dma_range *r, unsigned int nr)
{
	__u64 sum = 0;
	unsigned int i;

	for (i = 0; i < nr; i++)
		sum += r[i].length;
	return sum;
}

/* Export @r, check the size of the dma-buf, and return its fd. */
static int export_checked(struct __test_metadata *_metadata,
			  struct vd_dev *dev, __u32 region,
			  const struct vfio_region_dma_range *r,
			  unsigned int nr)
{
	int fd;

	fd = vd_export(dev->fd, region, r, nr, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd)
		TH_LOG("export of region %u: %s", region, strerror(-fd));
	ASSERT_EQ((off_t)sum_ranges(r, nr), dmabuf_size(fd));
	return fd;
}

/*
 * Map attachment @id and check that it is a bus address mapping of the
 * ranges @r of a BAR at bus address @bar: a DMA range for each range at
 * the bus address of its start, and no struct page.
 */
static void check_bus_addr_map(struct __test_metadata *_metadata, int imp,
			       __u32 id, uint64_t bar,
			       const struct vfio_region_dma_range *r,
			       unsigned int nr)
{
	struct test_dmabuf_importer_dma_range e[MAX_ENTRIES];
	struct test_dmabuf_importer_map map;
	unsigned int i;
	int ret;

	ASSERT_GE(MAX_ENTRIES, nr);
	memset(e, 0xff, sizeof(e));
	ret = imp_map(imp, id, e, MAX_ENTRIES, &map);
	ASSERT_EQ(0, ret)
		TH_LOG("map: %s", strerror(-ret));
	ASSERT_EQ(nr, map.nents);
	ASSERT_EQ(0, map.flags & TEST_DMABUF_IMPORTER_MAP_PAGES);
	ASSERT_EQ(sum_ranges(r, nr), map.total_len);
	for (i = 0; i < nr; i++) {
		EXPECT_EQ(bar + r[i].offset, e[i].dma_addr)
			TH_LOG("range %u", i);
		EXPECT_EQ(r[i].length, e[i].len)
			TH_LOG("range %u", i);
	}
}

static void check_info(struct __test_metadata *_metadata, int imp, __u32 id,
		       __u64 move_notifies, __u32 mapped)
{
	struct test_dmabuf_importer_info info;

	ASSERT_EQ(0, imp_info(imp, id, &info));
	EXPECT_EQ(move_notifies, info.move_notifies);
	EXPECT_EQ(mapped, info.mapped);
}

static uint64_t bar_start(struct __test_metadata *_metadata,
			  const struct vd_pci *pci, unsigned int bar)
{
	uint64_t start, size;
	int ret;

	ret = vd_bar_resource(pci, bar, &start, &size);
	ASSERT_EQ(0, ret)
		TH_LOG("%s", vd_errmsg);
	ASSERT_NE(0, start);
	return start;
}

/* PROBE succeeds with GET, as for any supported feature. */
TEST_F(vfio_dmabuf, probe)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
			 VFIO_DEVICE_FEATURE_DMA_BUF,
	};
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(0, vd_feature_ioctl(dev.fd, &f));
	/* SET is not supported, not even for PROBE. */
	f.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		  VFIO_DEVICE_FEATURE_DMA_BUF;
	ASSERT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, &f));
}

TEST_F(vfio_dmabuf, whole_bar)
{
	struct vd_dev dev;
	__u64 size;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	size = dev.regions[IVSHMEM_RAM_BAR].size;
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, size, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd)
		TH_LOG("%s", strerror(-fd));
	ASSERT_EQ((off_t)size, dmabuf_size(fd));
	ASSERT_EQ(0, close(fd));
}

TEST_F(vfio_dmabuf, partial_slice)
{
	struct vfio_region_dma_range r = {
		.offset = self->t.page,
		.length = 2 * self->t.page,
	};
	struct vd_dev dev;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, close(fd));
}

TEST_F(vfio_dmabuf, several_ranges)
{
	struct vfio_region_dma_range r[3];
	struct vd_dev dev;
	__u64 size;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	size = dev.regions[IVSHMEM_RAM_BAR].size;
	r[0].offset = size - self->t.page;
	r[0].length = self->t.page;
	r[1].offset = 0;
	r[1].length = 2 * self->t.page;
	r[2].offset = size / 2;
	r[2].length = size / 2;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, r, 3);
	ASSERT_EQ(0, close(fd));
}

TEST_F(vfio_dmabuf, repeated_and_overlapping_ranges)
{
	struct vfio_region_dma_range r[4];
	struct vd_dev dev;
	__u64 size;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	size = dev.regions[IVSHMEM_RAM_BAR].size;
	r[0].offset = 0;
	r[0].length = 2 * self->t.page;
	r[1] = r[0];
	r[2].offset = self->t.page;
	r[2].length = 2 * self->t.page;
	r[3].offset = 0;
	r[3].length = size;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, r, 4);
	ASSERT_EQ(0, close(fd));
}

/* The size is what lseek(SEEK_END) reports; that is all lseek() does. */
TEST_F(vfio_dmabuf, lseek)
{
	struct vfio_region_dma_range r[2] = {
		{ .offset = 0, .length = self->t.page },
		{ .offset = 3 * self->t.page, .length = self->t.page },
	};
	struct vd_dev dev;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, r, 2);
	ASSERT_EQ(2 * self->t.page, lseek(fd, 0, SEEK_END));
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	ASSERT_EQ(-1, lseek(fd, self->t.page, SEEK_SET));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(0, close(fd));
}

TEST_F(vfio_dmabuf, cloexec)
{
	struct vd_dev dev;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD));
	ASSERT_EQ(0, close(fd));

	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fcntl(fd, F_GETFD));
	ASSERT_EQ(0, close(fd));
}

TEST_F(vfio_dmabuf, access_mode)
{
	static const int modes[] = { O_RDONLY, O_WRONLY, O_RDWR };
	struct vd_dev dev;
	unsigned int i;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	for (i = 0; i < ARRAY_SIZE(modes); i++) {
		fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page,
			     modes[i] | O_CLOEXEC);
		ASSERT_LE(0, fd);
		EXPECT_EQ(modes[i], fcntl(fd, F_GETFL) & O_ACCMODE);
		ASSERT_EQ(0, close(fd));
	}
}

#define MANY_DMABUFS	100

TEST_F(vfio_dmabuf, many_dmabufs_on_one_bar)
{
	int fds[MANY_DMABUFS], nfds;
	struct vd_dev dev;
	__u64 npages;
	unsigned int i;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	nfds = vd_count_fds();
	ASSERT_LT(0, nfds);
	npages = dev.regions[IVSHMEM_RAM_BAR].size / self->t.page;
	for (i = 0; i < MANY_DMABUFS; i++) {
		__u64 len = (i % 4 + 1) * self->t.page;

		fds[i] = export1(&dev, IVSHMEM_RAM_BAR,
				 (i % (npages - 4)) * self->t.page, len,
				 O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, fds[i])
			TH_LOG("dma-buf %u: %s", i, strerror(-fds[i]));
	}
	for (i = 0; i < MANY_DMABUFS; i++)
		EXPECT_EQ((off_t)((i % 4 + 1) * self->t.page),
			  dmabuf_size(fds[i]));
	ASSERT_EQ(nfds + MANY_DMABUFS, vd_count_fds());
	for (i = 0; i < MANY_DMABUFS; i++)
		ASSERT_EQ(0, close(fds[i]));
	ASSERT_EQ(nfds, vd_count_fds());
}

/*
 * Closing the device revokes its dma-bufs for good, but they stay valid
 * files.
 */
TEST_F(vfio_dmabuf, dmabuf_outlives_device_fd)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = self->t.page };
	struct vd_dev dev;
	__u32 id, id2;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, imp_attach(self->t.importer, fd, &dev.pci, 0, &id));
	ASSERT_EQ(0, imp_map(self->t.importer, id, NULL, 0, NULL));

	vd_dev_close(&dev);

	ASSERT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD));
	ASSERT_EQ((off_t)self->t.page, dmabuf_size(fd));
	check_info(_metadata, self->t.importer, id, REVOKE_NOTIFIES, 0);
	ASSERT_EQ(-ENODEV, imp_map(self->t.importer, id, NULL, 0, NULL));
	ASSERT_EQ(-ENODEV, imp_attach(self->t.importer, fd, &dev.pci, 0, &id2));
	ASSERT_EQ(0, imp_detach(self->t.importer, id));
	ASSERT_EQ(0, close(fd));
}

/* The CPU cannot map MMIO exported this way. */
TEST_F(vfio_dmabuf, mmap_refused)
{
	struct vd_dev dev;
	void *p;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	p = mmap(NULL, self->t.page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_EQ(MAP_FAILED, p);
	ASSERT_EQ(EINVAL, errno);
	p = mmap(NULL, self->t.page, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_EQ(MAP_FAILED, p);
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(0, close(fd));
}

/* The errno table, one row per test. */

TEST_F(vfio_dmabuf, io_bar)
{
	struct vd_dev dev;

	if (!open_dev(_metadata, &self->t, &self->t.env.testdev,
		      "pci-testdev (1b36:0005)", &dev))
		return;
	ASSERT_NE(0, dev.regions[TESTDEV_IO_BAR].size)
		TH_LOG("pci-testdev has no BAR1");
	ASSERT_EQ(-EINVAL, export1(&dev, TESTDEV_IO_BAR, 0, self->t.page,
				   O_RDWR));
}

TEST_F(vfio_dmabuf, upper_half_of_64bit_bar)
{
	struct vd_dev dev;
	uint32_t bar;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(0, vd_cfg_read(&dev, PCI_BASE_ADDRESS_0 + 4 * IVSHMEM_RAM_BAR,
				 &bar, sizeof(bar)));
	ASSERT_EQ(PCI_BASE_ADDRESS_MEM_TYPE_64,
		  bar & PCI_BASE_ADDRESS_MEM_TYPE_MASK)
		TH_LOG("BAR%d of the ivshmem is not a 64-bit BAR", IVSHMEM_RAM_BAR);
	ASSERT_EQ(0, dev.regions[IVSHMEM_RAM_BAR + 1].size);
	ASSERT_EQ(-ENODEV, export1(&dev, IVSHMEM_RAM_BAR + 1, 0, self->t.page,
				   O_RDWR));
}

TEST_F(vfio_dmabuf, unimplemented_bar)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	/* ivshmem-plain has no BAR1; ivshmem-doorbell has its MSI-X there. */
	if (dev.regions[1].size)
		SKIP(return, "the ivshmem has a BAR1");
	ASSERT_EQ(-ENODEV, export1(&dev, 1, 0, self->t.page, O_RDWR));
}

TEST_F(vfio_dmabuf, rom_region)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-ENODEV, export1(&dev, VFIO_PCI_ROM_REGION_INDEX, 0,
				   self->t.page, O_RDWR));
}

TEST_F(vfio_dmabuf, config_region)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-ENODEV, export1(&dev, VFIO_PCI_CONFIG_REGION_INDEX, 0,
				   self->t.page, O_RDWR));
}

TEST_F(vfio_dmabuf, vga_region)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-ENODEV, export1(&dev, VFIO_PCI_VGA_REGION_INDEX, 0,
				   self->t.page, O_RDWR));
}

TEST_F(vfio_dmabuf, region_index_out_of_range)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-ENODEV, export1(&dev, VFIO_PCI_NUM_REGIONS, 0, self->t.page,
				   O_RDWR));
	ASSERT_EQ(-ENODEV, export1(&dev, ~0U, 0, self->t.page, O_RDWR));
}

TEST_F(vfio_dmabuf, bar_smaller_than_page)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_NE(0, dev.regions[IVSHMEM_REGS_BAR].size);
	ASSERT_GT(self->t.page, dev.regions[IVSHMEM_REGS_BAR].size);
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_REGS_BAR, 0, self->t.page,
				   O_RDWR));
}

TEST_F(vfio_dmabuf, zero_length)
{
	struct vfio_region_dma_range r[2] = {
		{ .offset = 0, .length = self->t.page },
		{ .offset = self->t.page, .length = 0 },
	};
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-EINVAL, vd_export(dev.fd, IVSHMEM_RAM_BAR, &r[1], 1,
				     O_RDWR));
	/* Also when it is not the first range. */
	ASSERT_EQ(-EINVAL, vd_export(dev.fd, IVSHMEM_RAM_BAR, r, 2, O_RDWR));
}

TEST_F(vfio_dmabuf, unaligned_offset)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, 1, self->t.page,
				   O_RDWR));
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, self->t.page / 2,
				   self->t.page, O_RDWR));
}

TEST_F(vfio_dmabuf, unaligned_length)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, 0, 1, O_RDWR));
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page + 1,
				   O_RDWR));
}

TEST_F(vfio_dmabuf, total_length_overflows)
{
	struct vfio_region_dma_range r[2];
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	/* The sum wraps around to 0. */
	r[0].offset = 0;
	r[0].length = 1ULL << 63;
	r[1] = r[0];
	ASSERT_EQ(-EINVAL, vd_export(dev.fd, IVSHMEM_RAM_BAR, r, 2, O_RDWR));
	/* The sum has bit 63 set. */
	r[0].length = self->t.page;
	r[1].length = (1ULL << 63) - self->t.page;
	ASSERT_EQ(-EINVAL, vd_export(dev.fd, IVSHMEM_RAM_BAR, r, 2, O_RDWR));
}

TEST_F(vfio_dmabuf, address_overflows)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	/* BAR start + offset wraps around phys_addr_t. */
	ASSERT_EQ(-EOVERFLOW, export1(&dev, IVSHMEM_RAM_BAR, -self->t.page,
				      self->t.page, O_RDWR));
}

/*
 * vfio-pci requests and maps a BAR's resources the first time the BAR is
 * used. First uses racing on the same BAR must all succeed: unserialised,
 * the losers failed with EBUSY (read, mmap) or a spurious ENODEV (export).
 */
#define FIRST_USE_ROUNDS	100

enum first_use_kind { FIRST_EXPORT, FIRST_READ, FIRST_MMAP, FIRST_NR };

static const char *const first_use_name[FIRST_NR] = {
	"export", "pread", "mmap",
};

struct first_use {
	struct vd_dev *dev;
	pthread_barrier_t *start;
	enum first_use_kind kind;
	long page;
	int err;		/* 0, or the errno the first use failed with */
};

static void *first_use_thread(void *arg)
{
	struct first_use *u = arg;
	__u64 offset = u->dev->regions[IVSHMEM_RAM_BAR].offset;
	uint32_t word;
	void *p;
	int fd;

	pthread_barrier_wait(u->start);
	switch (u->kind) {
	case FIRST_EXPORT:
		fd = export1(u->dev, IVSHMEM_RAM_BAR, 0, u->page, O_RDWR);
		if (fd < 0)
			u->err = -fd;
		else
			close(fd);
		break;
	case FIRST_READ:
		if (pread(u->dev->fd, &word, sizeof(word), offset) != sizeof(word))
			u->err = errno ? errno : EIO;
		break;
	default:
		p = mmap(NULL, u->page, PROT_READ, MAP_SHARED, u->dev->fd,
			 offset);
		if (p == MAP_FAILED)
			u->err = errno;
		else
			munmap(p, u->page);
		break;
	}
	return NULL;
}

TEST_F(vfio_dmabuf, first_use_race)
{
	int round, i, failed[FIRST_NR] = {};
	struct first_use u[FIRST_NR];
	pthread_t thread[FIRST_NR];
	pthread_barrier_t start;
	struct vd_dev dev;

	for (round = 0; round < FIRST_USE_ROUNDS; round++) {
		/* A new open: the BARs are set up again on first use. */
		if (!open_ivshmem(_metadata, &self->t, &dev))
			return;
		ASSERT_EQ(0, pthread_barrier_init(&start, NULL, FIRST_NR));
		for (i = 0; i < FIRST_NR; i++) {
			u[i] = (struct first_use){
				.dev = &dev, .start = &start, .kind = i,
				.page = self->t.page,
			};
			ASSERT_EQ(0, pthread_create(&thread[i], NULL,
						    first_use_thread, &u[i]));
		}
		for (i = 0; i < FIRST_NR; i++) {
			ASSERT_EQ(0, pthread_join(thread[i], NULL));
			if (u[i].err && !failed[i]++)
				TH_LOG("round %d: %s failed: %s", round,
				       first_use_name[i], strerror(u[i].err));
		}
		pthread_barrier_destroy(&start);
		vd_dev_close(&dev);
	}
	/* Braces: the harness logs after the statement the loop runs. */
	for (i = 0; i < FIRST_NR; i++) {
		EXPECT_EQ(0, failed[i])
			TH_LOG("%s failed in %d of %d rounds", first_use_name[i],
			       failed[i], FIRST_USE_ROUNDS);
	}
}

TEST_F(vfio_dmabuf, past_the_end)
{
	struct vd_dev dev;
	__u64 size;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	size = dev.regions[IVSHMEM_RAM_BAR].size;
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, size - self->t.page,
				   2 * self->t.page, O_RDWR));
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, size, self->t.page,
				   O_RDWR));
	ASSERT_EQ(-EINVAL, export1(&dev, IVSHMEM_RAM_BAR, 0, size + self->t.page,
				   O_RDWR));
}

TEST_F(vfio_dmabuf, no_ranges)
{
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	ASSERT_EQ(-EINVAL, vd_export(dev.fd, IVSHMEM_RAM_BAR, NULL, 0, O_RDWR));
}

TEST_F(vfio_dmabuf, flags_not_zero)
{
	struct feature_buf b;
	struct vd_dev dev;
	unsigned int bit;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	for (bit = 0; bit < 32; bit++) {
		feature_buf_init(&b, VFIO_DEVICE_FEATURE_GET, IVSHMEM_RAM_BAR,
				 1);
		b.ranges[0].length = self->t.page;
		b.get->flags = 1U << bit;
		EXPECT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, b.feature))
			TH_LOG("flags 0x%x", 1U << bit);
	}
}

TEST_F(vfio_dmabuf, set)
{
	struct feature_buf b;
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	feature_buf_init(&b, VFIO_DEVICE_FEATURE_SET, IVSHMEM_RAM_BAR, 1);
	b.ranges[0].length = self->t.page;
	ASSERT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, b.feature));
	/* Neither GET nor SET. */
	feature_buf_init(&b, 0, IVSHMEM_RAM_BAR, 1);
	b.ranges[0].length = self->t.page;
	ASSERT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, b.feature));
}

TEST_F(vfio_dmabuf, argsz_shorter_than_header)
{
	struct feature_buf b;
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	feature_buf_init(&b, VFIO_DEVICE_FEATURE_GET, IVSHMEM_RAM_BAR, 1);
	b.ranges[0].length = self->t.page;
	b.feature->argsz = sizeof(*b.feature) + sizeof(*b.get) - 1;
	ASSERT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, b.feature));
	b.feature->argsz = sizeof(*b.feature);
	ASSERT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, b.feature));
}

/*
 * The ranges lie in memory that is not mapped: the header of the feature
 * and the dma-buf request end at the end of a page, and the next page is
 * gone. The kernel reads the header, then the ranges, which fault.
 */
TEST_F(vfio_dmabuf, bad_pointer)
{
	const size_t hdr = sizeof(struct vfio_device_feature) +
			   sizeof(struct vfio_device_feature_dma_buf);
	struct vfio_device_feature_dma_buf *get;
	struct vfio_device_feature *feature;
	struct vd_dev dev;
	char *p;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	p = mmap(NULL, 2 * self->t.page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, munmap(p + self->t.page, self->t.page));

	feature = (void *)(p + self->t.page - hdr);
	feature->argsz = hdr + sizeof(struct vfio_region_dma_range);
	feature->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF;
	get = (void *)feature->data;
	get->region_index = IVSHMEM_RAM_BAR;
	get->open_flags = O_RDWR;
	get->flags = 0;
	get->nr_ranges = 1;
	ASSERT_EQ(-EFAULT, vd_feature_ioctl(dev.fd, feature));

	/* The ioctl argument itself is not mapped. */
	ASSERT_EQ(-EFAULT, vd_feature_ioctl(dev.fd, p + self->t.page));
	ASSERT_EQ(0, munmap(p, self->t.page));
}

/*
 * More ranges than argsz covers: the kernel reads them from user memory
 * anyway, where the zeroes that follow are a range of length 0.
 */
TEST_F(vfio_dmabuf, nr_ranges_beyond_argsz)
{
	struct feature_buf b;
	struct vd_dev dev;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	feature_buf_init(&b, VFIO_DEVICE_FEATURE_GET, IVSHMEM_RAM_BAR, 1);
	b.ranges[0].length = self->t.page;
	b.get->nr_ranges = 2;
	ASSERT_EQ(-EINVAL, vd_feature_ioctl(dev.fd, b.feature));
}

/* With the importer: what the mapping contains, who may attach. */

static void bus_addr_map(struct __test_metadata *_metadata,
			 struct vd_test *self,
			 const struct vd_pci *importer, const char *what)
{
	struct vfio_region_dma_range r[3];
	struct vd_dev dev;
	uint64_t bar;
	__u32 id;
	int fd, ret;

	if (!importer->present)
		SKIP(return, "%s", vd_missing(what));
	if (!open_ivshmem(_metadata, self, &dev) ||
	    !open_importer(_metadata, self))
		return;
	bar = bar_start(_metadata, &dev.pci, IVSHMEM_RAM_BAR);

	r[0].offset = 2 * self->page;
	r[0].length = self->page;
	r[1].offset = 0;
	r[1].length = 2 * self->page;
	r[2].offset = dev.regions[IVSHMEM_RAM_BAR].size / 2;
	r[2].length = dev.regions[IVSHMEM_RAM_BAR].size / 2;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, r, 3);

	ret = imp_attach(self->importer, fd, importer, 0, &id);
	ASSERT_EQ(0, ret)
		TH_LOG("attach: %s", strerror(-ret));
	ret = imp_map(self->importer, id, NULL, 0, NULL);
	ASSERT_EQ(0, ret) {
		TH_LOG("map: %s", strerror(-ret));
		if (vd_acs_redirect_above(importer))
			TH_LOG("ACS redirect above %s: P2P goes through the host bridge",
			       importer->name);
	}
	ASSERT_EQ(0, imp_unmap(self->importer, id));
	check_bus_addr_map(_metadata, self->importer, id, bar, r, 3);
	check_info(_metadata, self->importer, id, 0, 1);
	ASSERT_EQ(0, imp_unmap(self->importer, id));
	check_info(_metadata, self->importer, id, 0, 0);
	ASSERT_EQ(0, imp_detach(self->importer, id));
	ASSERT_EQ(0, close(fd));
}

/* The exporting device imports its own BAR: always a bus address. */
TEST_F(vfio_dmabuf, importer_bus_addr_self)
{
	bus_addr_map(_metadata, &self->t, &self->t.env.ivshmem,
		     "ivshmem-plain (1af4:1110)");
}

/* A peer behind the same switch reaches the BAR by its bus address. */
TEST_F(vfio_dmabuf, importer_bus_addr_peer)
{
	bus_addr_map(_metadata, &self->t, &self->t.env.edu_peer,
		     "edu (1234:11e8) behind the switch of the ivshmem");
}

/*
 * Map for the edu behind another root port: the route goes through the host
 * bridge. Returns the result of the map, and the entries in @e and @map.
 */
static int host_bridge_map(struct __test_metadata *_metadata,
			   struct vd_test *self, struct vd_dev *dev,
			   struct vfio_region_dma_range *r, unsigned int nr,
			   struct test_dmabuf_importer_dma_range *e,
			   struct test_dmabuf_importer_map *map)
{
	__u32 id;
	int fd, ret;

	fd = export_checked(_metadata, dev, IVSHMEM_RAM_BAR, r, nr);
	ret = imp_attach(self->importer, fd, &self->env.edu_alone, 0, &id);
	ASSERT_EQ(0, ret)
		TH_LOG("attach: %s", strerror(-ret));
	ASSERT_EQ(0, close(fd));
	return imp_map(self->importer, id, e, MAX_ENTRIES, map);
}

/*
 * A device that is not on PCI has no P2P route to a BAR, whatever the host
 * bridge allows: attach works (the importer allows P2P), map fails.
 */
TEST_F(vfio_dmabuf, importer_unsupported_route)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = self->t.page };
	struct test_dmabuf_importer_dma_range e[MAX_ENTRIES];
	struct vd_dev dev;
	__u32 id;
	int fd, ret;

	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, &r, 1);
	ret = imp_attach(self->t.importer, fd, &dev.pci,
			 TEST_DMABUF_IMPORTER_ATTACH_NON_PCI, &id);
	ASSERT_EQ(0, ret)
		TH_LOG("attach: %s", strerror(-ret));
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(-EINVAL, imp_map(self->t.importer, id, e, MAX_ENTRIES, NULL));
}

/*
 * Through the host bridge with an IOMMU DMA domain, the exporter maps the
 * whole buffer at one IOVA range; with an identity domain, each range at its
 * bus address.
 */
TEST_F(vfio_dmabuf, importer_iova_route)
{
	struct test_dmabuf_importer_dma_range e[MAX_ENTRIES];
	struct vfio_region_dma_range r[3];
	struct test_dmabuf_importer_map map;
	char type[64];
	struct vd_dev dev;
	unsigned int i;
	uint64_t bar;
	int ret;

	if (!self->t.env.edu_alone.present)
		SKIP(return, "%s", vd_missing("edu (1234:11e8) behind its own root port"));
	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	bar = bar_start(_metadata, &dev.pci, IVSHMEM_RAM_BAR);
	r[0].offset = 3 * self->t.page;
	r[0].length = self->t.page;
	r[1].offset = 0;
	r[1].length = 2 * self->t.page;
	r[2] = r[0];
	ret = host_bridge_map(_metadata, &self->t, &dev, r, 3, e, &map);
	if (ret == -EINVAL)
		SKIP(return,
		     "the route through the host bridge is not supported (q35 without an AMD family >= 0x17 CPU, e.g. -cpu max; -cpu EPYC has one)");
	ASSERT_EQ(0, ret)
		TH_LOG("map: %s", strerror(-ret));
	ASSERT_EQ(0, map.flags & TEST_DMABUF_IMPORTER_MAP_PAGES);
	ASSERT_EQ(sum_ranges(r, 3), map.total_len);

	ASSERT_EQ(0, vd_iommu_domain_type(&self->t.env.edu_alone, type,
					  sizeof(type)));
	if (!strcmp(type, "identity")) {
		ASSERT_EQ(3, map.nents);
		for (i = 0; i < 3; i++) {
			EXPECT_EQ(bar + r[i].offset, e[i].dma_addr);
			EXPECT_EQ(r[i].length, e[i].len);
		}
		return;
	}
	/* One IOVA range for the whole buffer. */
	ASSERT_EQ(1, map.nents)
		TH_LOG("IOMMU domain type %s", type);
	ASSERT_EQ(sum_ranges(r, 3), e[0].len);
	ASSERT_EQ(0, e[0].dma_addr % self->t.page);
}

/* vfio-pci refuses an importer attaching with @flags, with EOPNOTSUPP. */
static void attach_refused(struct __test_metadata *_metadata,
			   struct vd_test *t, __u32 flags)
{
	struct vd_dev dev;
	__u32 id;
	int fd;

	if (!open_ivshmem(_metadata, t, &dev) || !open_importer(_metadata, t))
		return;
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, t->page, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(-EOPNOTSUPP, imp_attach(t->importer, fd, &dev.pci, flags, &id));
	ASSERT_EQ(0, close(fd));
}

TEST_F(vfio_dmabuf, importer_static_refused)
{
	attach_refused(_metadata, &self->t, TEST_DMABUF_IMPORTER_ATTACH_STATIC);
}

TEST_F(vfio_dmabuf, importer_without_p2p_refused)
{
	attach_refused(_metadata, &self->t, TEST_DMABUF_IMPORTER_ATTACH_NO_P2P);
}

/* An importer that pins and cannot be told to let go is refused. */
TEST_F(vfio_dmabuf, importer_not_revocable_refused)
{
	attach_refused(_metadata, &self->t, TEST_DMABUF_IMPORTER_ATTACH_NO_NOTIFY);
}

/*
 * A revocable importer that pins for its own use (scanout...) could not be
 * revoked while pinned: its pin is refused, and the attachment stays good.
 */
TEST_F(vfio_dmabuf, importer_pin_refused)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = self->t.page };
	struct vd_dev dev;
	uint64_t bar;
	__u32 id;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	bar = bar_start(_metadata, &dev.pci, IVSHMEM_RAM_BAR);
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, imp_attach(self->t.importer, fd, &dev.pci, 0, &id));
	ASSERT_EQ(-EOPNOTSUPP, imp_pin(self->t.importer, id));
	check_bus_addr_map(_metadata, self->t.importer, id, bar, &r, 1);
	ASSERT_EQ(0, close(fd));
}

/*
 * An importer that lets go also while pinned may pin: MMIO never moves (the
 * test importer unpins at once). The attachment is revoked as any other.
 */
TEST_F(vfio_dmabuf, importer_pin_revocable)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = self->t.page };
	struct test_dmabuf_importer_info info;
	struct vd_dev dev;
	uint64_t bar;
	__u32 id;
	int fd;

	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	bar = bar_start(_metadata, &dev.pci, IVSHMEM_RAM_BAR);
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, imp_attach(self->t.importer, fd, &dev.pci,
				TEST_DMABUF_IMPORTER_ATTACH_PIN_REVOCABLE, &id));
	ASSERT_EQ(0, imp_pin(self->t.importer, id));
	check_bus_addr_map(_metadata, self->t.importer, id, bar, &r, 1);
	ASSERT_EQ(0, vd_cmd_update(&dev, 0, PCI_COMMAND_MEMORY));
	ASSERT_EQ(0, imp_info(self->t.importer, id, &info));
	ASSERT_EQ(REVOKE_NOTIFIES, info.move_notifies);
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(0, vd_cmd_update(&dev, PCI_COMMAND_MEMORY, 0));
	ASSERT_EQ(0, close(fd));
}

/*
 * Revocation. The exporter and the importer are the same device, so that
 * the mapping works on any machine.
 */
struct revoke_ctx {
	struct vd_dev dev;
	struct vfio_region_dma_range r[2];
	uint64_t bar;
	unsigned int region;
	int fd;
	__u32 id;
};

/* Open @pci, export two ranges of @region, attach, map and check. */
static bool revoke_setup(struct __test_metadata *_metadata,
			 struct vd_test *self,
			 const struct vd_pci *pci, const char *what,
			 unsigned int region, struct revoke_ctx *rc)
{
	memset(rc, 0, sizeof(*rc));
	if (!open_dev(_metadata, self, pci, what, &rc->dev) ||
	    !open_importer(_metadata, self))
		return false;
	rc->region = region;
	rc->bar = bar_start(_metadata, pci, region);
	rc->r[0].offset = self->page;
	rc->r[0].length = self->page;
	rc->r[1].offset = 0;
	rc->r[1].length = self->page;
	rc->fd = export_checked(_metadata, &rc->dev, region, rc->r, 2);
	ASSERT_EQ(0, imp_attach(self->importer, rc->fd, pci, 0, &rc->id));
	check_bus_addr_map(_metadata, self->importer, rc->id, rc->bar, rc->r,
			   2);
	check_info(_metadata, self->importer, rc->id, 0, 1);
	return !_metadata->exit_code;
}

/* After a temporary revocation that is over: mapped again, and unmapped. */
static void check_remap(struct __test_metadata *_metadata,
			struct vd_test *self, struct revoke_ctx *rc)
{
	__u32 id;

	check_bus_addr_map(_metadata, self->importer, rc->id, rc->bar, rc->r,
			   2);
	ASSERT_EQ(0, imp_unmap(self->importer, rc->id));
	/* New attachments work as well. */
	ASSERT_EQ(0, imp_attach(self->importer, rc->fd, &rc->dev.pci, 0, &id));
	check_bus_addr_map(_metadata, self->importer, id, rc->bar, rc->r, 2);
	ASSERT_EQ(0, imp_detach(self->importer, id));
}

/* After a revocation and an un-revocation within one ioctl. */
static void check_notified(struct __test_metadata *_metadata,
			   struct vd_test *self,
			   struct revoke_ctx *rc)
{
	struct test_dmabuf_importer_info info;

	ASSERT_EQ(0, imp_info(self->importer, rc->id, &info));
	ASSERT_EQ(REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, info.move_notifies);
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(1, info.notify_unmaps);
}

/* While revoked: nothing mapped, mapping and attaching fail. */
static void check_revoked(struct __test_metadata *_metadata,
			  struct vd_test *self,
			  struct revoke_ctx *rc, __u64 notifies)
{
	struct test_dmabuf_importer_info info;
	__u32 id;

	ASSERT_EQ(0, imp_info(self->importer, rc->id, &info));
	ASSERT_EQ(notifies, info.move_notifies);
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(1, info.notify_unmaps);
	ASSERT_EQ(-ENODEV, imp_map(self->importer, rc->id, NULL, 0, NULL));
	ASSERT_EQ(-ENODEV, imp_attach(self->importer, rc->fd, &rc->dev.pci, 0,
				      &id));
	check_info(_metadata, self->importer, rc->id, notifies, 0);
}

/* Clearing memory decode in the command register revokes. */
TEST_F(vfio_dmabuf, revoke_memory_disable)
{
	struct revoke_ctx rc;
	__u32 id;
	int fd;

	if (!revoke_setup(_metadata, &self->t, &self->t.env.ivshmem,
			  "ivshmem-plain (1af4:1110)", IVSHMEM_RAM_BAR, &rc))
		return;

	ASSERT_EQ(0, vd_cmd_update(&rc.dev, 0, PCI_COMMAND_MEMORY));
	check_revoked(_metadata, &self->t, &rc, REVOKE_NOTIFIES);

	/* A dma-buf exported while memory decode is off starts revoked. */
	fd = export_checked(_metadata, &rc.dev, rc.region, rc.r, 2);
	ASSERT_EQ(-ENODEV, imp_attach(self->t.importer, fd, &rc.dev.pci, 0, &id));

	/* Clearing it again changes nothing. */
	ASSERT_EQ(0, vd_cmd_update(&rc.dev, 0, PCI_COMMAND_MEMORY));
	check_info(_metadata, self->t.importer, rc.id, REVOKE_NOTIFIES, 0);

	ASSERT_EQ(0, vd_cmd_update(&rc.dev, PCI_COMMAND_MEMORY, 0));
	check_info(_metadata, self->t.importer, rc.id,
		   REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, 0);
	check_remap(_metadata, &self->t, &rc);
	ASSERT_EQ(0, imp_attach(self->t.importer, fd, &rc.dev.pci, 0, &id));
	check_bus_addr_map(_metadata, self->t.importer, id, rc.bar, rc.r, 2);

	/* And setting it again changes nothing either. */
	ASSERT_EQ(0, vd_cmd_update(&rc.dev, PCI_COMMAND_MEMORY, 0));
	check_info(_metadata, self->t.importer, rc.id,
		   REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, 0);
	check_info(_metadata, self->t.importer, id, 0, 1);
	ASSERT_EQ(0, close(fd));
}

static int64_t elapsed_ms(const struct timespec *t0, const struct timespec *t1)
{
	return (t1->tv_sec - t0->tv_sec) * 1000LL +
	       (t1->tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * The revocation waits until the importer has unmapped: with
 * TEST_DMABUF_IMPORTER_ATTACH_DEFER_UNMAP, move_notify leaves the mapping
 * alone and a work unmaps it TEST_DMABUF_IMPORTER_DEFER_UNMAP_MS later, so
 * the config write that clears memory decode takes that long. The work
 * ticks in jiffies, hence a little tolerance.
 */
TEST_F(vfio_dmabuf, revoke_waits_for_unmap)
{
	struct vfio_region_dma_range r = { .offset = 0, .length = self->t.page };
	struct test_dmabuf_importer_info before, info;
	struct timespec t0, t1;
	struct vd_dev dev;
	uint16_t cmd;
	uint64_t bar;
	int64_t ms;
	__u32 id;
	int fd, ret;

	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	bar = bar_start(_metadata, &dev.pci, IVSHMEM_RAM_BAR);
	fd = export_checked(_metadata, &dev, IVSHMEM_RAM_BAR, &r, 1);
	ret = imp_attach(self->t.importer, fd, &dev.pci,
			 TEST_DMABUF_IMPORTER_ATTACH_DEFER_UNMAP, &id);
	ASSERT_EQ(0, ret)
		TH_LOG("attach: %s", strerror(-ret));
	check_bus_addr_map(_metadata, self->t.importer, id, bar, &r, 1);
	ASSERT_EQ(0, imp_info(self->t.importer, id, &before));
	ASSERT_EQ(1, before.mapped);

	ASSERT_EQ(0, vd_cfg_read(&dev, PCI_COMMAND, &cmd, sizeof(cmd)));
	cmd &= ~PCI_COMMAND_MEMORY;
	ASSERT_EQ(0, clock_gettime(CLOCK_MONOTONIC, &t0));
	ret = vd_cfg_write(&dev, PCI_COMMAND, &cmd, sizeof(cmd));
	ASSERT_EQ(0, clock_gettime(CLOCK_MONOTONIC, &t1));
	ASSERT_EQ(0, ret)
		TH_LOG("config write: %s", strerror(-ret));
	ms = elapsed_ms(&t0, &t1);
	ASSERT_LE(TEST_DMABUF_IMPORTER_DEFER_UNMAP_MS - 10, ms)
		TH_LOG("the revocation returned after %lld ms", (long long)ms);

	ASSERT_EQ(0, imp_info(self->t.importer, id, &info));
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(1, info.deferred_unmaps);
	ASSERT_EQ(0, info.notify_unmaps);
	ASSERT_EQ(before.move_notifies + REVOKE_NOTIFIES, info.move_notifies);
	ASSERT_EQ(-ENODEV, imp_map(self->t.importer, id, NULL, 0, NULL));

	ASSERT_EQ(0, vd_cmd_update(&dev, PCI_COMMAND_MEMORY, 0));
	ASSERT_EQ(0, imp_info(self->t.importer, id, &info));
	ASSERT_EQ(before.move_notifies + REVOKE_NOTIFIES + UNREVOKE_NOTIFIES,
		  info.move_notifies);
	ASSERT_EQ(1, info.deferred_unmaps);
	check_bus_addr_map(_metadata, self->t.importer, id, bar, &r, 1);
	ASSERT_EQ(0, close(fd));
}

/*
 * VFIO_DEVICE_RESET revokes for the time of the reset: once it returns, the
 * buffer is back, and only the counters tell.
 */
TEST_F(vfio_dmabuf, revoke_device_reset)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct revoke_ctx rc;

	if (!revoke_setup(_metadata, &self->t, &self->t.env.edu_alone,
			  "edu (1234:11e8) behind its own root port", EDU_BAR,
			  &rc))
		return;
	ASSERT_EQ(0, ioctl(rc.dev.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "%s has no reset method", rc.dev.pci.name);

	ASSERT_EQ(0, ioctl(rc.dev.fd, VFIO_DEVICE_RESET))
		TH_LOG("VFIO_DEVICE_RESET: %s", strerror(errno));
	check_notified(_metadata, &self->t, &rc);
	check_remap(_metadata, &self->t, &rc);
	check_info(_metadata, self->t.importer, rc.id,
		   REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, 0);
}

/*
 * The ivshmem's buffer, mapped by the importer, with the device put in low
 * power (without a wake-up eventfd): the buffer is revoked.
 */
static bool low_power_setup(struct __test_metadata *_metadata,
			    struct vd_test *self, struct revoke_ctx *rc)
{
	int ret;

	if (!revoke_setup(_metadata, self, &self->env.ivshmem,
			  "ivshmem-plain (1af4:1110)", IVSHMEM_RAM_BAR, rc))
		return false;
	ret = vd_feature_set(&rc->dev, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	ASSERT_EQ(0, ret)
		TH_LOG("LOW_POWER_ENTRY: %s", strerror(-ret));
	check_revoked(_metadata, self, rc, REVOKE_NOTIFIES);
	return true;
}

/* Leaving low power brings the buffer back: it maps again. */
static void low_power_exit_restores(struct __test_metadata *_metadata,
				    struct vd_test *self, struct revoke_ctx *rc)
{
	int ret;

	ret = vd_feature_set(&rc->dev, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	ASSERT_EQ(0, ret)
		TH_LOG("LOW_POWER_EXIT: %s", strerror(-ret));
	check_info(_metadata, self->importer, rc->id,
		   REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, 0);
	check_remap(_metadata, self, rc);
}

/* Runtime low power revokes until it is left. */
TEST_F(vfio_dmabuf, revoke_low_power)
{
	struct revoke_ctx rc;

	if (!low_power_setup(_metadata, &self->t, &rc))
		return;
	low_power_exit_restores(_metadata, &self->t, &rc);
}

/*
 * Read the power/@attr sysfs attribute of @pci (runtime_status: "active",
 * "suspended", ...; control: "auto" or "on") into @status. Returns 0 or a
 * negative errno: -ENOENT without CONFIG_PM.
 */
static int read_runtime_pm(const struct vd_pci *pci, const char *attr,
			   char *status, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power/%s",
		 pci->name, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, status, size - 1);
	close(fd);
	if (n <= 0)
		return n ? -errno : -EIO;
	status[n] = '\0';
	status[strcspn(status, "\n")] = '\0';
	return 0;
}

static bool runtime_suspended(const struct vd_pci *pci)
{
	char status[32];

	return !read_runtime_pm(pci, "runtime_status", status, sizeof(status)) &&
	       !strcmp(status, "suspended");
}

/*
 * Wait up to 5 s for @pci to runtime suspend, once low power was entered.
 * Returns 0, -ENOENT without runtime PM (CONFIG_PM=n), -EPERM if user space
 * forbade it (power/control is "on"), -ETIMEDOUT.
 */
static int wait_runtime_suspended(const struct vd_pci *pci)
{
	char control[16];
	int i, ret;

	ret = read_runtime_pm(pci, "control", control, sizeof(control));
	if (ret)
		return ret;
	if (strcmp(control, "auto"))
		return -EPERM;
	for (i = 0; i < 500; i++) {
		if (runtime_suspended(pci))
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/*
 * In low power entered without a wake-up eventfd, an access wakes the device
 * only for its duration: turning memory decode off and on again through the
 * config space does not bring the dma-buf back while the device is in low
 * power. Leaving low power does.
 */
TEST_F(vfio_dmabuf, revoke_low_power_memory_enable)
{
	struct revoke_ctx rc;
	int ret;

	if (!low_power_setup(_metadata, &self->t, &rc))
		return;
	/* With runtime PM, let the config writes resume the device. */
	ret = wait_runtime_suspended(&rc.dev.pci);
	if (ret != -ENOENT && ret != -EPERM) {
		ASSERT_EQ(0, ret)
			TH_LOG("%s did not runtime suspend: %s", rc.dev.pci.name,
			       strerror(-ret));
	}

	ASSERT_EQ(0, vd_cmd_update(&rc.dev, 0, PCI_COMMAND_MEMORY));
	ASSERT_EQ(0, vd_cmd_update(&rc.dev, PCI_COMMAND_MEMORY, 0));
	check_revoked(_metadata, &self->t, &rc, REVOKE_NOTIFIES);
	low_power_exit_restores(_metadata, &self->t, &rc);
}

/*
 * Low power entered with a wake-up eventfd ends when the device is woken
 * up, here by an ioctl, which resumes it: the runtime resume callback
 * signals the eventfd, leaves low power and brings the dma-buf back, so the
 * importers' move_notify runs from the resume, under memory_lock.
 */
TEST_F(vfio_dmabuf, revoke_low_power_wakeup)
{
	struct vfio_device_low_power_entry_with_wakeup *entry;
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct test_dmabuf_importer_info iinfo;
	__u64 buf[(sizeof(struct vfio_device_feature) + sizeof(*entry) + 7) / 8];
	struct vfio_device_feature *feature = (void *)buf;
	struct revoke_ctx rc;
	char status[32];
	uint64_t wakeups;
	int efd, ret;

	if (!revoke_setup(_metadata, &self->t, &self->t.env.ivshmem,
			  "ivshmem-plain (1af4:1110)", IVSHMEM_RAM_BAR, &rc))
		return;
	ret = read_runtime_pm(&rc.dev.pci, "control", status, sizeof(status));
	if (ret == -ENOENT)
		SKIP(return, "no runtime PM in this kernel (CONFIG_PM=n)");
	ASSERT_EQ(0, ret);
	if (strcmp(status, "auto"))
		SKIP(return, "runtime PM of %s forbidden by user space (power/control %s)",
		     rc.dev.pci.name, status);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ASSERT_LE(0, efd);

	memset(buf, 0, sizeof(buf));
	feature->argsz = sizeof(*feature) + sizeof(*entry);
	feature->flags = VFIO_DEVICE_FEATURE_SET |
			 VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
	entry = (void *)feature->data;
	entry->wakeup_eventfd = efd;
	ret = vd_feature_ioctl(rc.dev.fd, feature);
	ASSERT_EQ(0, ret)
		TH_LOG("LOW_POWER_ENTRY_WITH_WAKEUP: %s", strerror(-ret));
	check_revoked(_metadata, &self->t, &rc, REVOKE_NOTIFIES);

	/* The entry drops the usage count; the device suspends after it. */
	ret = wait_runtime_suspended(&rc.dev.pci);
	ASSERT_EQ(0, ret)
		TH_LOG("%s did not runtime suspend: %s", rc.dev.pci.name,
		       strerror(-ret));
	ASSERT_EQ(-1, read(efd, &wakeups, sizeof(wakeups)));
	ASSERT_EQ(EAGAIN, errno);
	check_info(_metadata, self->t.importer, rc.id, REVOKE_NOTIFIES, 0);

	ASSERT_EQ(0, ioctl(rc.dev.fd, VFIO_DEVICE_GET_INFO, &info));
	ASSERT_EQ(sizeof(wakeups), read(efd, &wakeups, sizeof(wakeups)))
		TH_LOG("the wake-up eventfd was not signalled");
	ASSERT_EQ(1, wakeups);
	check_info(_metadata, self->t.importer, rc.id,
		   REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, 0);
	check_remap(_metadata, &self->t, &rc);

	/* Out of low power already: the explicit exit changes nothing. */
	ret = vd_feature_set(&rc.dev, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	ASSERT_EQ(0, ret)
		TH_LOG("LOW_POWER_EXIT: %s", strerror(-ret));
	ASSERT_EQ(0, imp_info(self->t.importer, rc.id, &iinfo));
	EXPECT_EQ(REVOKE_NOTIFIES + UNREVOKE_NOTIFIES, iinfo.move_notifies);
	ASSERT_EQ(0, close(efd));
}

/*
 * A hot reset revokes for its duration. Through the group, the group fds of
 * the affected devices prove ownership; through the cdev, an empty list
 * does, since iommufd does.
 */
TEST_F(vfio_dmabuf, revoke_hot_reset)
{
	struct revoke_ctx rc;
	int ret;

	if (!revoke_setup(_metadata, &self->t, &self->t.env.edu_alone,
			  "edu (1234:11e8) behind its own root port", EDU_BAR,
			  &rc))
		return;

	ret = vd_hot_reset(&rc.dev);
	ASSERT_EQ(0, ret)
		TH_LOG("VFIO_DEVICE_PCI_HOT_RESET: %s", strerror(-ret));
	check_notified(_metadata, &self->t, &rc);
	check_remap(_metadata, &self->t, &rc);
}

/* Closing the device revokes for good, whatever happens to it later. */
TEST_F(vfio_dmabuf, revoke_close)
{
	struct revoke_ctx rc;
	struct vd_dev dev2;
	__u32 id;
	int fd;

	if (!revoke_setup(_metadata, &self->t, &self->t.env.ivshmem,
			  "ivshmem-plain (1af4:1110)", IVSHMEM_RAM_BAR, &rc))
		return;

	vd_dev_close(&rc.dev);
	check_revoked(_metadata, &self->t, &rc, REVOKE_NOTIFIES);

	/* Open the device again and turn memory decode off and on. */
	ASSERT_EQ(0, vd_dev_open(&self->t.vfio, &rc.dev.pci, &dev2))
		TH_LOG("%s", vd_errmsg);
	ASSERT_EQ(0, vd_cmd_update(&dev2, 0, PCI_COMMAND_MEMORY));
	ASSERT_EQ(0, vd_cmd_update(&dev2, PCI_COMMAND_MEMORY, 0));
	check_info(_metadata, self->t.importer, rc.id, REVOKE_NOTIFIES, 0);
	ASSERT_EQ(-ENODEV, imp_map(self->t.importer, rc.id, NULL, 0, NULL));
	ASSERT_EQ(-ENODEV, imp_attach(self->t.importer, rc.fd, &rc.dev.pci, 0,
				      &id));

	/* The new device file exports buffers that work. */
	fd = export_checked(_metadata, &dev2, rc.region, rc.r, 2);
	ASSERT_EQ(0, imp_attach(self->t.importer, fd, &rc.dev.pci, 0, &id));
	check_bus_addr_map(_metadata, self->t.importer, id, rc.bar, rc.r, 2);

	/* Its close revokes those, not the old ones again. */
	vd_dev_close(&dev2);
	check_info(_metadata, self->t.importer, id, REVOKE_NOTIFIES, 0);
	check_info(_metadata, self->t.importer, rc.id, REVOKE_NOTIFIES, 0);
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(0, close(rc.fd));
}

/* A sysfs write from a thread: removing a device blocks until it is closed. */
struct sysfs_writer {
	char path[PATH_MAX];
	const char *value;
	int ret;
	int done;
	pthread_t thread;
};

static void *sysfs_writer_run(void *arg)
{
	struct sysfs_writer *w = arg;
	int fd;

	fd = open(w->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		w->ret = -errno;
	} else {
		if (write(fd, w->value, strlen(w->value)) < 0)
			w->ret = -errno;
		close(fd);
	}
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Register an eventfd for the device request that vfio sends before removal. */
static int set_req_eventfd(struct vd_dev *dev, int efd)
{
	__u64 buf[(sizeof(struct vfio_irq_set) + sizeof(__s32) + 7) / 8] = {};
	struct vfio_irq_set *set = (void *)buf;

	set->argsz = sizeof(*set) + sizeof(__s32);
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_REQ_IRQ_INDEX;
	set->start = 0;
	set->count = 1;
	memcpy(set->data, &efd, sizeof(efd));
	return ioctl(dev->fd, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
}

/*
 * Remove the device (sysfs remove, or unbind it from vfio-pci) while the
 * importer holds two mappings, one of which it unmaps only
 * TEST_DMABUF_IMPORTER_DEFER_UNMAP_MS after move_notify. vfio asks the user
 * to release the device (the request eventfd) and waits for the device file
 * to be closed; the buffers stay mapped and untouched meanwhile. The close
 * revokes them and waits for the importer to unmap, and only then does the
 * removal complete. The dma-buf fd stays valid and dead: map and attach fail
 * with ENODEV, detach and close work, and nothing of the removed device is
 * touched (make check-debug runs this under KASAN). Between the removal
 * request and the close only EXPECTs: a failed ASSERT there would leave the
 * writer blocked in the kernel with the device file open.
 */
static void remove_device_with_mapping(struct __test_metadata *_metadata,
				       struct vd_test *self, bool unbind)
{
	struct test_dmabuf_importer_info info;
	struct sysfs_writer w = { .ret = 0 };
	struct pollfd pfd = { .events = POLLIN };
	const struct vd_pci *other = NULL;
	struct timespec t0, t1;
	struct revoke_ctx rc;
	__u32 id, deferred;
	uint64_t requests;
	int64_t ms;

	if (!revoke_setup(_metadata, self, &self->env.ivshmem,
			  "ivshmem-plain (1af4:1110)", IVSHMEM_RAM_BAR, &rc))
		return;
	ASSERT_EQ(0, imp_attach(self->importer, rc.fd, &rc.dev.pci,
				TEST_DMABUF_IMPORTER_ATTACH_DEFER_UNMAP,
				&deferred));
	check_bus_addr_map(_metadata, self->importer, deferred, rc.bar, rc.r,
			   2);
	pfd.fd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, pfd.fd);
	ASSERT_EQ(0, set_req_eventfd(&rc.dev, pfd.fd));

	if (unbind) {
		snprintf(w.path, sizeof(w.path),
			 "/sys/bus/pci/drivers/vfio-pci/unbind");
		w.value = rc.dev.pci.name;
	} else {
		snprintf(w.path, sizeof(w.path),
			 "/sys/bus/pci/devices/%s/remove", rc.dev.pci.name);
		w.value = "1";
		snprintf(self->rescan, sizeof(self->rescan), "%s",
			 rc.dev.pci.name);
	}
	ASSERT_EQ(0, pthread_create(&w.thread, NULL, sysfs_writer_run, &w));

	/* vfio waits for the device file; the buffers are left alone. */
	EXPECT_EQ(1, poll(&pfd, 1, 30000))
		TH_LOG("no device request within 30 s");
	EXPECT_EQ(sizeof(requests), read(pfd.fd, &requests, sizeof(requests)));
	EXPECT_EQ(0, __atomic_load_n(&w.done, __ATOMIC_ACQUIRE))
		TH_LOG("%s returned while the device was open", w.path);
	EXPECT_EQ(0, imp_info(self->importer, rc.id, &info));
	EXPECT_EQ(0, info.move_notifies);
	EXPECT_EQ(1, info.mapped);
	EXPECT_EQ(0, imp_info(self->importer, deferred, &info));
	EXPECT_EQ(0, info.move_notifies);
	EXPECT_EQ(1, info.mapped);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	vd_dev_close(&rc.dev);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_EQ(0, pthread_join(w.thread, NULL));
	close(pfd.fd);
	ASSERT_EQ(0, w.ret)
		TH_LOG("%s: %s", w.path, strerror(-w.ret));
	ms = elapsed_ms(&t0, &t1);
	EXPECT_LE(TEST_DMABUF_IMPORTER_DEFER_UNMAP_MS - 10, ms)
		TH_LOG("the close returned after %lld ms", (long long)ms);

	ASSERT_EQ(0, imp_info(self->importer, rc.id, &info));
	EXPECT_EQ(REVOKE_NOTIFIES, info.move_notifies);
	EXPECT_EQ(0, info.mapped);
	EXPECT_EQ(1, info.notify_unmaps);
	ASSERT_EQ(0, imp_info(self->importer, deferred, &info));
	EXPECT_EQ(REVOKE_NOTIFIES, info.move_notifies);
	EXPECT_EQ(0, info.mapped);
	EXPECT_EQ(1, info.deferred_unmaps);
	ASSERT_EQ(-ENODEV, imp_map(self->importer, rc.id, NULL, 0, NULL));
	ASSERT_EQ(-ENODEV, imp_map(self->importer, deferred, NULL, 0, NULL));
	/*
	 * A removed device cannot import: attach for another one, so that it
	 * is vfio that refuses.
	 */
	if (!unbind)
		other = any_pci_but(&self->env, &rc.dev.pci);
	else
		other = &rc.dev.pci;
	if (other) {
		ASSERT_EQ(-ENODEV, imp_attach(self->importer, rc.fd, other, 0,
					      &id));
	} else {
		ksft_print_msg("no other device to attach for after the removal\n");
	}
	ASSERT_EQ(0, imp_detach(self->importer, deferred));
	ASSERT_EQ(0, imp_detach(self->importer, rc.id));
	ASSERT_EQ(0, close(rc.fd));
}

TEST_F(vfio_dmabuf, remove_with_mapping)
{
	remove_device_with_mapping(_metadata, &self->t, false);
}

TEST_F(vfio_dmabuf, unbind_with_mapping)
{
	remove_device_with_mapping(_metadata, &self->t, true);
}

/*
 * Concurrency: for STRESS_ITERATIONS each, one thread exports and closes
 * dma-bufs, one attaches, maps, unmaps and detaches the long-lived buffer of
 * the test, one turns memory decode off and on through the config space and
 * one enters and leaves runtime low power, all on the same device. Under
 * lockdep, a lock order inversion between memory_lock, the reservation lock
 * and the device's dma-buf list is reported even if it does not deadlock;
 * the test itself does not read the kernel log (the workbench fails a run
 * on any splat).
 * Every call must succeed, except an attach or map while revoked (ENODEV)
 * and an unmap after move_notify took the mapping down (ENODATA).
 */
#define STRESS_ITERATIONS	200
#define STRESS_ACCESSIBLE_US	2000

enum stress_kind {
	STRESS_EXPORT,
	STRESS_MAP,
	STRESS_DECODE,
	STRESS_LOW_POWER,
	STRESS_NR
};

static const char * const stress_name[STRESS_NR] = {
	"export/close", "attach/map/unmap/detach", "memory decode off/on",
	"low power entry/exit",
};

struct stress {
	struct revoke_ctx *rc;
	pthread_barrier_t *start;
	enum stress_kind kind;
	int importer;
	int err;		/* the first unexpected errno */
	int iteration;		/* where it happened */
	unsigned int revoked;	/* attaches and maps refused with ENODEV */
	unsigned int notified;	/* mappings move_notify took down */
};

static int stress_one(struct stress *st)
{
	struct revoke_ctx *rc = st->rc;
	__u32 id;
	int ret, fd;

	switch (st->kind) {
	case STRESS_EXPORT:
		fd = vd_export(rc->dev.fd, rc->region, rc->r, 2, O_CLOEXEC);
		if (fd < 0)
			return fd;
		return close(fd) ? -errno : 0;
	case STRESS_MAP:
		ret = imp_attach(st->importer, rc->fd, &rc->dev.pci, 0, &id);
		if (ret == -ENODEV) {
			st->revoked++;
			return 0;
		}
		if (ret)
			return ret;
		ret = imp_map(st->importer, id, NULL, 0, NULL);
		if (ret == -ENODEV) {
			st->revoked++;
		} else if (!ret) {
			ret = imp_unmap(st->importer, id);
			/* A revocation in between: move_notify unmapped. */
			if (ret == -ENODATA) {
				st->notified++;
				ret = 0;
			}
		}
		if (ret && ret != -ENODEV) {
			imp_detach(st->importer, id);
			return ret;
		}
		return imp_detach(st->importer, id);
	case STRESS_DECODE:
		ret = vd_cmd_update(&rc->dev, 0, PCI_COMMAND_MEMORY);
		ret = ret ?: vd_cmd_update(&rc->dev, PCI_COMMAND_MEMORY, 0);
		/* Leave the buffer accessible for a while, so that maps happen. */
		usleep(STRESS_ACCESSIBLE_US);
		return ret;
	case STRESS_LOW_POWER:
		ret = vd_feature_set(&rc->dev,
				     VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
		ret = ret ?: vd_feature_set(&rc->dev,
					    VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
		usleep(STRESS_ACCESSIBLE_US);
		return ret;
	default:
		return -EINVAL;
	}
}

static void *stress_thread(void *arg)
{
	struct stress *st = arg;
	int i, ret;

	pthread_barrier_wait(st->start);
	for (i = 0; i < STRESS_ITERATIONS; i++) {
		ret = stress_one(st);
		if (ret && !st->err) {
			st->err = -ret;
			st->iteration = i;
		}
	}
	return NULL;
}

TEST_F(vfio_dmabuf, concurrent_export_map_revoke)
{
	struct stress st[STRESS_NR];
	pthread_t thread[STRESS_NR];
	pthread_barrier_t start;
	struct revoke_ctx rc;
	int i;

	if (!revoke_setup(_metadata, &self->t, &self->t.env.ivshmem,
			  "ivshmem-plain (1af4:1110)", IVSHMEM_RAM_BAR, &rc))
		return;
	ASSERT_EQ(0, imp_unmap(self->t.importer, rc.id));

	for (i = 0; i < STRESS_NR; i++)
		st[i] = (struct stress){
			.rc = &rc, .start = &start, .kind = i, .importer = -1,
		};
	st[STRESS_MAP].importer = vd_importer_open();
	ASSERT_LE(0, st[STRESS_MAP].importer)
		TH_LOG("%s", vd_errmsg);
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, STRESS_NR));
	for (i = 0; i < STRESS_NR; i++)
		ASSERT_EQ(0, pthread_create(&thread[i], NULL, stress_thread,
					    &st[i]));
	for (i = 0; i < STRESS_NR; i++)
		ASSERT_EQ(0, pthread_join(thread[i], NULL));
	pthread_barrier_destroy(&start);
	close(st[STRESS_MAP].importer);

	for (i = 0; i < STRESS_NR; i++) {
		EXPECT_EQ(0, st[i].err)
			TH_LOG("%s: %s at iteration %d", stress_name[i],
			       strerror(st[i].err), st[i].iteration);
	}
	ksft_print_msg("%u of %d attach/map rounds refused, %u unmapped by move_notify\n",
		       st[STRESS_MAP].revoked, STRESS_ITERATIONS,
		       st[STRESS_MAP].notified);
	/* Otherwise the mapping never met a revocation: no concurrency. */
	EXPECT_LT(0, st[STRESS_MAP].revoked + st[STRESS_MAP].notified);

	/* Memory decode on, out of low power: the buffer works again. */
	check_bus_addr_map(_metadata, self->t.importer, rc.id, rc.bar, rc.r,
			   2);
	ASSERT_EQ(0, imp_unmap(self->t.importer, rc.id));

	/* And the close revokes it for good while a thread maps. */
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, 2));
	st[STRESS_MAP] = (struct stress){
		.rc = &rc, .start = &start, .kind = STRESS_MAP,
		.importer = vd_importer_open(),
	};
	ASSERT_LE(0, st[STRESS_MAP].importer);
	ASSERT_EQ(0, pthread_create(&thread[STRESS_MAP], NULL, stress_thread,
				    &st[STRESS_MAP]));
	pthread_barrier_wait(&start);
	vd_dev_close(&rc.dev);
	ASSERT_EQ(0, pthread_join(thread[STRESS_MAP], NULL));
	pthread_barrier_destroy(&start);
	close(st[STRESS_MAP].importer);
	EXPECT_EQ(0, st[STRESS_MAP].err)
		TH_LOG("%s: %s at iteration %d", stress_name[STRESS_MAP],
		       strerror(st[STRESS_MAP].err), st[STRESS_MAP].iteration);
	ASSERT_EQ(-ENODEV, imp_map(self->t.importer, rc.id, NULL, 0, NULL));
	ASSERT_EQ(0, close(rc.fd));
}

#define CYCLES	1000
/* How long vfio-pci's remove may take once nothing holds the device. */
#define UNBIND_MS	10000

/*
 * Unbind @pci from vfio-pci, then bind it again. vfio-pci's remove waits
 * until every registration reference to the device is gone (asking the
 * user with the device request meanwhile), so a reference that a dma-buf
 * leaked blocks the unbind for ever: it must return within UNBIND_MS. The
 * unbind runs in a child process, which such a leak leaves blocked in the
 * kernel for good while this test fails (and the device with it, until
 * reboot). The caller closed its device file.
 */
static void unbind_and_rebind(struct __test_metadata *_metadata,
			      const struct vd_pci *pci)
{
	char path[PATH_MAX];
	int i, fd, status;
	pid_t pid, got = 0;

	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/vfio-pci/unbind");
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			_exit(1);
		_exit(write(fd, pci->name, strlen(pci->name)) < 0 ? 2 : 0);
	}
	for (i = 0; i < UNBIND_MS / 10; i++) {
		got = waitpid(pid, &status, WNOHANG);
		if (got)
			break;
		usleep(10000);
	}
	ASSERT_EQ(pid, got)
		TH_LOG("unbind of %s blocked for %d s: a device reference leaked",
		       pci->name, UNBIND_MS / 1000);
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("%s: status %#x", path, status);
	ASSERT_EQ(0, vd_bind_vfio(pci))
		TH_LOG("%s", vd_errmsg);
}

TEST_F(vfio_dmabuf, export_close_cycles)
{
	struct vd_dev dev;
	int i, fd, nfds;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	nfds = vd_count_fds();
	ASSERT_LT(0, nfds);
	for (i = 0; i < CYCLES; i++) {
		fd = export1(&dev, IVSHMEM_RAM_BAR, (i % 4) * self->t.page,
			     self->t.page, O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, fd)
			TH_LOG("cycle %d: %s", i, strerror(-fd));
		ASSERT_EQ(0, close(fd));
	}
	ASSERT_EQ(nfds, vd_count_fds());
	/* No dma-buf kept a reference to the device. */
	ASSERT_EQ(0, close(dev.fd));
	dev.fd = -1;
	unbind_and_rebind(_metadata, &dev.pci);
}

/*
 * The export fails when no file descriptor is left, after the dma-buf was
 * made: it must be undone completely, without a double free (lesson 1 of
 * review). The device and its other dma-bufs are unaffected.
 */
TEST_F(vfio_dmabuf, export_fd_exhaustion)
{
	struct rlimit old, lim;
	struct vd_dev dev;
	int fd, nfds, next, ret;

	if (!open_ivshmem(_metadata, &self->t, &dev))
		return;
	nfds = vd_count_fds();
	ASSERT_LT(0, nfds);
	/* The lowest free fd, which the kernel would hand out next. */
	next = fcntl(dev.fd, F_DUPFD, 0);
	ASSERT_LE(0, next);
	ASSERT_EQ(0, close(next));
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
	lim = old;
	lim.rlim_cur = next;
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR | O_CLOEXEC);
	/* Restore the limit before anything can end the test. */
	ret = setrlimit(RLIMIT_NOFILE, &old) ? -errno : 0;
	if (fd >= 0)
		close(fd);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(-EMFILE, fd);
	ASSERT_EQ(nfds, vd_count_fds());

	/* Exporting works again; the close revokes that dma-buf. */
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd)
		TH_LOG("%s", strerror(-fd));
	ASSERT_EQ(0, close(dev.fd));
	dev.fd = -1;
	ASSERT_EQ(0, close(fd));

	ASSERT_EQ(0, vd_dev_open(&self->t.vfio, &self->t.env.ivshmem, &dev))
		TH_LOG("%s", vd_errmsg);
	fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd)
		TH_LOG("%s", strerror(-fd));
	ASSERT_EQ((off_t)self->t.page, dmabuf_size(fd));
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(nfds, vd_count_fds());
}

TEST_F(vfio_dmabuf, importer_cycles)
{
	struct vd_dev dev;
	int i, fd, nfds, ret;
	uint64_t bar;
	__u32 id;

	if (!open_ivshmem(_metadata, &self->t, &dev) ||
	    !open_importer(_metadata, &self->t))
		return;
	bar = bar_start(_metadata, &dev.pci, IVSHMEM_RAM_BAR);
	nfds = vd_count_fds();
	ASSERT_LT(0, nfds);
	for (i = 0; i < CYCLES; i++) {
		struct test_dmabuf_importer_dma_range e;
		struct test_dmabuf_importer_map map;

		fd = export1(&dev, IVSHMEM_RAM_BAR, 0, self->t.page, O_RDWR);
		ASSERT_LE(0, fd)
			TH_LOG("cycle %d: %s", i, strerror(-fd));
		ret = imp_attach(self->t.importer, fd, &dev.pci, 0, &id);
		ASSERT_EQ(0, ret)
			TH_LOG("cycle %d: attach: %s", i, strerror(-ret));
		/* The attachment holds the dma-buf. */
		ASSERT_EQ(0, close(fd));
		ret = imp_map(self->t.importer, id, &e, 1, &map);
		ASSERT_EQ(0, ret)
			TH_LOG("cycle %d: map: %s", i, strerror(-ret));
		ASSERT_EQ(1, map.nents);
		ASSERT_EQ(bar, e.dma_addr);
		ASSERT_EQ(0, imp_unmap(self->t.importer, id));
		ASSERT_EQ(0, imp_detach(self->t.importer, id));
	}
	ASSERT_EQ(nfds, vd_count_fds());

	/* The buffers are gone: the device closes, the module is free. */
	ASSERT_EQ(0, close(self->t.importer));
	self->t.importer = -1;
	ret = vd_importer_refcnt();
	if (ret != -ENOENT)
		ASSERT_EQ(0, ret);
	/* And no dma-buf kept a reference to the exporting device. */
	ASSERT_EQ(0, close(dev.fd));
	dev.fd = -1;
	unbind_and_rebind(_metadata, &dev.pci);
}

/*
 * Move bytes: the DMA engine of the edu behind the switch reads the ivshmem
 * BAR at the bus address the importer got for it, into its buffer, and
 * writes that to guest memory.
 *
 * QEMU sends every DMA through the IOMMU, also between devices under one
 * switch, so the container maps the bus address of the BAR to the BAR,
 * where the switch would route it. The type1 IOMMU driver maps MMIO (a
 * VM_PFNMAP mapping of the BAR); through the cdev, IOMMU_IOAS_MAP_FILE maps
 * the BAR's dma-buf into the IOAS of both devices, at an IOVA of the test's
 * choosing (see p2p_setup()).
 */
/* MMIO accesses of one instruction each, in program order. */
static void edu_write(uint8_t *regs, unsigned int off, uint64_t val)
{
	__atomic_store_n((uint64_t *)(regs + off), val, __ATOMIC_RELEASE);
}

static uint64_t edu_read(uint8_t *regs, unsigned int off)
{
	return __atomic_load_n((uint64_t *)(regs + off), __ATOMIC_ACQUIRE);
}

static int edu_dma(uint8_t *regs, uint64_t src, uint64_t dst,
		   uint64_t count, uint64_t cmd)
{
	int i;

	edu_write(regs, EDU_DMA_SRC, src);
	edu_write(regs, EDU_DMA_DST, dst);
	edu_write(regs, EDU_DMA_COUNT, count);
	edu_write(regs, EDU_DMA_CMD, cmd | EDU_DMA_RUN);
	/* The edu runs its transfers after 100 ms of virtual time. */
	for (i = 0; i < 1000; i++) {
		if (!(edu_read(regs, EDU_DMA_CMD) & EDU_DMA_RUN))
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/*
 * The edu's DMA through the IOAS of the iommufd cdev: the ivshmem BAR's
 * page with the pattern, exported as a dma-buf and mapped with
 * IOMMU_IOAS_MAP_FILE at P2P_BAR_IOVA, and a page of memory at P2P_BUF_IOVA,
 * both under the edu's 28-bit DMA mask.
 */
#define P2P_BUF_IOVA		0x100000
#define P2P_BAR_IOVA		0x200000

/*
 * The other way: the edu writes DEVICE_MAGIC and then device_byte(i) into
 * the page of the BAR at DEVICE_PATTERN_OFFSET, mapped at P2P_WRITE_IOVA.
 * The host can read them from the ivshmem's backing file after the guest
 * powered off (the project's workbench does).
 */
#define DEVICE_MAGIC		"vfio_dmabuf edu\n"
#define DEVICE_PATTERN_OFFSET	8192
#define P2P_WRITE_IOVA		0x300000
/* The CPU mapping of the BAR: the host's page and the device's. */
#define P2P_BAR_MAP(page)	(DEVICE_PATTERN_OFFSET + (page))

static uint8_t device_byte(size_t i)
{
	return i < strlen(DEVICE_MAGIC) ? DEVICE_MAGIC[i] : (i * 13 + 5) & 0xff;
}

struct p2p_ctx {
	struct vd_dev ivs, edu;
	uint8_t *bar, *regs, *buf;
	bool host;
	int fd;
};

static int ioas_map_dmabuf(struct vd_vfio *vfio, int fd, __u64 length,
			   __u64 iova)
{
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = vfio->ioas_id,
		.fd = fd,
		.length = length,
		.iova = iova,
	};

	return ioctl(vfio->iommufd, IOMMU_IOAS_MAP_FILE, &map) ? -errno : 0;
}

static int ioas_map_mem(struct vd_vfio *vfio, void *p, __u64 length,
			__u64 iova)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = vfio->ioas_id,
		.user_va = (uintptr_t)p,
		.length = length,
		.iova = iova,
	};

	return ioctl(vfio->iommufd, IOMMU_IOAS_MAP, &map) ? -errno : 0;
}

static int ioas_unmap(struct vd_vfio *vfio, __u64 iova, __u64 length)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = vfio->ioas_id,
		.iova = iova,
		.length = length,
	};

	return ioctl(vfio->iommufd, IOMMU_IOAS_UNMAP, &unmap) ? -errno : 0;
}

/* Open both devices, write the pattern, map both IOVAs; false: test over. */
static bool p2p_setup(struct __test_metadata *_metadata, struct vd_test *self,
		      struct p2p_ctx *p)
{
	struct vfio_region_dma_range r = {
		.offset = HOST_PATTERN_OFFSET,
		.length = EDU_DMA_BUF_SIZE,
	};
	size_t i;
	int ret;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->ivs.fd = -1;
	p->edu.fd = -1;
	if (!self->env.edu_peer.present)
		SKIP(return false, "%s",
		     vd_missing("edu (1234:11e8) behind the switch of the ivshmem"));
	if (HOST_PATTERN_OFFSET % self->page || EDU_DMA_BUF_SIZE != self->page)
		SKIP(return false, "written for 4 KiB pages");
	if (!open_ivshmem(_metadata, self, &p->ivs) ||
	    !open_dev(_metadata, self, &self->env.edu_peer, "edu", &p->edu))
		return false;

	p->bar = vd_region_mmap(&p->ivs, IVSHMEM_RAM_BAR, P2P_BAR_MAP(self->page));
	EXPECT_NE(MAP_FAILED, p->bar);
	if (p->bar == MAP_FAILED)
		return false;
	p->host = !memcmp(p->bar, HOST_MAGIC, strlen(HOST_MAGIC));
	if (!p->host)
		for (i = 0; i < EDU_DMA_BUF_SIZE; i++)
			p->bar[HOST_PATTERN_OFFSET + i] = expected_byte(false, i);
	ksft_print_msg("pattern written by %s\n",
		       p->host ? "the host" : "the test through the BAR");

	p->fd = export_checked(_metadata, &p->ivs, IVSHMEM_RAM_BAR, &r, 1);
	ret = ioas_map_dmabuf(&self->vfio, p->fd, r.length, P2P_BAR_IOVA);
	EXPECT_EQ(0, ret)
		TH_LOG("IOMMU_IOAS_MAP_FILE of the BAR's dma-buf: %s",
		       strerror(-ret));
	p->buf = mmap(NULL, self->page, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	EXPECT_NE(MAP_FAILED, p->buf);
	if (ret || p->buf == MAP_FAILED)
		return false;
	memset(p->buf, 0, self->page);
	ret = ioas_map_mem(&self->vfio, p->buf, self->page, P2P_BUF_IOVA);
	EXPECT_EQ(0, ret)
		TH_LOG("IOMMU_IOAS_MAP of memory: %s", strerror(-ret));
	p->regs = vd_region_mmap(&p->edu, EDU_BAR, p->edu.regions[EDU_BAR].size);
	EXPECT_NE(MAP_FAILED, p->regs);
	if (ret || p->regs == MAP_FAILED)
		return false;
	EXPECT_EQ(0xed, __atomic_load_n((uint32_t *)(p->regs + EDU_ID),
					__ATOMIC_ACQUIRE) & 0xff);
	EXPECT_EQ(0, vd_cmd_update(&p->edu, PCI_COMMAND_MASTER, 0));
	return !_metadata->exit_code;
}

enum p2p_result { P2P_ARRIVED, P2P_NOTHING, P2P_MIXED, P2P_TIMEOUT };

static const char *const p2p_names[] = {
	"the pattern arrived", "nothing arrived", "some bytes arrived",
	"the edu's DMA timed out",
};

/*
 * The edu reads EDU_DMA_LEN bytes at @iova into its buffer, cleared first
 * from zeroed memory, and writes them to the page at P2P_BUF_IOVA: did the
 * pattern arrive, or nothing? (A read the IOMMU refuses reads zeros in
 * QEMU, and the guest's intel-iommu driver logs a DMAR fault for it.)
 */
static enum p2p_result p2p_copy_from(struct p2p_ctx *p, uint64_t iova)
{
	size_t i, same = 0, zero = 0;

	memset(p->buf, 0, EDU_DMA_LEN);
	if (edu_dma(p->regs, P2P_BUF_IOVA, EDU_DMA_BUF, EDU_DMA_LEN, 0) ||
	    edu_dma(p->regs, iova, EDU_DMA_BUF, EDU_DMA_LEN, 0) ||
	    edu_dma(p->regs, EDU_DMA_BUF, P2P_BUF_IOVA, EDU_DMA_LEN,
		    EDU_DMA_TO_PCI))
		return P2P_TIMEOUT;
	for (i = 0; i < EDU_DMA_LEN; i++) {
		same += p->buf[i] == expected_byte(p->host, i);
		zero += !p->buf[i];
	}
	if (same == EDU_DMA_LEN)
		return P2P_ARRIVED;
	return zero == EDU_DMA_LEN ? P2P_NOTHING : P2P_MIXED;
}

static enum p2p_result p2p_copy(struct p2p_ctx *p)
{
	return p2p_copy_from(p, P2P_BAR_IOVA);
}

/*
 * The edu writes the first EDU_DMA_LEN bytes of the page at P2P_BUF_IOVA at
 * @iova, where the BAR's page at DEVICE_PATTERN_OFFSET is mapped: did they
 * arrive, as the CPU reads the BAR, or did the page keep what it had?
 */
static enum p2p_result p2p_write_to(struct p2p_ctx *p, uint64_t iova)
{
	uint8_t before[EDU_DMA_LEN], *page = p->bar + DEVICE_PATTERN_OFFSET;
	size_t i, same = 0, kept = 0;

	memcpy(before, page, EDU_DMA_LEN);
	if (edu_dma(p->regs, P2P_BUF_IOVA, EDU_DMA_BUF, EDU_DMA_LEN, 0) ||
	    edu_dma(p->regs, EDU_DMA_BUF, iova, EDU_DMA_LEN, EDU_DMA_TO_PCI))
		return P2P_TIMEOUT;
	for (i = 0; i < EDU_DMA_LEN; i++) {
		same += page[i] == p->buf[i];
		kept += page[i] == before[i];
	}
	if (same == EDU_DMA_LEN)
		return P2P_ARRIVED;
	return kept == EDU_DMA_LEN ? P2P_NOTHING : P2P_MIXED;
}

#define ASSERT_P2P(_expected, _result)                                       \
	do {                                                                 \
		enum p2p_result _e = (_expected), _r = (_result);            \
									     \
		ASSERT_EQ(_e, _r)                                            \
			TH_LOG("expected: %s; got: %s", p2p_names[_e],       \
			       p2p_names[_r]);                               \
	} while (0)

/*
 * The guest's IOMMU reports the DMA it refused: intel-iommu logs
 * "DMAR: [DMA Read NO_PASID] Request device [..] fault addr 0x200000 ..."
 * from its fault interrupt. kmsg_tail() opens the kernel log at its end
 * before the DMA; iommu_fault_logged() looks for the IOVA in what was logged
 * since, for up to a second. 0: found; -ENOENT: not logged; -EOPNOTSUPP:
 * this is not an Intel IOMMU, whose words the test knows.
 */
static int kmsg_tail(void)
{
	int fd;

	if (access("/sys/class/iommu/dmar0", F_OK))
		return -EOPNOTSUPP;
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static int iommu_fault_logged(int kfd, bool write, uint64_t iova)
{
	char rec[2048], what[32], addr[48];
	ssize_t n;
	int i;

	if (kfd < 0)
		return kfd;
	snprintf(what, sizeof(what), "DMAR: [DMA %s ", write ? "Write" : "Read");
	snprintf(addr, sizeof(addr), " fault addr 0x%llx ",
		 (unsigned long long)iova);
	for (i = 0; i < 100; i++) {
		for (;;) {
			n = read(kfd, rec, sizeof(rec) - 1);
			if (n < 0 && errno == EPIPE)
				continue;	/* overwritten: read on */
			if (n <= 0)
				break;
			rec[n] = 0;
			if (strstr(rec, what) && strstr(rec, addr))
				return 0;
		}
		usleep(10000);
	}
	return -ENOENT;
}

/*
 * Run @dma, which must be refused at @iova: it moves nothing (@dma says),
 * and the IOMMU logs the fault. intel-iommu allows five fault reports in
 * five seconds: when none was logged, the DMA is tried once more after that.
 */
typedef enum p2p_result (*p2p_dma_fn)(struct p2p_ctx *p, uint64_t iova);

static void p2p_assert_refused(struct __test_metadata *_metadata,
			       struct p2p_ctx *p, bool write, uint64_t iova,
			       p2p_dma_fn dma)
{
	int kfd, ret, tries;

	for (tries = 0; tries < 2; tries++) {
		if (tries)
			sleep(6);
		kfd = kmsg_tail();
		ASSERT_P2P(P2P_NOTHING, dma(p, iova));
		ret = iommu_fault_logged(kfd, write, iova);
		if (kfd >= 0)
			close(kfd);
		if (ret != -ENOENT)
			break;
	}
	if (ret == -EOPNOTSUPP)
		ksft_print_msg("the IOMMU's fault report is not checked: not intel-iommu\n");
	else
		ASSERT_EQ(0, ret)
			TH_LOG("no DMAR fault logged for the DMA %s at 0x%llx: %s",
			       write ? "write" : "read", (unsigned long long)iova,
			       strerror(-ret));
}

/* In the order a VMM would: the mappings, the dma-buf, the devices. */
static void p2p_teardown(struct p2p_ctx *p, struct vd_test *self)
{
	if (p->regs && p->regs != MAP_FAILED)
		munmap(p->regs, p->edu.regions[EDU_BAR].size);
	if (p->bar && p->bar != MAP_FAILED)
		munmap(p->bar, P2P_BAR_MAP(self->page));
	if (p->buf && p->buf != MAP_FAILED)
		munmap(p->buf, self->page);
	if (p->fd >= 0)
		close(p->fd);
	vd_dev_close(&p->edu);
	vd_dev_close(&p->ivs);
}

TEST_F(vfio_dmabuf, dma_reads_the_bar)
{
	const uint64_t buf_iova = 0x100000;
	struct vfio_iommu_type1_dma_map dma_map = {
		.argsz = sizeof(dma_map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
	};
	struct vfio_region_dma_range r = {
		.offset = HOST_PATTERN_OFFSET,
		.length = EDU_DMA_BUF_SIZE,
	};
	struct test_dmabuf_importer_dma_range e;
	struct test_dmabuf_importer_map map;
	uint8_t *regs;
	struct vd_dev ivs, edu;
	uint8_t *bar, *buf, *pattern;
	bool host;
	size_t i;
	__u32 id;
	int fd, ret;

	if (variant->cdev) {
		struct p2p_ctx p;

		if (p2p_setup(_metadata, &self->t, &p))
			ASSERT_P2P(P2P_ARRIVED, p2p_copy(&p));
		p2p_teardown(&p, &self->t);
		return;
	}
	if (!self->t.env.edu_peer.present)
		SKIP(return, "%s", vd_missing("edu (1234:11e8) behind the switch of the ivshmem"));
	if (HOST_PATTERN_OFFSET % self->t.page || EDU_DMA_BUF_SIZE > self->t.page)
		SKIP(return, "written for 4 KiB pages");
	if (!open_ivshmem(_metadata, &self->t, &ivs) ||
	    !open_dev(_metadata, &self->t, &self->t.env.edu_peer, "edu", &edu) ||
	    !open_importer(_metadata, &self->t))
		return;

	bar = vd_region_mmap(&ivs, IVSHMEM_RAM_BAR, 2 * self->t.page);
	ASSERT_NE(MAP_FAILED, bar);
	host = !memcmp(bar, HOST_MAGIC, strlen(HOST_MAGIC));
	pattern = bar + HOST_PATTERN_OFFSET;
	if (!host)
		for (i = 0; i < EDU_DMA_BUF_SIZE; i++)
			pattern[i] = expected_byte(false, i);
	for (i = 0; i < EDU_DMA_BUF_SIZE; i++)
		ASSERT_EQ(expected_byte(host, i), pattern[i]);
	ksft_print_msg("pattern written by %s\n",
		       host ? "the host" : "the test through the BAR");

	/* The importer maps the range for the edu. */
	fd = export_checked(_metadata, &ivs, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, imp_attach(self->t.importer, fd, &edu.pci, 0, &id));
	ret = imp_map(self->t.importer, id, &e, 1, &map);
	ASSERT_EQ(0, ret)
		TH_LOG("map: %s", strerror(-ret));
	ASSERT_EQ(1, map.nents);
	ASSERT_EQ(bar_start(_metadata, &ivs.pci, IVSHMEM_RAM_BAR) + r.offset,
		  e.dma_addr);
	ASSERT_NE(buf_iova, e.dma_addr & ~(uint64_t)(self->t.page - 1));

	/* The path a switch takes: bus address to BAR. */
	dma_map.vaddr = (uintptr_t)bar + HOST_PATTERN_OFFSET;
	dma_map.iova = e.dma_addr;
	dma_map.size = self->t.page;
	ASSERT_EQ(0, ioctl(self->t.vfio.container, VFIO_IOMMU_MAP_DMA, &dma_map))
		TH_LOG("VFIO_IOMMU_MAP_DMA of the BAR at 0x%llx: %s",
		       (unsigned long long)e.dma_addr, strerror(errno));

	buf = mmap(NULL, self->t.page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0, self->t.page);
	dma_map.vaddr = (uintptr_t)buf;
	dma_map.iova = buf_iova;
	ASSERT_EQ(0, ioctl(self->t.vfio.container, VFIO_IOMMU_MAP_DMA, &dma_map))
		TH_LOG("VFIO_IOMMU_MAP_DMA of memory: %s", strerror(errno));

	regs = vd_region_mmap(&edu, EDU_BAR, edu.regions[EDU_BAR].size);
	ASSERT_NE(MAP_FAILED, regs);
	ASSERT_EQ(0xed, __atomic_load_n((uint32_t *)(regs + EDU_ID),
					__ATOMIC_ACQUIRE) & 0xff);
	ASSERT_EQ(0, vd_cmd_update(&edu, PCI_COMMAND_MASTER, 0));

	ASSERT_EQ(0, edu_dma(regs, e.dma_addr, EDU_DMA_BUF, EDU_DMA_LEN, 0));
	ASSERT_EQ(0, edu_dma(regs, EDU_DMA_BUF, buf_iova, EDU_DMA_LEN,
			     EDU_DMA_TO_PCI));
	for (i = 0; i < EDU_DMA_LEN; i++) {
		ASSERT_EQ(expected_byte(host, i), buf[i])
			TH_LOG("byte %zu (edu's dma_mask: 28 bits unless QEMU widens it)",
			       i);
	}
	ASSERT_EQ(0, close(fd));
}

/*
 * The edu writes into the BAR through the IOVA of its dma-buf: the CPU reads
 * the bytes in the BAR (and the host in the backing file, after the run).
 * Revoked by a memory-disable, with memory decode back on, the same DMA of
 * other bytes is refused by the IOMMU, and the page keeps the first ones.
 */
TEST_F(vfio_dmabuf, dma_writes_the_bar)
{
	struct vfio_region_dma_range r = {
		.offset = DEVICE_PATTERN_OFFSET,
		.length = EDU_DMA_BUF_SIZE,
	};
	struct p2p_ctx p;
	size_t i;
	int fd;

	if (!variant->cdev)
		SKIP(return, "the edu writes through an iommufd IOAS: the cdev variant");
	if (!p2p_setup(_metadata, &self->t, &p)) {
		p2p_teardown(&p, &self->t);
		return;
	}
	memset(p.bar + DEVICE_PATTERN_OFFSET, 0, self->t.page);
	fd = export_checked(_metadata, &p.ivs, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, ioas_map_dmabuf(&self->t.vfio, fd, self->t.page,
				     P2P_WRITE_IOVA));
	for (i = 0; i < EDU_DMA_LEN; i++)
		p.buf[i] = device_byte(i);
	ASSERT_P2P(P2P_ARRIVED, p2p_write_to(&p, P2P_WRITE_IOVA));

	ASSERT_EQ(0, vd_cmd_update(&p.ivs, 0, PCI_COMMAND_MEMORY));
	ASSERT_EQ(0, vd_cmd_update(&p.ivs, PCI_COMMAND_MEMORY, 0));
	for (i = 0; i < EDU_DMA_LEN; i++)
		p.buf[i] = ~device_byte(i);
	p2p_assert_refused(_metadata, &p, true, P2P_WRITE_IOVA, p2p_write_to);
	for (i = 0; i < EDU_DMA_LEN; i++)
		ASSERT_EQ(device_byte(i), p.bar[DEVICE_PATTERN_OFFSET + i]);
	ASSERT_EQ(0, ioas_unmap(&self->t.vfio, P2P_WRITE_IOVA, self->t.page));
	ASSERT_EQ(0, close(fd));
	p2p_teardown(&p, &self->t);
}

/*
 * Revocation of the BAR's dma-buf reaches iommufd: the IOVA is unmapped
 * from the IOAS's domain, while it stays allocated, and the mapping is not
 * restored with the buffer: a new one is needed. Through the cdev only: the
 * group path's type1 mapping of the BAR is no dma-buf.
 *
 * What shows that iommufd unmapped the IOVA is the edu reading nothing
 * there while the BAR decodes: after the buffer is back (memory enabled
 * again, after the reset), and after the close, next to a new dma-buf of the
 * reopened device that a second IOVA reads. While memory decode is off the
 * BAR reads nothing anyway; only the errnos tell then.
 */
static bool p2p_revoke_setup(struct __test_metadata *_metadata,
			     struct vd_test *self, bool cdev,
			     struct p2p_ctx *p)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->ivs.fd = -1;
	p->edu.fd = -1;
	if (!cdev)
		SKIP(return false, "revocation reaches an iommufd IOAS: the cdev variant");
	if (!p2p_setup(_metadata, self, p))
		return false;
	ASSERT_P2P(P2P_ARRIVED, p2p_copy(p));
	return true;
}

/*
 * Revoked: the IOVA is still taken (a fixed map there fails with EEXIST),
 * and a new map of the buffer elsewhere fails with @map_errno (ENODEV while
 * the buffer is revoked; 0 once it is back).
 */
static void p2p_check_revoked(struct __test_metadata *_metadata,
			      struct vd_test *self, struct p2p_ctx *p,
			      int map_errno)
{
	ASSERT_EQ(-EEXIST, ioas_map_mem(&self->vfio, p->buf, self->page,
					P2P_BAR_IOVA));
	ASSERT_EQ(map_errno, ioas_map_dmabuf(&self->vfio, p->fd, self->page,
					     P2P_BAR_IOVA + self->page));
	if (!map_errno)
		ASSERT_EQ(0, ioas_unmap(&self->vfio, P2P_BAR_IOVA + self->page,
					self->page));
}

/*
 * The buffer is back and the BAR decodes: the revoked mapping reads nothing
 * (iommufd unmapped it and did not map it again: the IOMMU reports the
 * read); unmapped and mapped again at the same IOVA, the bytes flow.
 */
static void p2p_check_remap(struct __test_metadata *_metadata,
			    struct vd_test *self, struct p2p_ctx *p)
{
	p2p_assert_refused(_metadata, p, false, P2P_BAR_IOVA, p2p_copy_from);
	ASSERT_EQ(0, ioas_unmap(&self->vfio, P2P_BAR_IOVA, self->page));
	ASSERT_EQ(0, ioas_map_dmabuf(&self->vfio, p->fd, self->page,
				     P2P_BAR_IOVA));
	ASSERT_P2P(P2P_ARRIVED, p2p_copy(p));
}

/*
 * The device was closed: its dma-buf is revoked for good. Reopened, a new
 * dma-buf of the same BAR page mapped at a second IOVA reads the pattern
 * while the old IOVA reads nothing; the old buffer cannot be mapped again.
 */
static void p2p_check_closed(struct __test_metadata *_metadata,
			     struct vd_test *self, struct p2p_ctx *p)
{
	struct vfio_region_dma_range r = {
		.offset = HOST_PATTERN_OFFSET,
		.length = EDU_DMA_BUF_SIZE,
	};
	int fd;

	p2p_check_revoked(_metadata, self, p, -ENODEV);
	ASSERT_TRUE(open_ivshmem(_metadata, self, &p->ivs));
	fd = export_checked(_metadata, &p->ivs, IVSHMEM_RAM_BAR, &r, 1);
	ASSERT_EQ(0, ioas_map_dmabuf(&self->vfio, fd, self->page,
				     P2P_BAR_IOVA + self->page));
	ASSERT_P2P(P2P_ARRIVED, p2p_copy_from(p, P2P_BAR_IOVA + self->page));
	p2p_assert_refused(_metadata, p, false, P2P_BAR_IOVA, p2p_copy_from);
	ASSERT_EQ(0, ioas_unmap(&self->vfio, P2P_BAR_IOVA + self->page,
				self->page));
	ASSERT_EQ(0, close(fd));

	ASSERT_EQ(0, ioas_unmap(&self->vfio, P2P_BAR_IOVA, self->page));
	ASSERT_EQ(-ENODEV, ioas_map_dmabuf(&self->vfio, p->fd, self->page,
					   P2P_BAR_IOVA));
}

/* The last reference to the device: its BAR mapping, then its fd. */
static void p2p_close_ivshmem(struct __test_metadata *_metadata,
			      struct vd_test *self, struct p2p_ctx *p)
{
	ASSERT_EQ(0, munmap(p->bar, P2P_BAR_MAP(self->page)));
	p->bar = NULL;
	vd_dev_close(&p->ivs);
}

TEST_F(vfio_dmabuf, iommufd_revoke_memory_disable)
{
	struct p2p_ctx p;

	if (p2p_revoke_setup(_metadata, &self->t, variant->cdev, &p)) {
		ASSERT_EQ(0, vd_cmd_update(&p.ivs, 0, PCI_COMMAND_MEMORY));
		p2p_check_revoked(_metadata, &self->t, &p, -ENODEV);
		ASSERT_EQ(0, vd_cmd_update(&p.ivs, PCI_COMMAND_MEMORY, 0));
		p2p_check_remap(_metadata, &self->t, &p);
	}
	p2p_teardown(&p, &self->t);
}

TEST_F(vfio_dmabuf, iommufd_revoke_reset)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct p2p_ctx p;

	if (!p2p_revoke_setup(_metadata, &self->t, variant->cdev, &p)) {
		p2p_teardown(&p, &self->t);
		return;
	}
	ASSERT_EQ(0, ioctl(p.ivs.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET)) {
		p2p_teardown(&p, &self->t);
		SKIP(return, "%s has no reset method", p.ivs.pci.name);
	}
	/* Revoked for the time of the reset: back when it returns */
	ASSERT_EQ(0, ioctl(p.ivs.fd, VFIO_DEVICE_RESET))
		TH_LOG("VFIO_DEVICE_RESET: %s", strerror(errno));
	p2p_check_revoked(_metadata, &self->t, &p, 0);
	p2p_check_remap(_metadata, &self->t, &p);
	p2p_teardown(&p, &self->t);
}

TEST_F(vfio_dmabuf, iommufd_revoke_close)
{
	struct p2p_ctx p;

	if (p2p_revoke_setup(_metadata, &self->t, variant->cdev, &p)) {
		p2p_close_ivshmem(_metadata, &self->t, &p);
		p2p_check_closed(_metadata, &self->t, &p);
	}
	p2p_teardown(&p, &self->t);
}

/*
 * Closed while revoked (memory decode off, never restored): the close
 * revokes again without waiting for importers a second time, and the
 * buffer is gone for good.
 */
TEST_F(vfio_dmabuf, iommufd_revoke_close_while_disabled)
{
	struct p2p_ctx p;

	if (p2p_revoke_setup(_metadata, &self->t, variant->cdev, &p)) {
		ASSERT_EQ(0, vd_cmd_update(&p.ivs, 0, PCI_COMMAND_MEMORY));
		p2p_close_ivshmem(_metadata, &self->t, &p);
		p2p_check_closed(_metadata, &self->t, &p);
	}
	p2p_teardown(&p, &self->t);
}

/* The importer itself, against udmabuf, an exporter of pages. */

static int udmabuf_create(size_t size)
{
	struct udmabuf_create create = { .flags = UDMABUF_FLAGS_CLOEXEC };
	int memfd, dev, fd;

	memfd = memfd_create("vfio_dmabuf", MFD_ALLOW_SEALING);
	if (memfd < 0)
		return -errno;
	if (ftruncate(memfd, size) ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK)) {
		fd = -errno;
		goto out;
	}
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		fd = -errno;
		goto out;
	}
	create.memfd = memfd;
	create.size = size;
	fd = ioctl(dev, UDMABUF_CREATE, &create);
	if (fd < 0)
		fd = -errno;
	close(dev);
out:
	close(memfd);
	return fd;
}

/* A mapping of pages is reported as such: the flag can be trusted. */
TEST(importer_reports_pages)
{
	struct test_dmabuf_importer_dma_range e[MAX_ENTRIES];
	struct test_dmabuf_importer_map map;
	const struct vd_pci *pci;
	struct vd_env env;
	int imp, fd, ret;
	__u32 id;

	if (geteuid())
		SKIP(return, "must be run as root");
	vd_find_devices(&env);
	pci = any_pci(&env);
	if (!pci)
		SKIP(return, "%s", vd_missing("PCI device of the topology"));
	fd = udmabuf_create(4 * env.page_size);
	if (fd == -ENOENT)
		SKIP(return, "no /dev/udmabuf (CONFIG_UDMABUF)");
	ASSERT_LE(0, fd)
		TH_LOG("udmabuf: %s", strerror(-fd));
	imp = vd_importer_open();
	ASSERT_LE(0, imp)
		TH_LOG("%s", vd_errmsg);

	ret = imp_attach(imp, fd, pci, 0, &id);
	ASSERT_EQ(0, ret)
		TH_LOG("attach: %s", strerror(-ret));
	ret = imp_map(imp, id, e, MAX_ENTRIES, &map);
	ASSERT_EQ(0, ret)
		TH_LOG("map: %s", strerror(-ret));
	ASSERT_EQ(TEST_DMABUF_IMPORTER_MAP_PAGES, map.flags);
	ASSERT_EQ(4 * env.page_size, map.total_len);
	ASSERT_LE(1, map.nents);
	ASSERT_EQ(0, imp_pin(imp, id));
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(0, close(imp));
}

/* The importer's own errors. */
TEST(importer_errors)
{
	struct test_dmabuf_importer_attach attach;
	struct test_dmabuf_importer_info info;
	struct test_dmabuf_importer_map *map;
	struct vd_pci nopci = { .present = true, .domain = 0xffff,
				.bus = 0xff, .devfn = 0xff };
	const struct vd_pci *pci;
	struct vd_env env;
	int imp, fd, devnull;
	__u32 id;

	if (geteuid())
		SKIP(return, "must be run as root");
	vd_find_devices(&env);
	pci = any_pci(&env);
	if (!pci)
		SKIP(return, "%s", vd_missing("PCI device of the topology"));
	fd = udmabuf_create(env.page_size);
	if (fd == -ENOENT)
		SKIP(return, "no /dev/udmabuf (CONFIG_UDMABUF)");
	ASSERT_LE(0, fd);
	imp = vd_importer_open();
	ASSERT_LE(0, imp)
		TH_LOG("%s", vd_errmsg);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, devnull);

	ASSERT_EQ(-EBADF, imp_attach(imp, -1, pci, 0, &id));
	ASSERT_EQ(-EINVAL, imp_attach(imp, devnull, pci, 0, &id));
	ASSERT_EQ(-ENODEV, imp_attach(imp, fd, &nopci, 0, &id));
	ASSERT_EQ(-EINVAL, imp_attach(imp, fd, pci, 0x40, &id));
	/* Without move_notify there is nothing to pin revocably or defer */
	ASSERT_EQ(-EINVAL, imp_attach(imp, fd, pci,
				      TEST_DMABUF_IMPORTER_ATTACH_NO_NOTIFY |
				      TEST_DMABUF_IMPORTER_ATTACH_PIN_REVOCABLE,
				      &id));
	ASSERT_EQ(-EINVAL, imp_attach(imp, fd, pci,
				      TEST_DMABUF_IMPORTER_ATTACH_NO_NOTIFY |
				      TEST_DMABUF_IMPORTER_ATTACH_DEFER_UNMAP,
				      &id));
	/* A static importer has no move_notify to defer an unmap from. */
	ASSERT_EQ(-EINVAL, imp_attach(imp, fd, pci,
				      TEST_DMABUF_IMPORTER_ATTACH_STATIC |
				      TEST_DMABUF_IMPORTER_ATTACH_DEFER_UNMAP,
				      &id));
	memset(&attach, 0, sizeof(attach));
	attach.dmabuf_fd = fd;
	attach.pci_domain = pci->domain;
	attach.pci_bus = pci->bus;
	attach.pci_devfn = pci->devfn;
	attach.reserved0 = 1;
	ASSERT_EQ(-1, ioctl(imp, TEST_DMABUF_IMPORTER_ATTACH, &attach));
	ASSERT_EQ(EINVAL, errno);

	ASSERT_EQ(-ENOENT, imp_map(imp, 1, NULL, 0, NULL));
	ASSERT_EQ(-ENOENT, imp_unmap(imp, 1));
	ASSERT_EQ(-ENOENT, imp_pin(imp, 1));
	ASSERT_EQ(-ENOENT, imp_info(imp, 1, &info));
	ASSERT_EQ(-ENOENT, imp_detach(imp, 1));

	ASSERT_EQ(0, imp_attach(imp, fd, pci, 0, &id));
	ASSERT_NE(0, id);
	ASSERT_EQ(-ENODATA, imp_unmap(imp, id));
	ASSERT_EQ(-E2BIG, imp_map(imp, id, NULL, 65537, NULL));
	ASSERT_EQ(0, imp_map(imp, id, NULL, 0, NULL));
	ASSERT_EQ(-EBUSY, imp_map(imp, id, NULL, 0, NULL));
	ASSERT_EQ(0, imp_info(imp, id, &info));
	ASSERT_EQ(1, info.mapped);
	ASSERT_EQ(1, info.maps);
	ASSERT_EQ(0, info.move_notifies);
	ASSERT_EQ((__u64)env.page_size, info.size);
	/* A mapping whose entries cannot be copied is undone. */
	ASSERT_EQ(0, imp_unmap(imp, id));
	ASSERT_EQ(-EFAULT, imp_map(imp, id, (void *)8, 1, NULL));
	ASSERT_EQ(0, imp_info(imp, id, &info));
	ASSERT_EQ(0, info.mapped);
	/* So is one whose result cannot be written back. */
	map = mmap(NULL, env.page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	map->id = id;
	ASSERT_EQ(0, mprotect(map, env.page_size, PROT_READ));
	ASSERT_EQ(-1, ioctl(imp, TEST_DMABUF_IMPORTER_MAP, map));
	ASSERT_EQ(EFAULT, errno);
	ASSERT_EQ(0, munmap(map, env.page_size));
	ASSERT_EQ(0, imp_info(imp, id, &info));
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(0, imp_map(imp, id, NULL, 0, NULL));
	ASSERT_EQ(0, imp_unmap(imp, id));
	ASSERT_EQ(0, imp_detach(imp, id));
	ASSERT_EQ(-ENOENT, imp_detach(imp, id));

	/* Closing the file detaches what is left, mapped or not. */
	ASSERT_EQ(0, imp_attach(imp, fd, pci, 0, &id));
	ASSERT_EQ(0, imp_map(imp, id, NULL, 0, NULL));
	ASSERT_EQ(0, imp_attach(imp, fd, pci, 0, &id));
	ASSERT_EQ(0, close(devnull));
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(0, close(imp));
}

/* --bench */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#define BENCH_EXPORTS		20
#define BENCH_MAPS		20

/*
 * Fill @r with @nr ranges of @len bytes each, spread over a BAR of
 * @bar_size bytes and repeating once it is covered.
 */
static void bench_ranges(struct vfio_region_dma_range *r, unsigned int nr,
			 uint64_t len, uint64_t bar_size)
{
	uint64_t slots = bar_size / len;
	unsigned int i;

	for (i = 0; i < nr; i++) {
		r[i].offset = (i % slots) * len;
		r[i].length = len;
	}
}

/* Time attach + map + unmap for @pci, or print why it cannot map. */
static void bench_importer(int imp, int fd, const struct vd_pci *pci)
{
	struct test_dmabuf_importer_bench b;
	__u32 id;
	int ret;

	if (!pci->present) {
		printf(" %10s %10s %10s %8s", "-", "-", "-", "-");
		return;
	}
	ret = imp_attach(imp, fd, pci, 0, &id);
	if (!ret) {
		ret = imp_bench(imp, id, BENCH_MAPS, &b);
		imp_detach(imp, id);
	}
	if (ret) {
		printf(" %10s %10s %10s %8s", strerror(-ret), "-", "-", "-");
		return;
	}
	printf(" %10.1f %10.1f %10.1f %8u", b.attach_ns / 1e3 / BENCH_MAPS,
	       b.map_ns / 1e3 / BENCH_MAPS, b.unmap_ns / 1e3 / BENCH_MAPS,
	       b.nents);
}

static int bench(int argc, char **argv)
{
	static const unsigned int nr_ranges[] = { 1, 64, 4096 };
	static const uint64_t totals[] = {
		4ULL << 10, 64ULL << 10, 1ULL << 20, 4ULL << 20, 16ULL << 20,
		64ULL << 20, 256ULL << 20, 1ULL << 30,
	};
	struct vfio_region_dma_range *r;
	struct vd_vfio vfio;
	struct vd_dev dev;
	struct vd_env env;
	uint64_t bar_size;
	unsigned int i, j, k;
	int imp, ret;

	if (geteuid())
		ksft_exit_skip("must be run as root\n");
	vd_find_devices(&env);
	if (!env.ivshmem.present)
		ksft_exit_skip("%s\n", vd_missing("ivshmem-plain (1af4:1110)"));
	ret = vd_vfio_init(&vfio, !access("/dev/iommu", F_OK));
	if (!ret)
		ret = vd_dev_open(&vfio, &env.ivshmem, &dev);
	if (ret)
		ksft_exit_fail_msg("%s\n", vd_errmsg);
	imp = vd_importer_open();
	if (imp < 0)
		ksft_exit_fail_msg("%s\n", vd_errmsg);
	bar_size = dev.regions[IVSHMEM_RAM_BAR].size;
	r = calloc(4096, sizeof(*r));
	if (!r)
		ksft_exit_fail_msg("out of memory\n");

	printf("# command:");
	for (i = 0; i < (unsigned int)argc; i++)
		printf(" %s", argv[i]);
	printf("\n# exporter %s BAR%d (%llu KiB) through %s\n",
	       env.ivshmem.name, IVSHMEM_RAM_BAR,
	       (unsigned long long)bar_size >> 10,
	       vfio.cdev ? "the iommufd cdev" : "the group");
	printf("# usec, export: mean of %d, attach/map/unmap: mean of %d\n",
	       BENCH_EXPORTS, BENCH_MAPS);
	printf("# left importer: the ivshmem itself (bus addresses)\n");
	printf("# right importer: %s %s (through the host bridge)\n",
	       env.edu_alone.present ? "the edu" : "none",
	       env.edu_alone.present ? env.edu_alone.name : "");
	printf("%6s %10s %10s | %10s %10s %10s %8s | %10s %10s %10s %8s\n",
	       "ranges", "total", "export", "attach", "map", "unmap", "entries",
	       "attach", "map", "unmap", "entries");

	for (i = 0; i < ARRAY_SIZE(nr_ranges); i++) {
		for (j = 0; j < ARRAY_SIZE(totals); j++) {
			uint64_t len = totals[j] / nr_ranges[i];
			double t0, t = 0;
			int fd;

			if (len < (uint64_t)env.page_size ||
			    len % env.page_size || len > bar_size)
				continue;
			bench_ranges(r, nr_ranges[i], len, bar_size);
			for (k = 0; k < BENCH_EXPORTS; k++) {
				t0 = now_us();
				fd = vd_export(dev.fd, IVSHMEM_RAM_BAR, r,
					       nr_ranges[i], O_RDWR | O_CLOEXEC);
				t += now_us() - t0;
				if (fd < 0)
					ksft_exit_fail_msg("export: %s\n",
							   strerror(-fd));
				close(fd);
			}
			fd = vd_export(dev.fd, IVSHMEM_RAM_BAR, r,
				       nr_ranges[i], O_RDWR | O_CLOEXEC);
			if (fd < 0)
				ksft_exit_fail_msg("export: %s\n",
						   strerror(-fd));
			printf("%6u %9lluK %10.1f |", nr_ranges[i],
			       (unsigned long long)totals[j] >> 10,
			       t / BENCH_EXPORTS);
			bench_importer(imp, fd, &env.ivshmem);
			printf(" |");
			bench_importer(imp, fd, &env.edu_alone);
			printf("\n");
			close(fd);
		}
	}

	free(r);
	close(imp);
	vd_dev_close(&dev);
	vd_vfio_fini(&vfio);
	return 0;
}

#define BENCH_IOAS_MAPS		20
#define BENCH_REVOKES		20

/*
 * Mean usec of IOMMU_IOAS_MAP_FILE and of IOMMU_IOAS_UNMAP of @length
 * bytes of @fd at @iova, or a negative errno.
 */
static int bench_map_file(struct vd_vfio *vfio, int fd, uint64_t length,
			  double *map_us, double *unmap_us)
{
	const uint64_t iova = 1ULL << 32;
	double t0;
	int i, ret;

	*map_us = *unmap_us = 0;
	for (i = 0; i < BENCH_IOAS_MAPS; i++) {
		t0 = now_us();
		ret = ioas_map_dmabuf(vfio, fd, length, iova);
		*map_us += now_us() - t0;
		if (ret)
			return ret;
		t0 = now_us();
		ret = ioas_unmap(vfio, iova, length);
		*unmap_us += now_us() - t0;
		if (ret)
			return ret;
	}
	*map_us /= BENCH_IOAS_MAPS;
	*unmap_us /= BENCH_IOAS_MAPS;
	return 0;
}

static void bench_print_map(int ret, double map_us, double unmap_us)
{
	if (ret)
		printf(" %10s %10s", strerror(-ret), "-");
	else
		printf(" %10.1f %10.1f", map_us, unmap_us);
}

/* Allocate a paging HWPT on the IOAS for @dev: one more domain to fill. */
static int hwpt_alloc(struct vd_vfio *vfio, struct vd_dev *dev, __u32 *id)
{
	struct iommu_hwpt_alloc alloc = {
		.size = sizeof(alloc),
		.dev_id = dev->devid,
		.pt_id = vfio->ioas_id,
	};

	if (ioctl(vfio->iommufd, IOMMU_HWPT_ALLOC, &alloc))
		return -errno;
	*id = alloc.out_hwpt_id;
	return 0;
}

/*
 * Mean usec of a revocation (a memory-disable config write on @dev) with
 * @length bytes of the BAR's dma-buf @fd mapped in the IOAS.
 */
static int bench_revoke(struct vd_vfio *vfio, struct vd_dev *dev, int fd,
			uint64_t length, double *us)
{
	const uint64_t iova = 1ULL << 32;
	double t0;
	int i, ret;

	*us = 0;
	for (i = 0; i < BENCH_REVOKES; i++) {
		ret = ioas_map_dmabuf(vfio, fd, length, iova);
		if (ret)
			return ret;
		t0 = now_us();
		ret = vd_cmd_update(dev, 0, PCI_COMMAND_MEMORY);
		*us += now_us() - t0;
		if (!ret)
			ret = vd_cmd_update(dev, PCI_COMMAND_MEMORY, 0);
		if (!ret)
			ret = ioas_unmap(vfio, iova, length);
		if (ret)
			return ret;
	}
	*us /= BENCH_REVOKES;
	return 0;
}

/*
 * IOMMU_IOAS_MAP_FILE + IOMMU_IOAS_UNMAP of the ivshmem BAR's dma-buf (one
 * range, as iommufd takes it) against a memfd of the same size, into an
 * IOAS with the ivshmem's domain; then the revocation latency with 1, 2 and
 * 4 domains holding the dma-buf's area.
 */
static int bench_iommufd(int argc, char **argv)
{
	static const uint64_t sizes[] = {
		4ULL << 10, 64ULL << 10, 1ULL << 20, 4ULL << 20, 16ULL << 20,
		64ULL << 20, 256ULL << 20, 1ULL << 30,
	};
	struct vfio_region_dma_range r = { 0 };
	double map_us, unmap_us, rev_us;
	unsigned int i, domains;
	struct vd_vfio vfio;
	struct vd_dev dev;
	struct vd_env env;
	uint64_t bar_size;
	__u32 hwpts[3];
	int fd, memfd, ret;

	if (geteuid())
		ksft_exit_skip("must be run as root\n");
	vd_find_devices(&env);
	if (!env.ivshmem.present)
		ksft_exit_skip("%s\n", vd_missing("ivshmem-plain (1af4:1110)"));
	if (access("/dev/iommu", F_OK))
		ksft_exit_skip("no /dev/iommu (CONFIG_IOMMUFD)\n");
	ret = vd_vfio_init(&vfio, true);
	if (!ret)
		ret = vd_dev_open(&vfio, &env.ivshmem, &dev);
	if (ret)
		ksft_exit_fail_msg("%s\n", vd_errmsg);
	bar_size = dev.regions[IVSHMEM_RAM_BAR].size;

	printf("# command:");
	for (i = 0; i < (unsigned int)argc; i++)
		printf(" %s", argv[i]);
	printf("\n# IOMMU_IOAS_MAP_FILE + IOMMU_IOAS_UNMAP, usec, mean of %d, into an IOAS\n",
	       BENCH_IOAS_MAPS);
	printf("# with the domain of %s; dma-buf: one range of its BAR%d (%llu KiB)\n",
	       env.ivshmem.name, IVSHMEM_RAM_BAR,
	       (unsigned long long)bar_size >> 10);
	printf("%10s | %10s %10s | %10s %10s\n", "size", "dmabuf map",
	       "unmap", "memfd map", "unmap");
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		printf("%9lluK |", (unsigned long long)sizes[i] >> 10);
		if (sizes[i] <= bar_size) {
			r.length = sizes[i];
			fd = vd_export(dev.fd, IVSHMEM_RAM_BAR, &r, 1,
				       O_RDWR | O_CLOEXEC);
			if (fd < 0)
				ksft_exit_fail_msg("export: %s\n", strerror(-fd));
			ret = bench_map_file(&vfio, fd, sizes[i], &map_us,
					     &unmap_us);
			bench_print_map(ret, map_us, unmap_us);
			close(fd);
		} else {
			printf(" %10s %10s", "-", "-");
		}
		printf(" |");
		memfd = memfd_create("bench", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, sizes[i]))
			ksft_exit_fail_msg("memfd: %s\n", strerror(errno));
		ret = bench_map_file(&vfio, memfd, sizes[i], &map_us, &unmap_us);
		bench_print_map(ret, map_us, unmap_us);
		close(memfd);
		printf("\n");
	}

	printf("# revocation (memory-disable config write), usec, mean of %d,\n",
	       BENCH_REVOKES);
	printf("# of the whole BAR mapped in the IOAS, held by N domains\n");
	printf("%8s | %10s\n", "domains", "revoke");
	r.length = bar_size;
	fd = vd_export(dev.fd, IVSHMEM_RAM_BAR, &r, 1, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		ksft_exit_fail_msg("export: %s\n", strerror(-fd));
	for (domains = 1; domains <= 4; domains *= 2) {
		/* The device's own domain, then one and two more HWPTs */
		if (domains == 2)
			ret = hwpt_alloc(&vfio, &dev, &hwpts[0]);
		else if (domains == 4)
			ret = hwpt_alloc(&vfio, &dev, &hwpts[1]) ?:
			      hwpt_alloc(&vfio, &dev, &hwpts[2]);
		else
			ret = 0;
		if (ret)
			ksft_exit_fail_msg("IOMMU_HWPT_ALLOC: %s\n",
					   strerror(-ret));
		ret = bench_revoke(&vfio, &dev, fd, bar_size, &rev_us);
		if (ret)
			printf("%8u | %10s\n", domains, strerror(-ret));
		else
			printf("%8u | %10.1f\n", domains, rev_us);
	}
	close(fd);
	vd_dev_close(&dev);
	vd_vfio_fini(&vfio);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bench"))
		return bench(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "--bench-iommufd"))
		return bench_iommufd(argc, argv);
	return test_harness_run(argc, argv);
}

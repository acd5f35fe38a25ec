/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the vfio_dmabuf selftest: finding the emulated PCI devices,
 * binding them to vfio-pci, opening them through the iommufd cdev or the
 * legacy group/container path, exporting dma-bufs with
 * VFIO_DEVICE_FEATURE_DMA_BUF, and driving the test_dmabuf_importer module.
 *
 * The functions return 0 (or a file descriptor) on success and a negative
 * errno on failure; those that can fail for reasons worth reporting also fill
 * vd_errmsg.
 */
#ifndef VFIO_DMABUF_H
#define VFIO_DMABUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include <linux/vfio.h>

/*
 * This is a private UAPI to the kernel test module so it isn't exported
 * in the usual include/uapi/... directory.
 */
#include <lib/test_dmabuf_importer_uapi.h>

#define IMPORTER_NAME		"test_dmabuf_importer"
#define IMPORTER_DEV		"/dev/" IMPORTER_NAME
#define IMPORTER_MODULE_ENV	"VFIO_DMABUF_IMPORTER_MODULE"

/* The emulated devices of the test guest (QEMU). */
#define IVSHMEM_VENDOR		0x1af4	/* ivshmem-plain */
#define IVSHMEM_DEVICE		0x1110
#define EDU_VENDOR		0x1234	/* edu */
#define EDU_DEVICE		0x11e8
#define TESTDEV_VENDOR		0x1b36	/* pci-testdev */
#define TESTDEV_DEVICE		0x0005

#define IVSHMEM_REGS_BAR	0	/* 256 bytes of registers */
#define IVSHMEM_RAM_BAR		2	/* 64-bit, prefetchable, RAM */
#define EDU_BAR			0	/* 1 MiB of registers */
#define TESTDEV_IO_BAR		1

/* Why the last helper that says so failed, for the test log. */
extern char vd_errmsg[512];

struct vd_pci {
	bool present;
	unsigned int domain;
	unsigned int bus;
	unsigned int devfn;
	char name[16];		/* DDDD:BB:DD.F */
};

/*
 * The devices of the test topology:
 *   ivshmem:   ivshmem-plain behind a switch downstream port, the exporter
 *   edu_peer:  an edu behind another downstream port of the same switch
 *   edu_alone: an edu that is not behind that switch, alone on its bus
 *              behind a root port, so that it can be reset
 *   testdev:   pci-testdev, for its I/O BAR
 */
struct vd_env {
	long page_size;
	struct vd_pci ivshmem;
	struct vd_pci edu_peer;
	struct vd_pci edu_alone;
	struct vd_pci testdev;
};

void vd_find_devices(struct vd_env *env);
/* Why a device is missing, for SKIP(). */
const char *vd_missing(const char *what);

/* Bind @pci to vfio-pci with driver_override unless it is bound already. */
int vd_bind_vfio(const struct vd_pci *pci);
/* Read /sys/bus/pci/devices/X/resource: CPU address and size of a BAR. */
int vd_bar_resource(const struct vd_pci *pci, unsigned int bar,
		    uint64_t *start, uint64_t *size);
/* Whether the device has the given reset method (sysfs reset_method). */
bool vd_has_reset_method(const struct vd_pci *pci, const char *method);
/* Whether ACS redirects P2P TLPs at a bridge above @pci (a diagnosis). */
bool vd_acs_redirect_above(const struct vd_pci *pci);
/* The type of the IOMMU default domain of @pci: "DMA", "identity"... */
int vd_iommu_domain_type(const struct vd_pci *pci, char *buf, size_t len);

/* A VFIO "IOMMU context": an iommufd with an IOAS, or a container. */
struct vd_vfio {
	bool cdev;
	int iommufd;
	__u32 ioas_id;
	int container;
	bool iommu_set;
	int ngroups;
	struct {
		int id;
		int fd;
	} groups[8];
};

int vd_vfio_init(struct vd_vfio *vfio, bool cdev);
void vd_vfio_fini(struct vd_vfio *vfio);
/* The group fd of @pci, opened and added to the container if needed. */
int vd_vfio_group_fd(struct vd_vfio *vfio, const struct vd_pci *pci);

struct vd_region {
	__u64 size;
	__u64 offset;
	__u32 flags;
};

/* A device opened through VFIO. */
struct vd_dev {
	struct vd_vfio *vfio;
	struct vd_pci pci;
	int fd;
	int group_fd;		/* group path: the group's fd, not owned */
	__u32 devid;		/* cdev path: the iommufd device id */
	struct vd_region regions[VFIO_PCI_NUM_REGIONS];
};

/* Bind @pci to vfio-pci and open it; enables memory decode. */
int vd_dev_open(struct vd_vfio *vfio, const struct vd_pci *pci,
		struct vd_dev *dev);
void vd_dev_close(struct vd_dev *dev);
int vd_cfg_read(struct vd_dev *dev, unsigned int off, void *buf,
		size_t len);
int vd_cfg_write(struct vd_dev *dev, unsigned int off, const void *buf,
		 size_t len);
/* Set and clear bits of PCI_COMMAND through the VFIO config region. */
int vd_cmd_update(struct vd_dev *dev, uint16_t set, uint16_t clear);
/* mmap() a region of the device. */
void *vd_region_mmap(struct vd_dev *dev, unsigned int index, size_t len);
/* VFIO_DEVICE_PCI_HOT_RESET, with the group fd or an empty list (cdev). */
int vd_hot_reset(struct vd_dev *dev);
/* VFIO_DEVICE_FEATURE_SET of a feature without data. */
int vd_feature_set(struct vd_dev *dev, __u32 feature);

/*
 * VFIO_DEVICE_FEATURE_DMA_BUF with VFIO_DEVICE_FEATURE_GET: returns the new
 * dma-buf fd or a negative errno.
 */
int vd_export(int devfd, __u32 region, const struct vfio_region_dma_range *r,
	      __u32 nr, __u32 open_flags);
/* VFIO_DEVICE_FEATURE on a prepared buffer: the ioctl's result or -errno. */
int vd_feature_ioctl(int devfd, void *buf);

/* The number of open file descriptors of this process, or -errno. */
int vd_count_fds(void);

/* Load the importer module unless it is there, and open its device. */
int vd_importer_open(void);
/* Reference count of the importer module, or -errno. */
int vd_importer_refcnt(void);

int imp_attach(int fd, int dmabuf_fd, const struct vd_pci *pci, __u32 flags,
	       __u32 *id);
int imp_map(int fd, __u32 id, struct test_dmabuf_importer_dma_range *entries,
	    __u32 max_entries, struct test_dmabuf_importer_map *out);
int imp_unmap(int fd, __u32 id);
int imp_detach(int fd, __u32 id);
int imp_pin(int fd, __u32 id);
int imp_info(int fd, __u32 id, struct test_dmabuf_importer_info *info);
int imp_bench(int fd, __u32 id, __u32 iterations,
	      struct test_dmabuf_importer_bench *bench);

#endif /* VFIO_DMABUF_H */

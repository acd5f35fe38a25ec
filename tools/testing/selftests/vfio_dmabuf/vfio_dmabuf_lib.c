// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers of the vfio_dmabuf selftest, see vfio_dmabuf.h.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include <linux/iommufd.h>
#include <linux/pci_regs.h>

#include "vfio_dmabuf.h"

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE	4
#endif

#define PCI_DEVICES	"/sys/bus/pci/devices"
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

char vd_errmsg[512];

static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vd_errmsg, sizeof(vd_errmsg), fmt, ap);
	va_end(ap);
	return err > 0 ? -err : err;
}

static int read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

static int write_file(const char *path, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return n;
	return (size_t)n == len ? 0 : -EIO;
}

static unsigned long read_hex(const char *dev, const char *name)
{
	char path[PATH_MAX], buf[64];

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", dev, name);
	if (read_file(path, buf, sizeof(buf)))
		return ~0UL;
	return strtoul(buf, NULL, 16);
}

static bool parse_pci_name(const char *name, struct vd_pci *pci)
{
	unsigned int domain, bus, dev, fn;

	if (sscanf(name, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4)
		return false;
	pci->present = true;
	pci->domain = domain;
	pci->bus = bus;
	pci->devfn = (dev << 3) | fn;
	snprintf(pci->name, sizeof(pci->name), "%04x:%02x:%02x.%x", domain,
		 bus, dev, fn);
	return true;
}

/* The sysfs directory of the grandparent of a device, its switch. */
static void grandparent(const char *name, char *buf)
{
	char path[PATH_MAX];
	char *slash;

	buf[0] = '\0';
	snprintf(path, sizeof(path), PCI_DEVICES "/%s", name);
	if (!realpath(path, buf))
		return;
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
}

void vd_find_devices(struct vd_env *env)
{
	char ivshmem_gp[PATH_MAX], gp[PATH_MAX];
	struct vd_pci edus[8];
	unsigned int nedus = 0, i;
	struct dirent *de;
	DIR *d;

	memset(env, 0, sizeof(*env));
	env->page_size = sysconf(_SC_PAGESIZE);

	d = opendir(PCI_DEVICES);
	if (!d)
		return;
	while ((de = readdir(d))) {
		unsigned long vendor, device;
		struct vd_pci pci = { 0 };

		if (!parse_pci_name(de->d_name, &pci))
			continue;
		vendor = read_hex(pci.name, "vendor");
		device = read_hex(pci.name, "device");
		if (vendor == IVSHMEM_VENDOR && device == IVSHMEM_DEVICE &&
		    !env->ivshmem.present)
			env->ivshmem = pci;
		else if (vendor == EDU_VENDOR && device == EDU_DEVICE &&
			 nedus < ARRAY_SIZE(edus))
			edus[nedus++] = pci;
		else if (vendor == TESTDEV_VENDOR && device == TESTDEV_DEVICE &&
			 !env->testdev.present)
			env->testdev = pci;
	}
	closedir(d);

	if (env->ivshmem.present)
		grandparent(env->ivshmem.name, ivshmem_gp);
	for (i = 0; i < nedus; i++) {
		grandparent(edus[i].name, gp);
		if (env->ivshmem.present && !strcmp(gp, ivshmem_gp) &&
		    !env->edu_peer.present) {
			env->edu_peer = edus[i];
			continue;
		}
		/* Prefer an edu that can be reset. */
		if (!env->edu_alone.present ||
		    (vd_has_reset_method(&edus[i], "bus") &&
		     !vd_has_reset_method(&env->edu_alone, "bus")))
			env->edu_alone = edus[i];
	}
}

const char *vd_missing(const char *what)
{
	static char msg[256];

	snprintf(msg, sizeof(msg),
		 "no %s in this machine (see the topology in the header of vfio_dmabuf_test.c)",
		 what);
	return msg;
}

int vd_bind_vfio(const struct vd_pci *pci)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;
	int ret;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", pci->name);
	n = readlink(path, link, sizeof(link) - 1);
	if (n > 0) {
		link[n] = '\0';
		if (!strcmp(basename(link), "vfio-pci"))
			return 0;
	}

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver_override",
		 pci->name);
	ret = write_file(path, "vfio-pci");
	if (ret)
		return fail(ret, "cannot write %s: %s", path, strerror(-ret));
	if (n > 0) {
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver/unbind",
			 pci->name);
		ret = write_file(path, pci->name);
		if (ret)
			return fail(ret, "cannot unbind %s from %s: %s",
				    pci->name, basename(link), strerror(-ret));
	}
	/* drivers_probe fails if no driver takes the device. */
	write_file("/sys/bus/pci/drivers_probe", pci->name);

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", pci->name);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return fail(ENODEV,
			    "%s is not bound to vfio-pci after drivers_probe (CONFIG_VFIO_PCI?)",
			    pci->name);
	link[n] = '\0';
	if (strcmp(basename(link), "vfio-pci"))
		return fail(EBUSY, "%s is bound to %s, not to vfio-pci",
			    pci->name, basename(link));
	return 0;
}

int vd_bar_resource(const struct vd_pci *pci, unsigned int bar,
		    uint64_t *start, uint64_t *size)
{
	unsigned long long s, e, flags;
	char path[PATH_MAX], buf[1024];
	char *line = buf;
	unsigned int i;
	int ret;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/resource", pci->name);
	ret = read_file(path, buf, sizeof(buf));
	if (ret)
		return fail(ret, "cannot read %s: %s", path, strerror(-ret));
	for (i = 0; i < bar && line; i++) {
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	if (!line || sscanf(line, "%llx %llx %llx", &s, &e, &flags) != 3)
		return fail(EINVAL, "cannot parse BAR %u in %s", bar, path);
	*start = s;
	*size = e > s ? e - s + 1 : 0;
	return 0;
}

bool vd_has_reset_method(const struct vd_pci *pci, const char *method)
{
	char path[PATH_MAX], buf[256], *tok, *save;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/reset_method",
		 pci->name);
	if (read_file(path, buf, sizeof(buf)))
		return false;
	for (tok = strtok_r(buf, "\n ", &save); tok;
	     tok = strtok_r(NULL, "\n ", &save))
		if (!strcmp(tok, method))
			return true;
	return false;
}

/* Whether the bridge with sysfs directory @dir redirects P2P with ACS. */
static bool acs_redirects(const char *dir)
{
	char path[PATH_MAX + 16];
	uint8_t cfg[4096];
	unsigned int pos = 0x100, n = 0;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/config", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	if (len < (ssize_t)sizeof(cfg))
		return false;

	while (pos >= 0x100 && pos < sizeof(cfg) - 8 && n++ < 64) {
		uint32_t hdr;

		memcpy(&hdr, &cfg[pos], sizeof(hdr));
		if (PCI_EXT_CAP_ID(hdr) == PCI_EXT_CAP_ID_ACS) {
			uint16_t ctrl;

			memcpy(&ctrl, &cfg[pos + PCI_ACS_CTRL], sizeof(ctrl));
			return ctrl & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC);
		}
		pos = PCI_EXT_CAP_NEXT(hdr);
	}
	return false;
}

bool vd_acs_redirect_above(const struct vd_pci *pci)
{
	char path[PATH_MAX], real[PATH_MAX], *slash;
	struct vd_pci bridge;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s", pci->name);
	if (!realpath(path, real))
		return false;
	for (;;) {
		slash = strrchr(real, '/');
		if (!slash)
			return false;
		*slash = '\0';
		/* Up to the host bridge, e.g. /sys/devices/pci0000:00. */
		if (!parse_pci_name(basename(real), &bridge))
			return false;
		if (acs_redirects(real))
			return true;
	}
}

int vd_iommu_domain_type(const struct vd_pci *pci, char *buf, size_t len)
{
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/iommu_group/type",
		 pci->name);
	ret = read_file(path, buf, len);
	if (ret)
		return ret;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int vd_vfio_init(struct vd_vfio *vfio, bool cdev)
{
	memset(vfio, 0, sizeof(*vfio));
	vfio->cdev = cdev;
	vfio->iommufd = -1;
	vfio->container = -1;

	if (cdev) {
		struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

		vfio->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
		if (vfio->iommufd < 0)
			return fail(errno, "cannot open /dev/iommu: %s (CONFIG_IOMMUFD)",
				    strerror(errno));
		if (ioctl(vfio->iommufd, IOMMU_IOAS_ALLOC, &alloc))
			return fail(errno, "IOMMU_IOAS_ALLOC: %s",
				    strerror(errno));
		vfio->ioas_id = alloc.out_ioas_id;
		return 0;
	}

	vfio->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (vfio->container < 0)
		return fail(errno, "cannot open /dev/vfio/vfio: %s (CONFIG_VFIO_CONTAINER)",
			    strerror(errno));
	if (ioctl(vfio->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return fail(EINVAL, "unknown VFIO API version");
	if (ioctl(vfio->container, VFIO_CHECK_EXTENSION,
		  VFIO_TYPE1v2_IOMMU) != 1)
		return fail(ENODEV,
			    "the container has no type1v2 IOMMU (CONFIG_VFIO_IOMMU_TYPE1)");
	return 0;
}

void vd_vfio_fini(struct vd_vfio *vfio)
{
	int i;

	for (i = 0; i < vfio->ngroups; i++)
		close(vfio->groups[i].fd);
	vfio->ngroups = 0;
	if (vfio->container >= 0)
		close(vfio->container);
	if (vfio->iommufd >= 0)
		close(vfio->iommufd);
	vfio->container = -1;
	vfio->iommufd = -1;
}

int vd_vfio_group_fd(struct vd_vfio *vfio, const struct vd_pci *pci)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[PATH_MAX], link[PATH_MAX];
	int id, fd, i, ret;
	ssize_t n;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/iommu_group", pci->name);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return fail(ENODEV, "%s has no IOMMU group", pci->name);
	link[n] = '\0';
	id = atoi(basename(link));

	for (i = 0; i < vfio->ngroups; i++)
		if (vfio->groups[i].id == id)
			return vfio->groups[i].fd;
	if (vfio->ngroups == (int)ARRAY_SIZE(vfio->groups))
		return fail(ENOSPC, "too many groups");

	snprintf(path, sizeof(path), "/dev/vfio/%d", id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(errno, "cannot open %s: %s", path, strerror(errno));
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status)) {
		ret = fail(errno, "VFIO_GROUP_GET_STATUS: %s", strerror(errno));
		goto err;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		ret = fail(EBUSY,
			   "IOMMU group %d of %s is not viable: bind all its devices to vfio-pci",
			   id, pci->name);
		goto err;
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &vfio->container)) {
		ret = fail(errno, "VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
		goto err;
	}
	if (!vfio->iommu_set) {
		if (ioctl(vfio->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
			ret = fail(errno,
				   "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): %s",
				   strerror(errno));
			goto err;
		}
		vfio->iommu_set = true;
	}
	vfio->groups[vfio->ngroups].id = id;
	vfio->groups[vfio->ngroups].fd = fd;
	vfio->ngroups++;
	return fd;

err:
	close(fd);
	return ret;
}

static int open_cdev(struct vd_vfio *vfio, struct vd_dev *dev)
{
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = vfio->iommufd,
	};
	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
		.pt_id = vfio->ioas_id,
	};
	char path[PATH_MAX];
	struct dirent *de;
	int ret;
	DIR *d;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/vfio-dev", dev->pci.name);
	d = opendir(path);
	if (!d)
		return fail(errno, "no %s: %s (CONFIG_VFIO_DEVICE_CDEV)", path,
			    strerror(errno));
	path[0] = '\0';
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4))
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s",
				 de->d_name);
	closedir(d);
	if (!path[0])
		return fail(ENODEV, "%s has no vfio cdev", dev->pci.name);

	dev->fd = open(path, O_RDWR | O_CLOEXEC);
	if (dev->fd < 0)
		return fail(errno, "cannot open %s: %s", path, strerror(errno));
	if (ioctl(dev->fd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		ret = fail(errno, "VFIO_DEVICE_BIND_IOMMUFD: %s",
			   strerror(errno));
		goto err;
	}
	dev->devid = bind.out_devid;
	if (ioctl(dev->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach)) {
		ret = fail(errno, "VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s",
			   strerror(errno));
		goto err;
	}
	return 0;

err:
	close(dev->fd);
	dev->fd = -1;
	return ret;
}

int vd_dev_open(struct vd_vfio *vfio, const struct vd_pci *pci,
		struct vd_dev *dev)
{
	unsigned int i;
	int ret;

	memset(dev, 0, sizeof(*dev));
	dev->vfio = vfio;
	dev->pci = *pci;
	dev->fd = -1;
	dev->group_fd = -1;

	ret = vd_bind_vfio(pci);
	if (ret)
		return ret;

	if (vfio->cdev) {
		ret = open_cdev(vfio, dev);
		if (ret)
			return ret;
	} else {
		dev->group_fd = vd_vfio_group_fd(vfio, pci);
		if (dev->group_fd < 0)
			return dev->group_fd;
		dev->fd = ioctl(dev->group_fd, VFIO_GROUP_GET_DEVICE_FD,
				pci->name);
		if (dev->fd < 0)
			return fail(errno, "VFIO_GROUP_GET_DEVICE_FD(%s): %s",
				    pci->name, strerror(errno));
	}

	for (i = 0; i < VFIO_PCI_NUM_REGIONS; i++) {
		struct vfio_region_info info = {
			.argsz = sizeof(info),
			.index = i,
		};

		/* There is no VGA region without VGA. */
		if (ioctl(dev->fd, VFIO_DEVICE_GET_REGION_INFO, &info))
			continue;
		dev->regions[i].size = info.size;
		dev->regions[i].offset = info.offset;
		dev->regions[i].flags = info.flags;
	}
	if (!dev->regions[VFIO_PCI_CONFIG_REGION_INDEX].size) {
		ret = fail(ENODEV, "%s has no config region", pci->name);
		vd_dev_close(dev);
		return ret;
	}

	ret = vd_cmd_update(dev, PCI_COMMAND_MEMORY, 0);
	if (ret) {
		vd_dev_close(dev);
		return fail(ret, "cannot enable memory decode of %s: %s",
			    pci->name, strerror(-ret));
	}
	return 0;
}

void vd_dev_close(struct vd_dev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

static int cfg_rw(struct vd_dev *dev, unsigned int off, void *buf,
		  size_t len, bool write)
{
	const struct vd_region *cfg =
		&dev->regions[VFIO_PCI_CONFIG_REGION_INDEX];
	ssize_t n;

	if (write)
		n = pwrite(dev->fd, buf, len, cfg->offset + off);
	else
		n = pread(dev->fd, buf, len, cfg->offset + off);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vd_cfg_read(struct vd_dev *dev, unsigned int off, void *buf, size_t len)
{
	return cfg_rw(dev, off, buf, len, false);
}

int vd_cfg_write(struct vd_dev *dev, unsigned int off, const void *buf,
		 size_t len)
{
	return cfg_rw(dev, off, (void *)buf, len, true);
}

int vd_cmd_update(struct vd_dev *dev, uint16_t set, uint16_t clear)
{
	uint16_t cmd;
	int ret;

	ret = vd_cfg_read(dev, PCI_COMMAND, &cmd, sizeof(cmd));
	if (ret)
		return ret;
	cmd = (cmd & ~clear) | set;
	return vd_cfg_write(dev, PCI_COMMAND, &cmd, sizeof(cmd));
}

void *vd_region_mmap(struct vd_dev *dev, unsigned int index, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dev->fd,
		    dev->regions[index].offset);
}

int vd_hot_reset(struct vd_dev *dev)
{
	size_t size = sizeof(struct vfio_pci_hot_reset) + sizeof(__s32);
	struct vfio_pci_hot_reset *reset;
	int ret = 0;

	reset = calloc(1, size);
	if (!reset)
		return -ENOMEM;
	/* Through the cdev, an empty list: iommufd proves the ownership. */
	if (dev->vfio->cdev) {
		reset->argsz = sizeof(*reset);
	} else {
		reset->argsz = size;
		reset->count = 1;
		reset->group_fds[0] = dev->group_fd;
	}
	if (ioctl(dev->fd, VFIO_DEVICE_PCI_HOT_RESET, reset))
		ret = -errno;
	free(reset);
	return ret;
}

int vd_feature_set(struct vd_dev *dev, __u32 feature)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_SET | feature,
	};

	return ioctl(dev->fd, VFIO_DEVICE_FEATURE, &f) ? -errno : 0;
}

int vd_feature_ioctl(int devfd, void *buf)
{
	int ret = ioctl(devfd, VFIO_DEVICE_FEATURE, buf);

	return ret < 0 ? -errno : ret;
}

int vd_export(int devfd, __u32 region, const struct vfio_region_dma_range *r,
	      __u32 nr, __u32 open_flags)
{
	struct vfio_device_feature_dma_buf *get;
	struct vfio_device_feature *feature;
	size_t size;
	int ret;

	size = sizeof(*feature) + sizeof(*get) + (size_t)nr * sizeof(*r);
	feature = calloc(1, size);
	if (!feature)
		return -ENOMEM;
	feature->argsz = size;
	feature->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF;
	get = (void *)feature->data;
	get->region_index = region;
	get->open_flags = open_flags;
	get->nr_ranges = nr;
	if (nr)
		memcpy(get->dma_ranges, r, nr * sizeof(*r));
	ret = vd_feature_ioctl(devfd, feature);
	free(feature);
	return ret;
}

int vd_count_fds(void)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	/* Not the one of the directory stream. */
	return n - 1;
}

static char found_module[PATH_MAX];

static int find_module_cb(const char *path, const struct stat *st, int type,
			  struct FTW *ftw)
{
	static const char * const exts[] = { ".ko", ".ko.xz", ".ko.zst",
					     ".ko.gz" };
	const char *base = path + ftw->base;
	size_t len = strlen(IMPORTER_NAME);
	unsigned int i;

	if (type != FTW_F || strncmp(base, IMPORTER_NAME, len))
		return 0;
	for (i = 0; i < ARRAY_SIZE(exts); i++) {
		if (!strcmp(base + len, exts[i])) {
			snprintf(found_module, sizeof(found_module), "%s",
				 path);
			return 1;
		}
	}
	return 0;
}

static int load_importer(void)
{
	const char *path = getenv(IMPORTER_MODULE_ENV);
	struct utsname uts;
	char dir[PATH_MAX];
	int fd, flags = 0, ret;

	found_module[0] = '\0';
	if (path) {
		snprintf(found_module, sizeof(found_module), "%s", path);
	} else if (!uname(&uts)) {
		snprintf(dir, sizeof(dir), "/lib/modules/%s", uts.release);
		nftw(dir, find_module_cb, 16, FTW_PHYS);
	}
	if (!found_module[0])
		return fail(ENOENT,
			    "no %s.ko in /lib/modules/$(uname -r) (CONFIG_TEST_DMABUF_IMPORTER=m), set $%s",
			    IMPORTER_NAME, IMPORTER_MODULE_ENV);
	if (!strstr(found_module, ".ko") ||
	    strcmp(strstr(found_module, ".ko"), ".ko"))
		flags = MODULE_INIT_COMPRESSED_FILE;

	fd = open(found_module, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(errno, "cannot open %s: %s", found_module,
			    strerror(errno));
	ret = syscall(__NR_finit_module, fd, "", flags) ? -errno : 0;
	close(fd);
	if (ret && ret != -EEXIST)
		return fail(ret, "finit_module(%s): %s", found_module,
			    strerror(-ret));
	return 0;
}

int vd_importer_open(void)
{
	int fd, i, ret;

	if (access(IMPORTER_DEV, F_OK)) {
		ret = load_importer();
		if (ret)
			return ret;
	}
	/* devtmpfs creates the node synchronously, but udev may recreate it. */
	for (i = 0; i < 100; i++) {
		fd = open(IMPORTER_DEV, O_RDWR | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			break;
		usleep(10000);
	}
	if (fd < 0)
		return fail(errno, "cannot open %s: %s", IMPORTER_DEV,
			    strerror(errno));
	return fd;
}

int vd_importer_refcnt(void)
{
	char buf[32];
	int ret;

	ret = read_file("/sys/module/" IMPORTER_NAME "/refcnt", buf,
			sizeof(buf));
	return ret ? ret : atoi(buf);
}

int imp_attach(int fd, int dmabuf_fd, const struct vd_pci *pci, __u32 flags,
	       __u32 *id)
{
	struct test_dmabuf_importer_attach arg = {
		.dmabuf_fd = dmabuf_fd,
		.flags = flags,
		.pci_domain = pci->domain,
		.pci_bus = pci->bus,
		.pci_devfn = pci->devfn,
	};

	if (ioctl(fd, TEST_DMABUF_IMPORTER_ATTACH, &arg))
		return -errno;
	*id = arg.id;
	return 0;
}

int imp_map(int fd, __u32 id, struct test_dmabuf_importer_dma_range *entries,
	    __u32 max_entries, struct test_dmabuf_importer_map *out)
{
	struct test_dmabuf_importer_map arg = {
		.id = id,
		.max_entries = max_entries,
		.entries = (uintptr_t)entries,
	};

	if (ioctl(fd, TEST_DMABUF_IMPORTER_MAP, &arg))
		return -errno;
	if (out)
		*out = arg;
	return 0;
}

static int imp_id_ioctl(int fd, unsigned long cmd, __u32 id)
{
	struct test_dmabuf_importer_id arg = { .id = id };

	return ioctl(fd, cmd, &arg) ? -errno : 0;
}

int imp_unmap(int fd, __u32 id)
{
	return imp_id_ioctl(fd, TEST_DMABUF_IMPORTER_UNMAP, id);
}

int imp_detach(int fd, __u32 id)
{
	return imp_id_ioctl(fd, TEST_DMABUF_IMPORTER_DETACH, id);
}

int imp_pin(int fd, __u32 id)
{
	return imp_id_ioctl(fd, TEST_DMABUF_IMPORTER_PIN, id);
}

int imp_info(int fd, __u32 id, struct test_dmabuf_importer_info *info)
{
	memset(info, 0, sizeof(*info));
	info->id = id;
	return ioctl(fd, TEST_DMABUF_IMPORTER_INFO, info) ? -errno : 0;
}

int imp_bench(int fd, __u32 id, __u32 iterations,
	      struct test_dmabuf_importer_bench *bench)
{
	memset(bench, 0, sizeof(*bench));
	bench->id = id;
	bench->iterations = iterations;
	return ioctl(fd, TEST_DMABUF_IMPORTER_BENCH, bench) ? -errno : 0;
}

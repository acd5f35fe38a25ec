// SPDX-License-Identifier: GPL-2.0
/*
 * Memory failure handling of PFNs without struct page.
 *
 * The test module lib/test_pfn_poison.c maps RAM that the kernel was told to
 * leave alone with memmap=SIZE$ADDR, and therefore has no struct page, into
 * user space with VM_PFNMAP, like drivers map device memory, and registers it
 * with register_pfn_address_space(). Poison is injected by writing physical
 * addresses to /sys/devices/system/memory/hard_offline_page (an error
 * report) or through the module's TEST_PFN_POISON_CONSUME (a task that
 * consumed the poison, as the machine check handler reports it), and the
 * tests check the signals memory_failure() sends to the processes that map
 * the poisoned PFN, and that nothing else changes. Where an injector outside
 * the machine is available ($PFN_POISON_MCE_INJECT, see mce_inject()), the
 * errors also come as machine checks, through the architecture's handler.
 *
 * Needs root and a kernel booted with memmap=SIZE$ADDR, e.g.
 * memmap=256M$0x70000000 for a guest with 2 GiB of RAM. The range should be
 * aligned to memory sections (128 MiB on x86_64), otherwise its PFNs may have
 * a struct page, which the module refuses. The test loads test_pfn_poison.ko
 * itself with the first half of that range (the module found under
 * /lib/modules/$(uname -r), or the one $PFN_POISON_MODULE names) and leaves
 * the second half unregistered.
 *
 * "pfn_poison_test --bench" measures the cost of an injection instead of
 * running the tests.
 */

#include "../kselftest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>

/*
 * This is a private UAPI to the kernel test module so it isn't exported
 * in the usual include/uapi/... directory.
 */
#include <lib/test_pfn_poison_uapi.h>

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE	4
#endif

#define MODULE_NAME		"test_pfn_poison"
#define DEVICE_PATH		"/dev/" MODULE_NAME
#define DEVICE_ALT_PATH		"/dev/" MODULE_NAME "_alt"
#define DEVICE_DEV_PATH		"/sys/class/misc/" MODULE_NAME "/dev"
#define HARD_OFFLINE_PAGE	"/sys/devices/system/memory/hard_offline_page"
#define THP_ENABLED		"/sys/kernel/mm/transparent_hugepage/enabled"
#define THP_PMD_SIZE		"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"

static const char no_memmap_msg[] =
	"no memmap=SIZE$ADDR on the kernel command line, e.g. memmap=256M$0x70000000";
static const char no_module_msg[] =
	"no " MODULE_NAME ".ko in /lib/modules/$(uname -r), set $PFN_POISON_MODULE";

/* How long to wait for a signal that must not come. */
#define NO_SIGNAL_MS		200
/* How long to wait for a signal that must come (it is sent synchronously). */
#define SIGNAL_MS		5000

struct pfn_poison_env {
	/* The range hidden with memmap=SIZE$ADDR. */
	unsigned long long hidden_phys;
	unsigned long long hidden_size;
	/* Its first half, registered by the module. */
	unsigned long long phys;
	unsigned long long size;
	unsigned long page_size;
	int page_shift;
	unsigned long pmd_size;
	char module[PATH_MAX];
	int module_flags;
};

/* Parse a size or an address as the kernel's memparse() does. */
static bool parse_memsize(const char *s, char **end, unsigned long long *val)
{
	static const char suffixes[] = "KMGTPE";
	unsigned long long v;
	const char *suffix;
	char *e;

	errno = 0;
	v = strtoull(s, &e, 0);
	if (errno || e == s)
		return false;
	suffix = *e ? strchr(suffixes, *e & ~0x20) : NULL;
	if (suffix) {
		v <<= 10 * (suffix - suffixes + 1);
		e++;
	}
	*val = v;
	*end = e;
	return true;
}

/* Find the first memmap=SIZE$ADDR on the kernel command line. */
static bool find_memmap(struct pfn_poison_env *env)
{
	char buf[4096], *tok, *save;
	ssize_t len;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';

	for (tok = strtok_r(buf, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		char *entry, *esave, *end;

		if (strncmp(tok, "memmap=", strlen("memmap=")))
			continue;
		/* memmap= takes a list of comma separated entries. */
		for (entry = strtok_r(tok + strlen("memmap="), ",", &esave);
		     entry; entry = strtok_r(NULL, ",", &esave)) {
			unsigned long long size, addr;

			if (!parse_memsize(entry, &end, &size) || *end != '$')
				continue;
			if (!parse_memsize(end + 1, &end, &addr) || *end)
				continue;
			env->hidden_size = size;
			env->hidden_phys = addr;
			return true;
		}
	}
	return false;
}

static char found_module[PATH_MAX];
static int found_module_flags;

static int find_module_cb(const char *path, const struct stat *st, int type,
			  struct FTW *ftw)
{
	static const char * const exts[] = { ".ko", ".ko.xz", ".ko.zst", ".ko.gz" };
	const char *base = path + ftw->base;
	unsigned int i;

	if (type != FTW_F || strncmp(base, MODULE_NAME, strlen(MODULE_NAME)))
		return 0;
	for (i = 0; i < ARRAY_SIZE(exts); i++) {
		if (strcmp(base + strlen(MODULE_NAME), exts[i]))
			continue;
		snprintf(found_module, sizeof(found_module), "%s", path);
		found_module_flags = i ? MODULE_INIT_COMPRESSED_FILE : 0;
		return 1;
	}
	return 0;
}

static bool find_module(struct pfn_poison_env *env)
{
	const char *path = getenv("PFN_POISON_MODULE");
	char dir[PATH_MAX];
	struct utsname uts;

	found_module[0] = '\0';
	found_module_flags = 0;
	if (path) {
		snprintf(found_module, sizeof(found_module), "%s", path);
	} else {
		if (uname(&uts))
			return false;
		snprintf(dir, sizeof(dir), "/lib/modules/%s/kernel/lib/%s.ko",
			 uts.release, MODULE_NAME);
		if (!access(dir, R_OK)) {
			snprintf(found_module, sizeof(found_module), "%s", dir);
		} else {
			snprintf(dir, sizeof(dir), "/lib/modules/%s", uts.release);
			nftw(dir, find_module_cb, 16, FTW_PHYS);
		}
	}
	if (!found_module[0])
		return false;
	snprintf(env->module, sizeof(env->module), "%s", found_module);
	env->module_flags = found_module_flags;
	return true;
}

static unsigned long read_ulong(const char *path, unsigned long dflt)
{
	char buf[32];
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dflt;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return dflt;
	buf[len] = '\0';
	return strtoul(buf, NULL, 0);
}

/*
 * Find out what to test with. Returns NULL or why the test cannot run, the
 * latter being a failure: the kselftest config and the test setup ask for all
 * of this.
 */
static const char *env_init(struct pfn_poison_env *env)
{
	static char msg[256];

	memset(env, 0, sizeof(*env));
	env->page_size = sysconf(_SC_PAGESIZE);
	env->page_shift = __builtin_ctzl(env->page_size);
	env->pmd_size = read_ulong(THP_PMD_SIZE, 2UL << 20);

	if (!find_memmap(env))
		return no_memmap_msg;
	env->phys = env->hidden_phys;
	env->size = env->hidden_size / 2;
	if (!env->size || env->phys % env->pmd_size ||
	    env->size % env->pmd_size || env->size < 4 * env->pmd_size) {
		snprintf(msg, sizeof(msg),
			 "memmap=0x%llx$0x%llx: need a range aligned to %lu bytes and at least 8 times as large",
			 env->hidden_size, env->hidden_phys, env->pmd_size);
		return msg;
	}
	if (!find_module(env))
		return no_module_msg;
	if (access(HARD_OFFLINE_PAGE, W_OK))
		return "no " HARD_OFFLINE_PAGE " (CONFIG_MEMORY_HOTPLUG and CONFIG_MEMORY_FAILURE)";
	return NULL;
}

static int load_module(const struct pfn_poison_env *env)
{
	char params[64];
	int fd, ret;

	fd = open(env->module, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(params, sizeof(params), "phys=0x%llx size=0x%llx", env->phys,
		 env->size);
	ret = syscall(__NR_finit_module, fd, params, env->module_flags);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static int unload_module(void)
{
	return syscall(__NR_delete_module, MODULE_NAME, O_NONBLOCK) ? -errno : 0;
}

static int open_device(void)
{
	int fd, i;

	/* devtmpfs creates the node synchronously, but udev may recreate it. */
	for (i = 0; i < 100; i++) {
		fd = open(DEVICE_PATH, O_RDWR | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			break;
		usleep(10000);
	}
	return fd;
}

/*
 * Write @phys to hard_offline_page, which runs memory_failure() on its PFN.
 * Returns 0 if the whole write succeeded, a negative errno otherwise.
 */
static int inject(unsigned long long phys)
{
	char buf[32];
	int fd, len, ret = 0;
	ssize_t written;

	fd = open(HARD_OFFLINE_PAGE, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "0x%llx\n", phys);
	written = write(fd, buf, len);
	if (written < 0)
		ret = -errno;
	else if (written != len)
		ret = -EIO;
	close(fd);
	return ret;
}

/*
 * Report that this task consumed the poison at @phys, as the machine check or
 * SEA handler of the architecture does for an access: memory_failure() with
 * MF_ACTION_REQUIRED from this task, through the test module's @fd. Returns 0
 * or a negative errno.
 */
static int consume(int fd, unsigned long long phys)
{
	__u64 arg = phys;

	return ioctl(fd, TEST_PFN_POISON_CONSUME, &arg) ? -errno : 0;
}

/* The HardwareCorrupted line of /proc/meminfo in kB, or -1. */
static long hardware_corrupted_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HardwareCorrupted: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static bool thp_enabled(void)
{
	char buf[128];
	ssize_t len;
	int fd;

	fd = open(THP_ENABLED, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';
	return !strstr(buf, "[never]");
}

static int pfn_ioctl(int fd, unsigned long cmd, unsigned long long first,
		     unsigned long long last, unsigned int flags)
{
	struct test_pfn_poison_range range = {
		.first_pfn = first,
		.last_pfn = last,
		.flags = flags,
	};

	return ioctl(fd, cmd, &range) ? -errno : 0;
}

static int register_pfns(int fd, unsigned long long first,
			 unsigned long long last, unsigned int flags)
{
	return pfn_ioctl(fd, TEST_PFN_POISON_REGISTER, first, last, flags);
}

static int unregister_pfns(int fd, unsigned long long first,
			   unsigned long long last)
{
	return pfn_ioctl(fd, TEST_PFN_POISON_UNREGISTER, first, last, 0);
}

/*
 * Map @len bytes at @offset of @fd, aligned to @align in the address space,
 * so that the PMD window can be mapped with PMD entries.
 */
static char *mmap_aligned(int fd, off_t offset, size_t len, size_t align)
{
	size_t resv = len + align;
	char *area, *p;

	area = mmap(NULL, resv, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED)
		return MAP_FAILED;
	p = (char *)(((uintptr_t)area + align - 1) & ~(uintptr_t)(align - 1));
	if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
		 offset) == MAP_FAILED) {
		int err = errno;

		munmap(area, resv);
		errno = err;
		return MAP_FAILED;
	}
	if (p > area)
		munmap(area, p - area);
	if (area + resv > p + len)
		munmap(p + len, area + resv - (p + len));
	return p;
}

/*
 * What the SIGBUS handler saw of the memory error signals (BUS_MCEERR_AR and
 * BUS_MCEERR_AO) delivered to this process.
 */
static volatile sig_atomic_t mce_count;
static volatile sig_atomic_t mce_code;
static volatile sig_atomic_t mce_lsb;
static void *volatile mce_addr;
/* The thread that received the last one. */
static volatile pid_t mce_tid;

/* Set while access_pages() runs, to recover from an unmapped page. */
static sigjmp_buf access_jmp;
static volatile sig_atomic_t access_jmp_armed;

static void sigbus_handler(int sig, siginfo_t *si, void *ucontext)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	if (si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO) {
		mce_count++;
		mce_code = si->si_code;
		mce_lsb = si->si_addr_lsb;
		mce_addr = si->si_addr;
		mce_tid = syscall(SYS_gettid);
		return;
	}

	/* Any other SIGBUS is an access to a page that is not mapped. */
	if (access_jmp_armed)
		siglongjmp(access_jmp, 1);
	/* Unexpected: die from it when the access is retried. */
	sigaction(SIGBUS, &dfl, NULL);
}

static int install_sigbus_handler(void)
{
	struct sigaction sa = {
		.sa_sigaction = sigbus_handler,
		.sa_flags = SA_SIGINFO,
	};

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL);
}

static void reset_mce(void)
{
	mce_count = 0;
	mce_code = 0;
	mce_lsb = 0;
	mce_addr = NULL;
	mce_tid = 0;
}

static uint64_t pattern(uint64_t seed, size_t page)
{
	return seed << 32 | page;
}

/*
 * Write a pattern derived from @seed to the first word of each page of
 * [p, p + len), or check that it is there. Returns the number of pages with
 * another value, or -1 if an access raised SIGBUS: the page is not mapped
 * and the mapping has no fault handler to map it again.
 */
static long access_pages(char *p, size_t len, size_t page_size, uint64_t seed,
			 bool write)
{
	long bad = 0;
	size_t i;

	if (sigsetjmp(access_jmp, 1)) {
		access_jmp_armed = 0;
		return -1;
	}
	access_jmp_armed = 1;
	for (i = 0; i < len / page_size; i++) {
		volatile uint64_t *word = (uint64_t *)(p + i * page_size);

		if (write)
			*word = pattern(seed, i);
		else if (*word != pattern(seed, i))
			bad++;
	}
	access_jmp_armed = 0;
	return bad;
}

/* A child process that reports the SIGBUS it gets. */
struct mce_child {
	pid_t pid;
	int to_child;
	int from_child;
	/* The address of the child's own mapping, if it made one. */
	uint64_t map;
};

struct mce_report {
	/* errno of a failed setup step in the child, or 0. */
	int err;
	/* Number of SIGBUS received. */
	int nsig;
	/* The first one. */
	int code;
	int lsb;
	uint64_t addr;
};

static void __noreturn
mce_child_run(int in, int out, int policy, int fd, off_t offset, size_t len,
	      int wait_ms)
{
	struct timespec ts = {
		.tv_sec = wait_ms / 1000,
		.tv_nsec = (wait_ms % 1000) * 1000000L,
	};
	struct timespec now = { 0 };
	struct mce_report report = { 0 };
	uint64_t map = 0;
	siginfo_t si;
	sigset_t set;
	char go;

	if (fd >= 0) {
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, offset);

		if (p == MAP_FAILED)
			report.err = errno;
		else
			map = (uintptr_t)p;
	}
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, policy, 0, 0))
		report.err = errno;
	/* Keep SIGBUS pending to collect it with sigtimedwait(). */
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		report.err = errno;

	if (write(out, &map, sizeof(map)) != sizeof(map))
		_exit(1);
	/* Wait for the injection; EOF if the parent died. */
	if (read(in, &go, 1) != 1)
		_exit(1);

	if (sigtimedwait(&set, &si, &ts) == SIGBUS) {
		report.nsig = 1;
		report.code = si.si_code;
		report.lsb = si.si_addr_lsb;
		report.addr = (uintptr_t)si.si_addr;
		if (sigtimedwait(&set, &si, &now) == SIGBUS)
			report.nsig++;
	}

	if (write(out, &report, sizeof(report)) != sizeof(report))
		_exit(1);
	_exit(0);
}

/*
 * Fork a child that sets its machine check kill @policy (PR_MCE_KILL_EARLY
 * or PR_MCE_KILL_LATE), blocks SIGBUS, and once mce_child_finish() tells it
 * that the poison was injected, waits up to @wait_ms for a SIGBUS. The child
 * inherits the mappings of the caller; if @fd >= 0, it also maps @len bytes at
 * @offset of @fd itself. Returns 0 or a negative errno.
 */
static int mce_child_start(struct mce_child *child, int policy, int fd,
			   off_t offset, size_t len, int wait_ms)
{
	int to_child[2], from_child[2];

	if (pipe2(to_child, O_CLOEXEC))
		return -errno;
	if (pipe2(from_child, O_CLOEXEC)) {
		close(to_child[0]);
		close(to_child[1]);
		return -errno;
	}

	child->pid = fork();
	if (child->pid < 0) {
		int err = -errno;

		close(to_child[0]);
		close(to_child[1]);
		close(from_child[0]);
		close(from_child[1]);
		return err;
	}
	if (!child->pid) {
		close(to_child[1]);
		close(from_child[0]);
		mce_child_run(to_child[0], from_child[1], policy, fd, offset,
			      len, wait_ms);
	}

	close(to_child[0]);
	close(from_child[1]);
	child->to_child = to_child[1];
	child->from_child = from_child[0];
	if (read(child->from_child, &child->map, sizeof(child->map)) !=
	    sizeof(child->map))
		return -EPIPE;
	return 0;
}

/*
 * Tell the child that the poison was injected and collect its report and
 * exit status. Returns 0 or a negative errno.
 */
static int mce_child_finish(struct mce_child *child, struct mce_report *report,
			    int *status)
{
	ssize_t len = -1;
	char go = 'g';

	if (write(child->to_child, &go, 1) == 1)
		len = read(child->from_child, report, sizeof(*report));
	close(child->to_child);
	close(child->from_child);
	if (waitpid(child->pid, status, 0) != child->pid)
		return -errno;
	return len == sizeof(*report) ? 0 : -EPIPE;
}

/* State common to the fixtures: the loaded module and an open device. */
struct pfn_poison_ctx {
	struct pfn_poison_env env;
	int fd;
	struct test_pfn_poison_info info;
	unsigned long long base_pfn;
	unsigned long long last_pfn;
	/* The first PFN of the second, unregistered, half of the range. */
	unsigned long long unreg_pfn;
	/* The last PFN of the hidden range. */
	unsigned long long unreg_last_pfn;
};

static bool ctx_setup(struct __test_metadata *_metadata,
		      struct pfn_poison_ctx *ctx)
{
	struct pfn_poison_env *env = &ctx->env;
	const char *err;
	int ret;

	ctx->fd = -1;
	if (geteuid())
		SKIP(return false, "must be run as root");

	/* What the tests need is missing: skip, as kselftests do. */
	err = env_init(env);
	if (err)
		SKIP(return false, "%s", err);

	/* A previous run may have left the module loaded. */
	ret = unload_module();
	ASSERT_TRUE(!ret || ret == -ENOENT)
		TH_LOG("cannot unload a loaded %s: %s", MODULE_NAME,
		       strerror(-ret));
	ret = load_module(env);
	ASSERT_EQ(0, ret)
		TH_LOG("finit_module(%s, \"phys=0x%llx size=0x%llx\"): %s",
		       env->module, env->phys, env->size, strerror(-ret));

	ctx->fd = open_device();
	ASSERT_LE(0, ctx->fd)
		TH_LOG("cannot open %s: %s", DEVICE_PATH, strerror(errno));
	ASSERT_EQ(0, ioctl(ctx->fd, TEST_PFN_POISON_INFO, &ctx->info))
		TH_LOG("TEST_PFN_POISON_INFO: %s", strerror(errno));
	ASSERT_EQ(env->phys, ctx->info.phys);
	ASSERT_EQ(env->size, ctx->info.size);
	ASSERT_EQ(env->size / env->page_size, ctx->info.npages);
	ASSERT_EQ(0, ctx->info.extra_registered);
	ASSERT_EQ(0, ctx->info.pmd_faults);
	ASSERT_EQ(0, ctx->info.pte_faults);

	ctx->base_pfn = env->phys / env->page_size;
	ctx->last_pfn = ctx->base_pfn + ctx->info.npages - 1;
	ctx->unreg_pfn = ctx->last_pfn + 1;
	ctx->unreg_last_pfn =
		(env->hidden_phys + env->hidden_size) / env->page_size - 1;

	ASSERT_EQ(0, install_sigbus_handler());
	reset_mce();
	return true;
}

static void ctx_teardown(struct __test_metadata *_metadata)
{
	int i, ret;

	/*
	 * This runs in the parent of the test process once it has exited, so
	 * the files and mappings of the device are gone, unless a child of the
	 * test still holds them: give it a moment.
	 */
	for (i = 0; i < 50; i++) {
		ret = unload_module();
		if (ret != -EWOULDBLOCK)
			break;
		usleep(100000);
	}
	EXPECT_TRUE(!ret || ret == -ENOENT)
		TH_LOG("cannot unload %s: %s", MODULE_NAME, strerror(-ret));
}

static int get_info(struct pfn_poison_ctx *ctx,
		    struct test_pfn_poison_info *info)
{
	return ioctl(ctx->fd, TEST_PFN_POISON_INFO, info) ? -errno : 0;
}

/* The physical address of the PFN at @offset of the registered range. */
static unsigned long long phys_at(struct pfn_poison_ctx *ctx, size_t offset)
{
	return ctx->env.phys + offset;
}

/* The file offset of the PMD window. */
static off_t pmd_window(struct pfn_poison_ctx *ctx)
{
	return ctx->info.npages * ctx->env.page_size;
}

/*
 * Fixture with the first two PMDs of a window mapped and populated: the
 * mapping is PMD aligned, so that the PMD window is mapped with PMD entries.
 */
FIXTURE(mapped)
{
	struct pfn_poison_ctx ctx;
	char *map;
	size_t len;
	/* Offset of the page to poison: in the middle of the second PMD. */
	size_t off;
	/* The PMD window is expected to be mapped with PMD entries. */
	bool pmd;
	/* The fault counters before and after populating the mapping. */
	struct test_pfn_poison_info before;
	struct test_pfn_poison_info after;
};

FIXTURE_VARIANT(mapped)
{
	bool pmd_window;
};

FIXTURE_VARIANT_ADD(mapped, window_4k)
{
	.pmd_window = false,
};

FIXTURE_VARIANT_ADD(mapped, window_pmd)
{
	.pmd_window = true,
};

FIXTURE_SETUP(mapped)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t pmd_size;

	if (!ctx_setup(_metadata, ctx))
		return;
	pmd_size = ctx->env.pmd_size;

	self->len = 2 * pmd_size;
	self->off = pmd_size + pmd_size / 2;
	self->pmd = variant->pmd_window &&
		    (ctx->info.flags & TEST_PFN_POISON_INFO_PMD) &&
		    thp_enabled();

	ASSERT_EQ(0, get_info(ctx, &self->before));
	self->map = mmap_aligned(ctx->fd,
				 variant->pmd_window ? pmd_window(ctx) : 0,
				 self->len, pmd_size);
	ASSERT_NE(MAP_FAILED, self->map)
		TH_LOG("mmap: %s", strerror(errno));
	ASSERT_EQ(0, access_pages(self->map, self->len, ctx->env.page_size,
				  1, true));
	ASSERT_EQ(0, get_info(ctx, &self->after));
	ASSERT_EQ(0, mce_count);
}

FIXTURE_TEARDOWN_PARENT(mapped)
{
	ctx_teardown(_metadata);
}

/* The faults that populated the mapping. */
TEST_F(mapped, fault_in)
{
	unsigned long long pmds = self->after.pmd_faults - self->before.pmd_faults;
	unsigned long long ptes = self->after.pte_faults - self->before.pte_faults;

	if (!variant->pmd_window) {
		/* remap_pfn_range() populated the 4K window at mmap() time. */
		EXPECT_EQ(0, pmds);
		EXPECT_EQ(0, ptes);
	} else if (self->pmd) {
		EXPECT_EQ(self->len / self->ctx.env.pmd_size, pmds);
		EXPECT_EQ(0, ptes);
	} else {
		/* No PMD sized PFN maps on this architecture or without THP. */
		ksft_print_msg("the PMD window is mapped with PTEs only\n");
		EXPECT_EQ(0, pmds);
		EXPECT_EQ(self->len / self->ctx.env.page_size, ptes);
	}
}

/*
 * The task that consumed the poison maps it: it gets an action required
 * SIGBUS, with the address of the page and PAGE_SHIFT as its lsb, on return
 * from the report, which succeeds.
 */
TEST_F(mapped, action_required)
{
	int ret;

	ret = consume(self->ctx.fd, phys_at(&self->ctx, self->off));
	ASSERT_EQ(0, ret)
		TH_LOG("injection failed: %s", strerror(-ret));
	ASSERT_EQ(1, mce_count)
		TH_LOG("expected exactly one SIGBUS");
	EXPECT_EQ(BUS_MCEERR_AR, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);
	EXPECT_EQ(self->ctx.env.page_shift, mce_lsb);
}

/*
 * Nothing is unmapped: the mapping keeps its contents, all of it can be read
 * and written, including the poisoned page (which is fine RAM), and that
 * without a single new fault.
 */
TEST_F(mapped, no_unmap)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	struct test_pfn_poison_info info;

	ASSERT_EQ(0, consume(ctx->fd, phys_at(ctx, self->off)));
	ASSERT_EQ(1, mce_count);

	/* All pages, the poisoned one included, still hold what was written. */
	ASSERT_EQ(0, access_pages(self->map, self->len, page_size, 1, false))
		TH_LOG("the mapping lost pages or contents");
	/* And can be written and read again. */
	ASSERT_EQ(0, access_pages(self->map, self->len, page_size, 2, true));
	ASSERT_EQ(0, access_pages(self->map, self->len, page_size, 2, false));

	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(self->after.pmd_faults, info.pmd_faults)
		TH_LOG("PMD entries were zapped");
	EXPECT_EQ(self->after.pte_faults, info.pte_faults)
		TH_LOG("PTEs were zapped");
	EXPECT_EQ(1, mce_count);
}

/*
 * Another process that maps the PFN and asked for early kill gets an action
 * optional SIGBUS right away, with its address of the page; the consuming one
 * still gets its action required SIGBUS.
 */
TEST_F(mapped, early_kill)
{
	struct mce_report report;
	struct mce_child child;
	int ret, status;

	ret = mce_child_start(&child, PR_MCE_KILL_EARLY, -1, 0, 0, SIGNAL_MS);
	ASSERT_EQ(0, ret)
		TH_LOG("cannot start the child: %s", strerror(-ret));
	ret = consume(self->ctx.fd, phys_at(&self->ctx, self->off));
	ASSERT_EQ(0, mce_child_finish(&child, &report, &status));
	ASSERT_EQ(0, ret);

	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child died: status %#x", status);
	ASSERT_EQ(0, report.err)
		TH_LOG("child setup: %s", strerror(report.err));
	ASSERT_EQ(1, report.nsig)
		TH_LOG("the early kill child got no or more than one SIGBUS");
	EXPECT_EQ(BUS_MCEERR_AO, report.code);
	EXPECT_EQ((uintptr_t)(self->map + self->off), report.addr);
	EXPECT_EQ(self->ctx.env.page_shift, report.lsb);

	ASSERT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AR, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);
	EXPECT_EQ(self->ctx.env.page_shift, mce_lsb);
}

/*
 * A process that maps the PFN and asked for late kill is not told: it gets a
 * signal only once it consumes the poison. It is not killed either.
 */
TEST_F(mapped, late_kill)
{
	struct mce_report report;
	struct mce_child child;
	int ret, status;

	ret = mce_child_start(&child, PR_MCE_KILL_LATE, -1, 0, 0, NO_SIGNAL_MS);
	ASSERT_EQ(0, ret)
		TH_LOG("cannot start the child: %s", strerror(-ret));
	ret = consume(self->ctx.fd, phys_at(&self->ctx, self->off));
	ASSERT_EQ(0, mce_child_finish(&child, &report, &status));
	ASSERT_EQ(0, ret);

	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child died: status %#x", status);
	ASSERT_EQ(0, report.err)
		TH_LOG("child setup: %s", strerror(report.err));
	EXPECT_EQ(0, report.nsig)
		TH_LOG("the late kill child got a SIGBUS with code %d",
		       report.code);

	ASSERT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AR, mce_code);
}

/*
 * Reporting an error (hard_offline_page) is not consuming it: the writer,
 * which maps the PFN, is a process like any other. With late kill it is not
 * told, as the poison is still where it was.
 */
TEST_F(mapped, report_late_kill)
{
	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0));
	ASSERT_EQ(0, inject(phys_at(&self->ctx, self->off)));
	usleep(NO_SIGNAL_MS * 1000);
	EXPECT_EQ(0, mce_count)
		TH_LOG("the writer got a SIGBUS with code %d", mce_code);
}

/* With early kill it gets an action optional SIGBUS, not an action required. */
TEST_F(mapped, report_early_kill)
{
	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	ASSERT_EQ(0, inject(phys_at(&self->ctx, self->off)));
	ASSERT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AO, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);
	EXPECT_EQ(self->ctx.env.page_shift, mce_lsb);
}

/*
 * More processes asked for early kill than the kill list's pool holds at
 * first (four entries): the pool grows and the walk is redone, and each
 * one gets exactly one action optional SIGBUS with its address.
 */
#define EARLY_KILL_MANY		10

TEST_F(mapped, early_kill_many)
{
	struct mce_child child[EARLY_KILL_MANY];
	struct mce_report report;
	int i, ret, status;

	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0));
	for (i = 0; i < EARLY_KILL_MANY; i++) {
		ret = mce_child_start(&child[i], PR_MCE_KILL_EARLY, -1, 0, 0,
				      SIGNAL_MS);
		ASSERT_EQ(0, ret)
			TH_LOG("cannot start child %d: %s", i, strerror(-ret));
	}
	ret = inject(phys_at(&self->ctx, self->off));
	for (i = 0; i < EARLY_KILL_MANY; i++) {
		ASSERT_EQ(0, mce_child_finish(&child[i], &report, &status));
		ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("child %d died: status %#x", i, status);
		ASSERT_EQ(0, report.err);
		EXPECT_EQ(1, report.nsig)
			TH_LOG("child %d got %d SIGBUS", i, report.nsig);
		EXPECT_EQ(BUS_MCEERR_AO, report.code);
		EXPECT_EQ((uintptr_t)(self->map + self->off), report.addr);
		EXPECT_EQ(self->ctx.env.page_shift, report.lsb);
	}
	ASSERT_EQ(0, ret);
	EXPECT_EQ(0, mce_count);
}

#define EARLY_KILL_SYSCTL	"/proc/sys/vm/memory_failure_early_kill"

static int write_early_kill_sysctl(char value)
{
	int fd, ret = 0;

	fd = open(EARLY_KILL_SYSCTL, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, &value, 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * A process that did not choose a policy with PR_MCE_KILL follows
 * vm.memory_failure_early_kill: early kill when it is 1.
 */
TEST_F(mapped, report_early_kill_sysctl)
{
	char old = '0';
	int fd, ret;

	fd = open(EARLY_KILL_SYSCTL, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, read(fd, &old, 1));
	close(fd);
	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 0, 0, 0));

	ASSERT_EQ(0, write_early_kill_sysctl('1'));
	ret = inject(phys_at(&self->ctx, self->off));
	ASSERT_EQ(0, write_early_kill_sysctl(old));
	ASSERT_EQ(0, ret);
	ASSERT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AO, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);

	/* And late kill when it is 0. */
	reset_mce();
	ASSERT_EQ(0, write_early_kill_sysctl('0'));
	ret = inject(phys_at(&self->ctx, self->off));
	ASSERT_EQ(0, write_early_kill_sysctl(old));
	ASSERT_EQ(0, ret);
	usleep(NO_SIGNAL_MS * 1000);
	EXPECT_EQ(0, mce_count);
}

/*
 * A second thread of the test process: it sets its own PR_MCE_KILL policy
 * (a per-thread flag), then either consumes the poison at @phys through @fd
 * or waits for a memory error signal.
 */
struct mce_thread {
	pthread_t thread;
	int policy;
	int fd;
	unsigned long long phys;
	pid_t tid;
	/* -errno of prctl() or the result of consume(). */
	int ret;
	int ready;
};

static void *mce_thread_fn(void *arg)
{
	struct mce_thread *mt = arg;
	int ms;

	mt->tid = syscall(SYS_gettid);
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, mt->policy, 0, 0)) {
		mt->ret = -errno;
	} else if (mt->fd >= 0) {
		mt->ret = consume(mt->fd, mt->phys);
	} else {
		__atomic_store_n(&mt->ready, 1, __ATOMIC_RELEASE);
		for (ms = 0; !mce_count && ms < SIGNAL_MS; ms++)
			usleep(1000);
	}
	__atomic_store_n(&mt->ready, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int mce_thread_start(struct mce_thread *mt, int policy, int fd,
			    unsigned long long phys)
{
	int ret, ms;

	memset(mt, 0, sizeof(*mt));
	mt->policy = policy;
	mt->fd = fd;
	mt->phys = phys;
	ret = pthread_create(&mt->thread, NULL, mce_thread_fn, mt);
	if (ret)
		return -ret;
	for (ms = 0; ms < SIGNAL_MS; ms++) {
		if (__atomic_load_n(&mt->ready, __ATOMIC_ACQUIRE))
			break;
		usleep(1000);
	}
	return 0;
}

/*
 * Early kill is a per-thread choice: in a process whose main thread asked
 * for late kill and another thread for early kill, that thread, and only it,
 * gets the action optional SIGBUS.
 */
TEST_F(mapped, early_kill_thread)
{
	struct mce_thread mt;
	int ret;

	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0));
	ASSERT_EQ(0, mce_thread_start(&mt, PR_MCE_KILL_EARLY, -1, 0));
	ret = inject(phys_at(&self->ctx, self->off));
	ASSERT_EQ(0, pthread_join(mt.thread, NULL));
	ASSERT_EQ(0, mt.ret)
		TH_LOG("prctl in the thread: %s", strerror(-mt.ret));
	ASSERT_EQ(0, ret);

	ASSERT_EQ(1, mce_count)
		TH_LOG("expected exactly one SIGBUS");
	EXPECT_EQ(BUS_MCEERR_AO, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);
	EXPECT_EQ(self->ctx.env.page_shift, mce_lsb);
	EXPECT_EQ(mt.tid, mce_tid)
		TH_LOG("delivered to thread %d, not to the early kill thread %d",
		       mce_tid, mt.tid);
}

/*
 * The thread that consumed the poison gets the action required SIGBUS, not
 * the main thread of its process, which asked for early kill: the consumer
 * is what the process's early kill thread would have been.
 */
TEST_F(mapped, consumed_by_thread)
{
	struct mce_thread mt;

	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	ASSERT_EQ(0, mce_thread_start(&mt, PR_MCE_KILL_LATE, self->ctx.fd,
				      phys_at(&self->ctx, self->off)));
	ASSERT_EQ(0, pthread_join(mt.thread, NULL));
	ASSERT_EQ(0, mt.ret)
		TH_LOG("consume in the thread: %s", strerror(-mt.ret));

	ASSERT_EQ(1, mce_count)
		TH_LOG("expected exactly one SIGBUS");
	EXPECT_EQ(BUS_MCEERR_AR, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);
	EXPECT_EQ(mt.tid, mce_tid)
		TH_LOG("delivered to thread %d, not to the consumer %d",
		       mce_tid, mt.tid);
}

/*
 * A process that maps the PFN through several VMAs (the fixture's, another
 * one of the same window and one of the other window) is told once, with
 * the address of the PFN in one of them, whether it asked for early kill or
 * consumed the poison; all of them stay mapped.
 */
TEST_F(mapped, several_vmas)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	off_t page = self->off;
	char *map_4k, *map_pmd;
	int round, ret;

	map_4k = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      ctx->fd, page);
	ASSERT_NE(MAP_FAILED, map_4k)
		TH_LOG("mmap: %s", strerror(errno));
	map_pmd = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       ctx->fd, pmd_window(ctx) + page);
	ASSERT_NE(MAP_FAILED, map_pmd)
		TH_LOG("mmap: %s", strerror(errno));
	ASSERT_EQ(0, access_pages(map_pmd, page_size, page_size, 3, true));
	ASSERT_EQ(0, access_pages(map_4k, page_size, page_size, 3, false));

	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	for (round = 0; round < 2; round++) {
		reset_mce();
		ret = round ? consume(ctx->fd, phys_at(ctx, self->off)) :
			      inject(phys_at(ctx, self->off));
		ASSERT_EQ(0, ret)
			TH_LOG("round %d: %s", round, strerror(-ret));
		ASSERT_EQ(1, mce_count)
			TH_LOG("round %d: expected exactly one SIGBUS", round);
		EXPECT_EQ(round ? BUS_MCEERR_AR : BUS_MCEERR_AO, mce_code);
		EXPECT_TRUE(mce_addr == self->map + self->off ||
			    mce_addr == map_4k || mce_addr == map_pmd)
			TH_LOG("round %d: %p is none of %p %p %p", round,
			       mce_addr, self->map + self->off, map_4k,
			       map_pmd);
	}

	/* Each mapping still maps the page, which still holds the pattern. */
	EXPECT_EQ(0, access_pages(map_4k, page_size, page_size, 3, false));
	EXPECT_EQ(0, access_pages(map_pmd, page_size, page_size, 3, false));
	EXPECT_EQ(0, access_pages(self->map + self->off, page_size, page_size,
				  3, false));
	munmap(map_4k, page_size);
	munmap(map_pmd, page_size);
}

/*
 * Machine checks raised by the (virtual) hardware, which go through the
 * architecture's machine check handler to memory_failure(): an
 * action-optional error (a patrol scrub found it) and an action-required
 * one (a load by a process consumed it). They need an injector outside the
 * machine: $PFN_POISON_MCE_INJECT names a serial port whose other end, for
 * each line "mce CPU BANK STATUS MCG_STATUS ADDR MISC [user]" written to it,
 * raises that machine check (the syntax of QEMU's monitor command "mce";
 * with "user", only while CPU runs user code, e.g. by stopping the guest to
 * look) and answers with the same line followed by " -> ok" or
 * " -> error: ...". The values are Intel's MCA encoding, from which QEMU's
 * guest recovers only with an Intel CPU model (e.g. -cpu Skylake-Server).
 * The tests skip without $PFN_POISON_MCE_INJECT, and fail if it is set but
 * the machine cannot run them.
 */
#define MCE_INJECT_ENV		"PFN_POISON_MCE_INJECT"
/* VAL UC EN MISCV ADDRV S, memory scrub: uncorrected, action optional. */
#define MCE_STATUS_AO		0xbd000000000000c0ULL
/* VAL UC EN MISCV ADDRV S AR, data load: action required. */
#define MCE_STATUS_AR		0xbd80000000000134ULL
/* MCG_STATUS: MCIP RIPV (action optional); MCIP EIPV RIPV (required). */
#define MCE_MCG_AO		0x5
#define MCE_MCG_AR		0x7
/* MISC: a physical address, valid down to bit 6. */
#define MCE_MISC		0x86
/* How long to wait for the injector's answer. */
#define MCE_INJECT_MS		20000
/* Per test: the injection, its answer and the signals, under TCG. */
#define MCE_TEST_TIMEOUT	90

/*
 * Whether machine checks can be injected here. Returns false and sets @why
 * when they cannot; @configured tells whether an injector was named at all.
 */
static bool mce_inject_usable(char *why, size_t len, bool *configured)
{
	char line[256], vendor[64] = "";
	cpu_set_t cpus;
	FILE *f;

	*configured = getenv(MCE_INJECT_ENV);
	if (!*configured) {
		snprintf(why, len, "no machine check injector: $%s is not set",
			 MCE_INJECT_ENV);
		return false;
	}
	if (sched_getaffinity(0, sizeof(cpus), &cpus) ||
	    !CPU_ISSET(0, &cpus) || !CPU_ISSET(1, &cpus)) {
		snprintf(why, len, "needs CPUs 0 and 1: the consumer has CPU 0 to itself");
		return false;
	}
	f = fopen("/proc/cpuinfo", "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "vendor_id : %63s", vendor) == 1)
				break;
		fclose(f);
	}
	if (strcmp(vendor, "GenuineIntel")) {
		snprintf(why, len,
			 "the injected errors use Intel's MCA encoding; CPU vendor is '%s'",
			 vendor);
		return false;
	}
	return true;
}

/*
 * Whether a test can inject: skips it without an injector, fails it with
 * one that cannot be used here.
 */
static bool mce_inject_ready(struct __test_metadata *_metadata)
{
	char why[128];
	bool configured;

	if (mce_inject_usable(why, sizeof(why), &configured))
		return true;
	if (!configured)
		SKIP(return false, "%s", why);
	ASSERT_TRUE(false)
		TH_LOG("$%s is set, but %s", MCE_INJECT_ENV, why);
	return false;
}

/*
 * Ask the injector for a machine check at @phys on CPU 0. Returns 0, or a
 * negative errno (-EIO if the injector answered with an error, which goes
 * to @why, as does any answer to another request).
 */
static int mce_inject(unsigned long long status, unsigned int mcg_status,
		      unsigned long long phys, bool user, char *why,
		      size_t why_len)
{
	struct termios tio;
	char req[128], ans[256];
	struct pollfd pfd;
	size_t got = 0;
	int fd, len, ret = 0;

	snprintf(why, why_len, "no answer");
	fd = open(getenv(MCE_INJECT_ENV), O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Raw: no echo, no line editing, no CR/LF translation. */
	if (!tcgetattr(fd, &tio)) {
		cfmakeraw(&tio);
		tcsetattr(fd, TCSANOW, &tio);
	}
	tcflush(fd, TCIOFLUSH);
	len = snprintf(req, sizeof(req), "mce 0 1 0x%llx 0x%x 0x%llx 0x%x%s",
		       status, mcg_status, phys, MCE_MISC, user ? " user" : "");
	req[len++] = '\n';
	if (write(fd, req, len) != len) {
		ret = errno ? -errno : -EIO;
		goto out;
	}
	req[--len] = '\0';
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (got < sizeof(ans) - 1) {
		ssize_t n;
		int r;

		/* An action-optional SIGBUS may come before the answer. */
		do
			r = poll(&pfd, 1, MCE_INJECT_MS);
		while (r < 0 && errno == EINTR);
		if (r != 1) {
			ret = r ? -errno : -ETIMEDOUT;
			goto out;
		}
		do
			n = read(fd, ans + got, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			ret = n < 0 ? -errno : -EIO;
			goto out;
		}
		if (ans[got] == '\n')
			break;
		got++;
	}
	ans[got] = '\0';
	snprintf(why, why_len, "%s", ans);
	/* The answer repeats the request: a late one to another is no answer. */
	if (strncmp(ans, req, len) || strcmp(ans + len, " -> ok"))
		ret = -EIO;
out:
	close(fd);
	return ret;
}

/*
 * An action-optional machine check at a registered PFN: the process that
 * maps it and asked for early kill gets BUS_MCEERR_AO with its address, from
 * the machine check handler's deferred work.
 */
TEST_F_TIMEOUT(mapped, mce_action_optional, MCE_TEST_TIMEOUT)
{
	char why[256];
	int ret, i;

	if (!mce_inject_ready(_metadata))
		return;
	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	ret = mce_inject(MCE_STATUS_AO, MCE_MCG_AO,
			 phys_at(&self->ctx, self->off), false, why,
			 sizeof(why));
	ASSERT_EQ(0, ret)
		TH_LOG("injection failed: %s (%s)", strerror(-ret), why);
	for (i = 0; i < SIGNAL_MS / 10 && !mce_count; i++)
		usleep(10000);
	usleep(NO_SIGNAL_MS * 1000);
	ASSERT_EQ(1, mce_count)
		TH_LOG("expected exactly one SIGBUS");
	EXPECT_EQ(BUS_MCEERR_AO, mce_code);
	EXPECT_EQ(self->map + self->off, mce_addr);
	EXPECT_EQ(self->ctx.env.page_shift, mce_lsb);
}

/*
 * The consumer of mce_action_required: on CPU 0, read @page until told to
 * stop (@stop), then report the memory error signals it got. Killed with
 * its parent.
 */
static void __noreturn mce_consumer_run(volatile char *page,
					volatile int *stop, int ready, int done)
{
	struct mce_report report = { 0 };
	cpu_set_t cpus;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		report.err = errno;
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (!report.err && sched_setaffinity(0, sizeof(cpus), &cpus))
		report.err = errno;
	if (write(ready, &report.err, sizeof(report.err)) !=
	    sizeof(report.err))
		_exit(1);
	while (!*stop && !mce_count)
		/* The load that consumes the poison. */
		(void)*page;
	report.nsig = mce_count;
	report.code = mce_code;
	report.lsb = mce_lsb;
	report.addr = (uintptr_t)mce_addr;
	if (write(done, &report, sizeof(report)) != sizeof(report))
		_exit(1);
	_exit(0);
}

/*
 * An action-required machine check while a process reads the registered
 * PFN on CPU 0: that process gets BUS_MCEERR_AR with its address of the
 * page, and goes on running (nothing is unmapped); this one, which maps the
 * PFN too with late kill, gets nothing.
 */
TEST_F_TIMEOUT(mapped, mce_action_required, MCE_TEST_TIMEOUT)
{
	volatile char *page = self->map + self->off;
	struct mce_report report = { 0 };
	int ready[2], done[2], ret, status, err = -1;
	volatile int *stop;
	char why[256];
	cpu_set_t cpus;
	pid_t pid;

	if (!mce_inject_ready(_metadata))
		return;
	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0));
	stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, stop);
	*stop = 0;
	ASSERT_EQ(0, pipe2(ready, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(done, O_CLOEXEC));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		mce_consumer_run(page, stop, ready[1], done[1]);
	close(ready[1]);
	close(done[1]);
	ASSERT_EQ(sizeof(err), read(ready[0], &err, sizeof(err)));
	ASSERT_EQ(0, err)
		TH_LOG("consumer setup: %s", strerror(err));
	/* Leave CPU 0 to the consumer. */
	CPU_ZERO(&cpus);
	CPU_SET(1, &cpus);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	usleep(100000);

	ret = mce_inject(MCE_STATUS_AR, MCE_MCG_AR,
			 phys_at(&self->ctx, self->off), true, why,
			 sizeof(why));
	/* The signal is sent on the consumer's way back to user space. */
	usleep(NO_SIGNAL_MS * 1000);
	*stop = 1;
	ASSERT_EQ(0, ret)
		TH_LOG("injection failed: %s (%s)", strerror(-ret), why);
	ASSERT_EQ(sizeof(report), read(done[0], &report, sizeof(report)))
		TH_LOG("the consumer died before reporting");
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the consumer died: status %#x", status);
	ASSERT_EQ(1, report.nsig)
		TH_LOG("the consumer got no or more than one memory error SIGBUS");
	EXPECT_EQ(BUS_MCEERR_AR, report.code);
	EXPECT_EQ((uintptr_t)page, report.addr);
	EXPECT_EQ(self->ctx.env.page_shift, report.lsb);

	EXPECT_EQ(0, mce_count)
		TH_LOG("this late kill process got a SIGBUS with code %d",
		       mce_code);
	close(ready[0]);
	close(done[0]);
	munmap((void *)stop, sizeof(*stop));
}

FIXTURE(pfn_poison)
{
	struct pfn_poison_ctx ctx;
};

FIXTURE_SETUP(pfn_poison)
{
	ctx_setup(_metadata, &self->ctx);
}

FIXTURE_TEARDOWN_PARENT(pfn_poison)
{
	ctx_teardown(_metadata);
}

/*
 * A PFN that a VMA of the mapping does not cover is not attributed to it,
 * whether it lies above or below the VMA, in either window.
 */
TEST_F(pfn_poison, partial_mapping)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t half = ctx->env.pmd_size / 2;
	size_t page_size = ctx->env.page_size;
	int window;

	for (window = 0; window < 2; window++) {
		off_t offset = window ? pmd_window(ctx) : 0;
		char *map;

		/* The first half PMD of the window: poison above it. */
		map = mmap(NULL, half, PROT_READ | PROT_WRITE, MAP_SHARED,
			   ctx->fd, offset);
		ASSERT_NE(MAP_FAILED, map);
		ASSERT_EQ(0, access_pages(map, half, page_size, 3, true));
		reset_mce();
		EXPECT_EQ(-EBUSY, consume(ctx->fd, phys_at(ctx, half + half / 2)))
			TH_LOG("window %d: a PFN above the mapping was found in it",
			       window);
		usleep(NO_SIGNAL_MS * 1000);
		EXPECT_EQ(0, mce_count)
			TH_LOG("window %d: SIGBUS for a PFN above the mapping",
			       window);
		ASSERT_EQ(0, munmap(map, half));

		/* The second half PMD of the window: poison below it. */
		map = mmap(NULL, half, PROT_READ | PROT_WRITE, MAP_SHARED,
			   ctx->fd, offset + half);
		ASSERT_NE(MAP_FAILED, map);
		ASSERT_EQ(0, access_pages(map, half, page_size, 3, true));
		reset_mce();
		EXPECT_EQ(-EBUSY, consume(ctx->fd, phys_at(ctx, half / 2)))
			TH_LOG("window %d: a PFN below the mapping was found in it",
			       window);
		usleep(NO_SIGNAL_MS * 1000);
		EXPECT_EQ(0, mce_count)
			TH_LOG("window %d: SIGBUS for a PFN below the mapping",
			       window);

		/* And the PFN that it maps. */
		ASSERT_EQ(0, consume(ctx->fd, phys_at(ctx, half + half / 2)));
		EXPECT_EQ(1, mce_count);
		EXPECT_EQ(BUS_MCEERR_AR, mce_code);
		EXPECT_EQ(map + half / 2, mce_addr);
		ASSERT_EQ(0, munmap(map, half));
	}
}

/* The hidden RAM the module did not register: not handled. */
TEST_F(pfn_poison, unregistered_pfn)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;

	EXPECT_EQ(-EBUSY, inject(ctx->unreg_pfn * page_size));
	EXPECT_EQ(-EBUSY, inject((ctx->unreg_pfn + 1) * page_size));
	EXPECT_EQ(-EBUSY, inject(ctx->unreg_last_pfn * page_size));
	EXPECT_EQ(0, mce_count);
}

/*
 * A task that consumed the poison of a registered PFN through a mapping the
 * driver does not know (here, none) was not told: memory_failure() fails, so
 * that the architecture's handler signals it as for any unhandled error. The
 * module reports consumptions of its own PFNs only: its range and its extra
 * ranges.
 */
TEST_F(pfn_poison, consumed_unmapped)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	unsigned long long pfn = ctx->unreg_pfn;
	size_t page_size = ctx->env.page_size;

	EXPECT_EQ(-EBUSY, consume(ctx->fd, phys_at(ctx, 0)));
	EXPECT_EQ(-EINVAL, consume(ctx->fd, pfn * page_size));
	ASSERT_EQ(0, register_pfns(ctx->fd, pfn, pfn, 0));
	EXPECT_EQ(-EBUSY, consume(ctx->fd, pfn * page_size));
	ASSERT_EQ(0, unregister_pfns(ctx->fd, pfn, pfn));
	EXPECT_EQ(-EINVAL, consume(ctx->fd, pfn * page_size));
	EXPECT_EQ(0, mce_count);
}

#define TRACEFS			"/sys/kernel/tracing"
#define MF_EVENT		TRACEFS "/events/ras/memory_failure_event"

static int write_file(const char *path, const char *s, int flags)
{
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC | flags);
	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		ret = -errno;
	close(fd);
	return ret;
}

static int count_str(const char *s, const char *what)
{
	int n = 0;

	for (; (s = strstr(s, what)); s++)
		n++;
	return n;
}

/*
 * The ras:memory_failure_event tracepoint names the page type and the
 * result of each event: "Recovered" for a registered PFN, "Ignored" for one
 * nobody registered, "Failed" when the consumer was not told.
 */
TEST_F(pfn_poison, tracepoint)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	static const char * const result[] = { "Recovered", "Ignored",
						"Failed" };
	unsigned long long pfn[] = { ctx->base_pfn, ctx->unreg_pfn,
				     ctx->base_pfn };
	char buf[65536], line[128];
	const char *pos;
	ssize_t len;
	int fd, i;

	if (access(MF_EVENT "/enable", W_OK) &&
	    mount("tracefs", TRACEFS, "tracefs", 0, NULL) &&
	    errno != EBUSY)
		SKIP(return, "cannot mount tracefs at %s: %s", TRACEFS,
		     strerror(errno));
	if (access(MF_EVENT "/enable", W_OK))
		SKIP(return, "no %s: %s", MF_EVENT, strerror(errno));

	ASSERT_EQ(0, write_file(TRACEFS "/trace", "", O_TRUNC));
	ASSERT_EQ(0, write_file(MF_EVENT "/enable", "1", 0));
	EXPECT_EQ(0, inject(pfn[0] * page_size));
	EXPECT_EQ(-EBUSY, inject(pfn[1] * page_size));
	EXPECT_EQ(-EBUSY, consume(ctx->fd, pfn[2] * page_size));
	ASSERT_EQ(0, write_file(MF_EVENT "/enable", "0", 0));

	fd = open(TRACEFS "/trace", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ASSERT_LT(0, len);
	buf[len] = 0;

	/* The three events, in this order, and no other. */
	pos = buf;
	for (i = 0; i < 3; i++) {
		snprintf(line, sizeof(line),
			 "memory_failure_event: pfn %#llx: recovery action for non struct page pfn: %s\n",
			 pfn[i], result[i]);
		pos = strstr(pos, line);
		ASSERT_NE(NULL, pos)
			TH_LOG("event %d not found: \"%s\" in:\n%s", i, line,
			       buf);
		pos += strlen(line);
	}
	EXPECT_EQ(3, count_str(buf, "memory_failure_event:"))
		TH_LOG("trace:\n%s", buf);
	EXPECT_EQ(0, mce_count);
}

/*
 * PFNs without struct page are not accounted as HardwareCorrupted, whatever
 * happens to them; a repeated error is handled again.
 */
TEST_F(pfn_poison, hardware_corrupted_unchanged)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	long before, after;
	char *map;

	before = hardware_corrupted_kb();
	ASSERT_LE(0, before)
		TH_LOG("no HardwareCorrupted in /proc/meminfo");

	/* Registered, not mapped. */
	EXPECT_EQ(0, inject(phys_at(ctx, 7 * page_size)));
	EXPECT_EQ(0, inject(phys_at(ctx, 7 * page_size)));
	/* Registered and mapped, twice. */
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	EXPECT_EQ(0, consume(ctx->fd, phys_at(ctx, 0)));
	EXPECT_EQ(0, consume(ctx->fd, phys_at(ctx, 0)));
	EXPECT_EQ(2, mce_count);
	/* Not registered. */
	EXPECT_EQ(-EBUSY, inject(ctx->unreg_pfn * page_size));

	after = hardware_corrupted_kb();
	EXPECT_EQ(before, after);
}

/*
 * A range that overlaps the registered one in any way cannot be registered.
 */
TEST_F(pfn_poison, register_overlap)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	unsigned long long first = ctx->base_pfn, last = ctx->last_pfn;
	const struct {
		const char *name;
		unsigned long long first, last;
	} ranges[] = {
		{ "identical", first, last },
		{ "contained", first + 1, first + 10 },
		{ "containing", first - 1, last + 1 },
		{ "left partial", first - 1, first },
		{ "right partial", last, last + 1 },
		{ "first PFN", first, first },
		{ "last PFN", last, last },
	};
	struct test_pfn_poison_info info;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ranges); i++) {
		EXPECT_EQ(-EBUSY, register_pfns(ctx->fd, ranges[i].first,
						ranges[i].last, 0))
			TH_LOG("%s: 0x%llx-0x%llx", ranges[i].name,
			       ranges[i].first, ranges[i].last);
	}

	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(0, info.extra_registered);
}

/* A registration without callback is refused. */
TEST_F(pfn_poison, register_null_callback)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	struct test_pfn_poison_info info;

	EXPECT_EQ(-EINVAL, register_pfns(ctx->fd, ctx->unreg_pfn,
					 ctx->unreg_pfn + 15,
					 TEST_PFN_POISON_REGISTER_NULL_CALLBACK));
	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(0, info.extra_registered);
	/* Nothing was registered. */
	EXPECT_EQ(-EBUSY, inject(ctx->unreg_pfn * ctx->env.page_size));
}

/*
 * An extra range can be registered next to the first one, is handled while
 * registered (nobody maps it: no signal) and not once unregistered.
 */
TEST_F(pfn_poison, register_extra)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	unsigned long long pfn = ctx->unreg_pfn;
	size_t page_size = ctx->env.page_size;
	struct test_pfn_poison_info info;

	ASSERT_EQ(0, register_pfns(ctx->fd, pfn, pfn + 15, 0));
	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(1, info.extra_registered);
	EXPECT_EQ(-EBUSY, register_pfns(ctx->fd, pfn + 15, pfn + 16, 0));

	EXPECT_EQ(0, inject(pfn * page_size));
	EXPECT_EQ(0, inject((pfn + 15) * page_size));
	EXPECT_EQ(-EBUSY, inject((pfn + 16) * page_size));
	EXPECT_EQ(0, mce_count);

	ASSERT_EQ(0, unregister_pfns(ctx->fd, pfn, pfn + 15));
	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(0, info.extra_registered);
	EXPECT_EQ(-EBUSY, inject(pfn * page_size));

	/* Extra ranges left behind are unregistered on request. */
	ASSERT_EQ(0, register_pfns(ctx->fd, pfn, pfn, 0));
	ASSERT_EQ(0, register_pfns(ctx->fd, pfn + 1, pfn + 1, 0));
	EXPECT_EQ(2, ioctl(ctx->fd, TEST_PFN_POISON_UNREGISTER_ALL));
	EXPECT_EQ(-EBUSY, inject(pfn * page_size));
	EXPECT_EQ(0, ioctl(ctx->fd, TEST_PFN_POISON_UNREGISTER_ALL));
}

/*
 * Registration racing memory_failure(): a second process registers and
 * unregisters a range in a loop while this one reports errors in it. Each
 * report is handled (the range was registered) or fails with EBUSY (it was
 * not), nothing else; both outcomes are seen, so the two paths did
 * interleave (under lockdep in the project's guest).
 */
#define REGISTER_RACE_EACH	20
#define REGISTER_RACE_MAX	5000

TEST_F(pfn_poison, register_race)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	unsigned long long pfn = ctx->unreg_pfn;
	size_t page_size = ctx->env.page_size;
	int i, ret, status, handled = 0, busy = 0;
	volatile int *stop;
	pid_t pid;

	stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, stop);
	*stop = 0;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int fd = open_device();

		if (fd < 0)
			_exit(1);
		while (!*stop) {
			if (register_pfns(fd, pfn, pfn + 15, 0) ||
			    unregister_pfns(fd, pfn, pfn + 15))
				_exit(2);
		}
		close(fd);
		_exit(0);
	}
	for (i = 0; i < REGISTER_RACE_MAX; i++) {
		if (handled >= REGISTER_RACE_EACH && busy >= REGISTER_RACE_EACH)
			break;
		ret = inject((pfn + i % 16) * page_size);
		if (!ret) {
			handled++;
		} else if (ret == -EBUSY) {
			busy++;
		} else {
			EXPECT_EQ(0, ret)
				TH_LOG("report %d: %s", i, strerror(-ret));
			break;
		}
	}
	*stop = 1;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	munmap((void *)stop, sizeof(*stop));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the registering process failed: status %#x", status);
	EXPECT_LE(REGISTER_RACE_EACH, handled)
		TH_LOG("%d reports handled, %d in an unregistered range", handled, busy);
	EXPECT_LE(REGISTER_RACE_EACH, busy)
		TH_LOG("%d reports handled, %d in an unregistered range", handled, busy);
	EXPECT_EQ(-EBUSY, inject(pfn * page_size));
	EXPECT_EQ(0, mce_count);
}

/* Whether the kernel log holds a line containing both @what and @also. */
static bool kmsg_has(const char *what, const char *also)
{
	char buf[2048];
	bool found = false;
	ssize_t n;
	int fd;

	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* One record per read; EAGAIN at the end of the buffer. */
	while (!found && ((n = read(fd, buf, sizeof(buf) - 1)) > 0 ||
			  (n < 0 && errno == EPIPE))) {
		if (n <= 0)
			continue;
		buf[n] = '\0';
		found = strstr(buf, what) && strstr(buf, also);
	}
	close(fd);
	return found;
}

/*
 * A driver callback that returns a page offset outside the VMA, as one that
 * checks only the lower bound does, is named in a warning (once per boot) and
 * its process is not signalled; nothing WARNs in the memory error path.
 */
TEST_F(pfn_poison, callback_past_vma)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	unsigned long long pfn = ctx->unreg_pfn;
	size_t page_size = ctx->env.page_size;
	char *map;

	map = mmap(NULL, page_size, PROT_READ, MAP_SHARED, ctx->fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, register_pfns(ctx->fd, pfn, pfn,
				   TEST_PFN_POISON_REGISTER_PAST_VMA));
	reset_mce();
	/* Not signalled, so the consumption is reported as not handled. */
	EXPECT_EQ(-EBUSY, consume(ctx->fd, pfn * page_size));
	usleep(NO_SIGNAL_MS * 1000);
	EXPECT_EQ(0, mce_count);
	/* %ps adds the module name after the function's. */
	EXPECT_TRUE(kmsg_has("test_pfn_poison_past_vma_pgoff",
			     "gave a page offset outside the VMA"))
		TH_LOG("no warning naming the callback in the kernel log");
	ASSERT_EQ(0, unregister_pfns(ctx->fd, pfn, pfn));
	ASSERT_EQ(0, munmap(map, page_size));
}

/*
 * Unregistering a range that was never registered, even one that overlaps a
 * registered range, leaves the registered range alone.
 */
TEST_F(pfn_poison, unregister_not_registered)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	char *map;

	EXPECT_EQ(0, unregister_pfns(ctx->fd, ctx->base_pfn, ctx->last_pfn));
	EXPECT_EQ(0, unregister_pfns(ctx->fd, ctx->base_pfn,
				     ctx->base_pfn));
	EXPECT_EQ(0, unregister_pfns(ctx->fd, ctx->base_pfn + 1,
				     ctx->last_pfn + 1));

	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, consume(ctx->fd, phys_at(ctx, 0)))
		TH_LOG("the registration did not survive");
	EXPECT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AR, mce_code);
	EXPECT_EQ(map, mce_addr);
}

/* Registration and unregistration leave nothing behind. */
TEST_F(pfn_poison, register_cycles)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	unsigned long long pfn = ctx->unreg_pfn + 7;
	struct test_pfn_poison_info info;
	int i;

	for (i = 0; i < 1000; i++) {
		ASSERT_EQ(0, register_pfns(ctx->fd, pfn, pfn, 0))
			TH_LOG("cycle %d", i);
		ASSERT_EQ(0, unregister_pfns(ctx->fd, pfn, pfn))
			TH_LOG("cycle %d", i);
	}
	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(0, info.extra_registered);
	EXPECT_EQ(-EBUSY, inject(pfn * ctx->env.page_size));
}

/* The module checks the mappings it is asked for. */
TEST_F(pfn_poison, mmap_checks)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	off_t end = 2 * pmd_window(ctx);
	char *map;

	/* Private mappings. */
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		   ctx->fd, 0);
	EXPECT_EQ(MAP_FAILED, map);
	EXPECT_EQ(EINVAL, errno);
	/* Across the windows. */
	map = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, pmd_window(ctx) - page_size);
	EXPECT_EQ(MAP_FAILED, map);
	EXPECT_EQ(EINVAL, errno);
	/* Beyond the PMD window. */
	map = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, end - page_size);
	EXPECT_EQ(MAP_FAILED, map);
	EXPECT_EQ(EINVAL, errno);
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, end);
	EXPECT_EQ(MAP_FAILED, map);
	EXPECT_EQ(EINVAL, errno);

	/* The last page of the PMD window maps the last PFN. */
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, end - page_size);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, access_pages(map, page_size, page_size, 4, true));
	ASSERT_EQ(0, consume(ctx->fd, ctx->last_pfn * page_size));
	EXPECT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AR, mce_code);
	EXPECT_EQ(map, mce_addr);
}

/*
 * A mapping keeps the module loaded; once it is gone, the module unloads and
 * takes its registration with it, and it can be loaded again.
 */
TEST_F(pfn_poison, unload_with_mapping)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	struct test_pfn_poison_info info;
	char *map;

	/* Told of errors in what it maps, with the device closed. */
	ASSERT_EQ(0, prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, register_pfns(ctx->fd, ctx->unreg_pfn, ctx->unreg_pfn,
				   0));
	ASSERT_EQ(0, close(ctx->fd));
	ctx->fd = -1;

	/* delete_module() returns EWOULDBLOCK for a module in use. */
	EXPECT_EQ(-EWOULDBLOCK, unload_module());
	ASSERT_EQ(0, inject(phys_at(ctx, 0)));
	EXPECT_EQ(1, mce_count);
	EXPECT_EQ(BUS_MCEERR_AO, mce_code);
	EXPECT_EQ(map, mce_addr);

	ASSERT_EQ(0, munmap(map, page_size));
	ASSERT_EQ(0, unload_module());
	EXPECT_EQ(-EBUSY, inject(phys_at(ctx, 0)));
	EXPECT_EQ(-EBUSY, inject(ctx->unreg_pfn * page_size));

	ASSERT_EQ(0, load_module(&ctx->env));
	ctx->fd = open_device();
	ASSERT_LE(0, ctx->fd);
	ASSERT_EQ(0, get_info(ctx, &info));
	EXPECT_EQ(0, info.extra_registered);
	EXPECT_EQ(0, inject(phys_at(ctx, 0)));
	EXPECT_EQ(1, mce_count);
}

/*
 * Mappings made through another device node, which has another inode, are
 * found as well: all files of the device share one address space.
 */
TEST_F(pfn_poison, other_device_node)
{
	struct pfn_poison_ctx *ctx = &self->ctx;
	size_t page_size = ctx->env.page_size;
	struct mce_report report;
	struct mce_child child;
	struct stat st, alt_st;
	unsigned int major_nr, minor_nr;
	int alt_fd, ret, status;
	char *map;
	FILE *f;

	f = fopen(DEVICE_DEV_PATH, "re");
	ASSERT_NE(NULL, f);
	ASSERT_EQ(2, fscanf(f, "%u:%u", &major_nr, &minor_nr));
	fclose(f);

	unlink(DEVICE_ALT_PATH);
	if (mknod(DEVICE_ALT_PATH, S_IFCHR | 0600, makedev(major_nr, minor_nr)))
		SKIP(return, "cannot create %s: %s", DEVICE_ALT_PATH,
		     strerror(errno));
	alt_fd = open(DEVICE_ALT_PATH, O_RDWR | O_CLOEXEC);
	unlink(DEVICE_ALT_PATH);
	ASSERT_LE(0, alt_fd);
	ASSERT_EQ(0, fstat(ctx->fd, &st));
	ASSERT_EQ(0, fstat(alt_fd, &alt_st));
	ASSERT_NE(st.st_ino, alt_st.st_ino);

	/* The child maps through the other node, the test through /dev. */
	ret = mce_child_start(&child, PR_MCE_KILL_EARLY, alt_fd, 0, page_size,
			      SIGNAL_MS);
	ASSERT_EQ(0, ret);
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, 0);
	ret = map == MAP_FAILED ? -errno : consume(ctx->fd, phys_at(ctx, 0));
	ASSERT_EQ(0, mce_child_finish(&child, &report, &status));
	ASSERT_EQ(0, ret);

	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	ASSERT_EQ(0, report.err)
		TH_LOG("child setup: %s", strerror(report.err));
	ASSERT_EQ(1, report.nsig);
	EXPECT_EQ(BUS_MCEERR_AO, report.code);
	EXPECT_EQ(child.map, report.addr);
	EXPECT_EQ(ctx->env.page_shift, report.lsb);
	ASSERT_EQ(1, mce_count);
	EXPECT_EQ(map, mce_addr);
	close(alt_fd);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The children of bench_early_kill(), to clean up after a failure. */
static pid_t *bench_pids;
static unsigned int bench_nr_pids;

static void __noreturn bench_fail(const char *what, int err)
{
	unsigned int i;

	for (i = 0; i < bench_nr_pids; i++) {
		kill(bench_pids[i], SIGKILL);
		waitpid(bench_pids[i], NULL, 0);
	}
	unload_module();
	ksft_exit_fail_msg("%s: %s\n", what, strerror(err));
}

/* Mean time of one injection into the registered range, nobody mapping it. */
static double bench_injection(struct pfn_poison_ctx *ctx, unsigned int nr_ranges)
{
	unsigned long long pfn;
	double start, total;
	unsigned int i;
	int ret;

	/* Extra single PFN ranges in the unregistered half. */
	for (i = 0; i < nr_ranges - 1; i++) {
		pfn = ctx->unreg_pfn + i;
		if (pfn > ctx->unreg_last_pfn)
			bench_fail("range too small for the extra ranges", ERANGE);
		ret = register_pfns(ctx->fd, pfn, pfn, 0);
		if (ret)
			bench_fail("TEST_PFN_POISON_REGISTER", -ret);
	}

	ret = inject(phys_at(ctx, 0));
	if (ret)
		bench_fail("injection", -ret);
	total = 0;
	for (i = 0; i < 100; i++) {
		start = now_us();
		ret = inject(phys_at(ctx, 0));
		total += now_us() - start;
		if (ret)
			bench_fail("injection", -ret);
	}

	ret = ioctl(ctx->fd, TEST_PFN_POISON_UNREGISTER_ALL);
	if (ret != (int)nr_ranges - 1)
		bench_fail("TEST_PFN_POISON_UNREGISTER_ALL", ret < 0 ? errno : EIO);
	return total / 100;
}

static void __noreturn bench_child(char *map, int ready, int ack)
{
	struct timespec ts = { .tv_sec = 10 };
	siginfo_t si;
	sigset_t set;
	char c = 'r';

	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) ||
	    sigprocmask(SIG_BLOCK, &set, NULL))
		c = 'e';
	if (write(ready, &c, 1) != 1)
		_exit(1);
	c = 'x';
	if (sigtimedwait(&set, &si, &ts) == SIGBUS &&
	    si.si_code == BUS_MCEERR_AO && si.si_addr == map)
		c = 'a';
	if (write(ack, &c, 1) != 1)
		_exit(1);
	_exit(0);
}

/*
 * Time of one injection into a PFN that @nr early kill processes map, and
 * until all of them got their signal.
 */
static void bench_early_kill(struct pfn_poison_ctx *ctx, unsigned int nr,
			     double *inject_us, double *signaled_us)
{
	size_t page_size = ctx->env.page_size;
	int ready[2], ack[2], ret;
	double start, injected;
	unsigned int i, got;
	pid_t *pids;
	char *map;
	char c;

	pids = calloc(nr, sizeof(*pids));
	if (!pids)
		bench_fail("calloc", ENOMEM);
	bench_pids = pids;
	bench_nr_pids = 0;
	if (pipe2(ready, O_CLOEXEC) || pipe2(ack, O_CLOEXEC))
		bench_fail("pipe", errno);
	map = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ctx->fd, 0);
	if (map == MAP_FAILED)
		bench_fail("mmap", errno);

	for (i = 0; i < nr; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			bench_fail("fork", errno);
		if (!pids[i])
			bench_child(map, ready[1], ack[1]);
		bench_nr_pids++;
	}
	for (i = 0; i < nr; i++)
		if (read(ready[0], &c, 1) != 1 || c != 'r')
			bench_fail("child setup", EPIPE);
	/* Only the children map the PFN. */
	munmap(map, page_size);

	start = now_us();
	ret = inject(phys_at(ctx, 0));
	injected = now_us();
	if (ret)
		bench_fail("injection", -ret);
	for (got = 0; got < nr; got++)
		if (read(ack[0], &c, 1) != 1 || c != 'a')
			bench_fail("child signal", EPIPE);
	*signaled_us = now_us() - start;
	*inject_us = injected - start;

	for (i = 0; i < nr; i++)
		waitpid(pids[i], NULL, 0);
	bench_nr_pids = 0;
	close(ready[0]);
	close(ready[1]);
	close(ack[0]);
	close(ack[1]);
	free(pids);
}

static int bench(int argc, char **argv)
{
	static const unsigned int nr_ranges[] = { 1, 100, 10000 };
	static const unsigned int nr_procs[] = { 1, 10, 100 };
	struct pfn_poison_ctx ctx = { .fd = -1 };
	struct pfn_poison_env *env = &ctx.env;
	double inject_us, signaled_us;
	const char *err;
	unsigned int i;
	int ret;

	if (geteuid())
		ksft_exit_skip("must be run as root\n");
	err = env_init(env);
	if (err)
		ksft_exit_skip("%s\n", err);
	ret = unload_module();
	if (ret && ret != -ENOENT)
		ksft_exit_fail_msg("cannot unload %s: %s\n", MODULE_NAME,
				   strerror(-ret));
	ret = load_module(env);
	if (ret)
		ksft_exit_fail_msg("finit_module(%s): %s\n", env->module,
				   strerror(-ret));
	ctx.fd = open_device();
	if (ctx.fd < 0)
		bench_fail(DEVICE_PATH, errno);
	if (ioctl(ctx.fd, TEST_PFN_POISON_INFO, &ctx.info))
		bench_fail("TEST_PFN_POISON_INFO", errno);
	ctx.base_pfn = env->phys / env->page_size;
	ctx.last_pfn = ctx.base_pfn + ctx.info.npages - 1;
	ctx.unreg_pfn = ctx.last_pfn + 1;
	ctx.unreg_last_pfn =
		(env->hidden_phys + env->hidden_size) / env->page_size - 1;

	printf("# command:");
	for (i = 0; i < (unsigned int)argc; i++)
		printf(" %s", argv[i]);
	printf("\n# memmap=0x%llx$0x%llx, %s phys=0x%llx size=0x%llx\n",
	       env->hidden_size, env->hidden_phys, MODULE_NAME, env->phys,
	       env->size);

	printf("# one injection into a registered PFN nobody maps, mean of 100\n");
	printf("%20s %12s\n", "registered ranges", "usec");
	for (i = 0; i < ARRAY_SIZE(nr_ranges); i++)
		printf("%20u %12.1f\n", nr_ranges[i],
		       bench_injection(&ctx, nr_ranges[i]));

	printf("# one injection into a PFN that early kill processes map\n");
	printf("%20s %12s %16s\n", "processes", "write usec", "signaled usec");
	for (i = 0; i < ARRAY_SIZE(nr_procs); i++) {
		bench_early_kill(&ctx, nr_procs[i], &inject_us, &signaled_us);
		printf("%20u %12.1f %16.1f\n", nr_procs[i], inject_us,
		       signaled_us);
	}

	close(ctx.fd);
	ret = unload_module();
	if (ret)
		ksft_exit_fail_msg("cannot unload %s: %s\n", MODULE_NAME,
				   strerror(-ret));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bench"))
		return bench(argc, argv);
	return test_harness_run(argc, argv);
}

# SPDX-License-Identifier: GPL-2.0
# Common helpers for the workbench scripts.  Source it; do not run it.
# shellcheck shell=bash disable=SC2034 # variables used by the sourcing scripts

set -euo pipefail
# A failing command inside $(...) stops the substitution too.
shopt -s inherit_errexit

WB_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WB_TOP
# shellcheck source=scripts/base.env
. "${WB_BASE_ENV:-$WB_TOP/scripts/base.env}"

# Everything below can be overridden from the environment (the workbench's
# own tests point them at a small scratch repository).
KERNEL_DIR=${KERNEL_DIR:-$WB_TOP/kernel}
BUILD_DIR=${BUILD_DIR:-$WB_TOP/build}
# The quilt: QUILT_DIR/series lists QUILT_DIR/patches/<topic>/*.patch.
QUILT_DIR=${QUILT_DIR:-$WB_TOP}
SERIES_FILE=$QUILT_DIR/series
PATCHES_DIR=$QUILT_DIR/patches
# Ref in $KERNEL_DIR that names the pristine base, and the branch that
# carries the applied quilt.
BASE_REF=${BASE_REF:-refs/tags/v$BASE_VERSION}
SERIES_BRANCH=${SERIES_BRANCH:-series}
# git notes ref that records which topic a commit of $SERIES_BRANCH belongs to.
TOPIC_NOTES=refs/notes/wb-topic

# Caches that outlive a checkout, like ccache's: results that a fresh
# clone may reuse because everything that decides them is in their key.
WB_CACHE=${WB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/linux-wb}

WB_PROG=$(basename "$0")
# One clock for a whole run: scripts started by scripts/check inherit it.
WB_T0=${WB_T0:-$(date +%s)}
export WB_T0

# wb_lock: one workbench command at a time in a checkout: never two kernel
# builds at once, never a guest booting a kernel being rebuilt.  Held on
# fd 9 until the script exits; the scripts scripts/check starts run under
# its lock (WB_LOCKED).
wb_lock() {
	[ -z "${WB_LOCKED:-}" ] || return 0
	mkdir -p "$BUILD_DIR"
	exec 9>"$BUILD_DIR/.check.lock"
	flock -n 9 || die "another workbench command ('make run', 'make check', a build," \
		"the per-patch checks...) is running in $WB_TOP (it holds" \
		"$BUILD_DIR/.check.lock); wait for it or stop it"
	export WB_LOCKED=1
}

die() {
	trap - ERR	# said here already
	printf '%s: error: %s\n' "$WB_PROG" "$*" >&2
	exit 1
}

warn() {
	printf '%s: warning: %s\n' "$WB_PROG" "$*" >&2
}

info() {
	printf '%s: %s\n' "$WB_PROG" "$*" >&2
}

# stage NAME: announce a long step with the time elapsed since the script began.
stage() {
	local now
	now=$(date +%s)
	printf '==> [%s +%dm%02ds] %s\n' "$WB_PROG" $(((now - WB_T0) / 60)) \
		$(((now - WB_T0) % 60)) "$*" >&2
}

# need TOOL DEBIAN_PACKAGE: stop with the package to install when TOOL is missing.
need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found: install the Debian package '$2' (or run 'make deps')"
}

# Any command that fails where set -e stops the script says so first: the
# ERR trap (set -E: in functions and substitutions too).
set -E
# shellcheck disable=SC2154 # wb_rc is set by the trap itself
trap 'wb_rc=$?; printf "%s: error: %s failed (exit %d, line %d)\n" \
	"$WB_PROG" "$BASH_COMMAND" "$wb_rc" "$LINENO" >&2' ERR

# lines VAR CMD...: the output lines of CMD in the array VAR.  Unlike
# 'mapfile < <(CMD)', a failing CMD stops the script, also when a command
# in the middle of a function CMD fails (the substitution is not tested, so
# set -e and inherit_errexit apply inside it).
lines() {
	local -n lines_out=$1
	local text
	shift
	text=$("$@")
	lines_out=()
	[ -z "$text" ] || mapfile -t lines_out <<<"$text"
}

# testlist ARGS...: scripts/testlist.py, the one reader of configs/tests.list.
testlist() {
	python3 "$WB_TOP/scripts/testlist.py" "$@"
}

# record FILE TOPIC CHECK NAME ok|fail|skip [NOTE]: one result record in
# $BUILD_DIR/results/FILE.tsv, the one format scripts/summary.py reads
# (topic, check, name, passed, failed, skipped, note).  A failure is also
# said on stderr.
record() {
	local p=0 f=0 s=0 note=${6:-}
	case "$5" in
	ok) p=1 ;;
	fail) f=1 ;;
	skip) s=1 ;;
	*) die "record: verdict '$5' is not ok, fail or skip" ;;
	esac
	note=${note//[$'\t\n']/ }
	mkdir -p "$BUILD_DIR/results"
	printf '%s\t%s\t%s\t%d\t%d\t%d\t%s\n' "$2" "$3" "$4" $p $f $s "$note" \
		>>"$BUILD_DIR/results/$1.tsv"
	[ "$5" != fail ] || warn "$4: $3: ${note:-failed}"
}

# has_failure [FILE]: FILE (or stdin) holds a record with failed > 0.
has_failure() {
	grep -qP '\t[0-9]+\t[1-9][0-9]*\t[0-9]+\t[^\t]*$' "$@"
}

# CCACHE_BASEDIR: paths in compiler command lines are made relative to the
# checkout, so a fresh clone elsewhere still hits the cache.
export CCACHE_BASEDIR=$WB_TOP

# W1: kbuild's W=1 warnings, without the kernel-doc run W=1 adds for every C
# file it compiles (a Python start each: 171 s of a 225 s warm build of the
# test kernel, for no warning).  The per-patch checks run kernel-doc on the
# files each patch touches, and compare its messages with the base's.
# shellcheck disable=SC2034 # used by the scripts that source this file
W1=(W=1 'cmd_checkdoc=')

# kbuild VAR OUT: the one kbuild command line of the workbench (x86_64,
# ccache, JOBS or every CPU), building into OUT, in the array VAR.
kbuild() {
	local -n kbuild_out=$1
	kbuild_out=(make -C "$KERNEL_DIR" O="$2" ARCH=x86_64 CC="ccache gcc"
		HOSTCC="ccache gcc" -j"${JOBS:-$(nproc)}")
}

# kbuild_lists OUT DIR: what kbuild compiles in DIR (relative to the tree)
# under OUT's configuration, one per line: its objects (composite objects'
# parts included, modules' too) and its subdirectories, as its Makefile.build
# computes them (real-obj-y, real-obj-m, subdir-ym).
kbuild_lists() {
	# shellcheck disable=SC2016 # make expands them
	make -s -C "$1" -f "$KERNEL_DIR/scripts/Makefile.build" obj="$2" \
		srctree="$KERNEL_DIR" srcroot="$KERNEL_DIR" objtree=. ARCH=x86_64 SRCARCH=x86 need-modorder=1 \
		--eval 'wb-lists: ; @printf "%s\n" $(real-obj-y) $(real-obj-m) $(subdir-ym)' wb-lists
}

# kbuild_compiles OUT OBJ: kbuild compiles OBJ under OUT's configuration:
# the nearest directory above it with a Makefile (or Kbuild) lists it, and
# so on up to a top-level directory (mm/, arch/x86/), which the tree's
# Kbuild adds unless a symbol OUT turns off guards it.  A directory without
# a Makefile is its parent's (lib/zstd/'s Makefile compiles
# decompress/huf_decompress.o; xe's compiles display/*.o); arch/, the one
# directory without a Makefile above a top-level one, ends the walk.  OUT needs its
# include/config/auto.conf (a build or 'make syncconfig' made it); the
# Makefiles are read in KERNEL_DIR.  (A single-object make target compiles any .c,
# whatever the configuration: it cannot tell.)
declare -A KBUILD_LISTS=()
kbuild_compiles() {
	local out=$1 item=${2%/} dir sym
	while [[ "$item" == */* ]]; do
		dir=${item%/*}
		while [ ! -f "$KERNEL_DIR/$dir/Makefile" ] && [ ! -f "$KERNEL_DIR/$dir/Kbuild" ] &&
			[[ "$dir" == */* ]]; do
			dir=${dir%/*}
		done
		# arch/ is no kbuild directory: arch/x86/ is a top-level one.
		[ -f "$KERNEL_DIR/$dir/Makefile" ] || [ -f "$KERNEL_DIR/$dir/Kbuild" ] || break
		if [ -z "${KBUILD_LISTS[$out:$dir]+set}" ]; then
			KBUILD_LISTS[$out:$dir]=$(kbuild_lists "$out" "$dir") ||
				die "kbuild could not list the objects of $dir under $out"
		fi
		grep -qxF -- "$item" <<<"${KBUILD_LISTS[$out:$dir]}" || return 1
		item=$dir
	done
	sym=$(sed -nE "s|^obj-\\\$\((CONFIG_[A-Z0-9_]+)\)[[:space:]]*\+=[[:space:]]*$item/[[:space:]]*\$|\1|p" \
		"$KERNEL_DIR/Kbuild")
	[ -z "$sym" ] || grep -qE "^$sym=[ym]\$" "$out/include/config/auto.conf"
}

# spawn VAR CMD...: run CMD in the background, in a process group of its
# own, and put its pid in VAR.  Whatever the script spawned is killed, with
# everything it started, when the script exits for any reason: Ctrl-C
# reaches only the foreground, and a background job of a non-interactive
# shell ignores SIGINT, so it would outlive the script.
WB_SPAWNED=()
spawn() {
	local -n spawn_pid=$1
	shift
	# Not holding scripts/check's lock (fd 9) past the script.
	setsid "$@" 9>&- &
	spawn_pid=$!
	WB_SPAWNED+=("$spawn_pid")
}

# reap PID: wait for a spawned job and forget it (its pid may be reused).
reap() {
	local rc=0 p keep=()
	wait "$1" || rc=$?
	for p in "${WB_SPAWNED[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	WB_SPAWNED=("${keep[@]}")
	return $rc
}

# wb_cleanup: kill what spawn started (the EXIT trap; a script that sets
# its own EXIT trap calls it there).
wb_cleanup() {
	local p
	for p in "${WB_SPAWNED[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || true
	done
}
trap wb_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kgit ARGS...: git inside the kernel repository.
kgit() {
	git -C "$KERNEL_DIR" "$@"
}

# base_commit: the commit $BASE_REF points to, or stop.
base_commit() {
	kgit rev-parse -q --verify "$BASE_REF^{commit}" 2>/dev/null ||
		die "base $BASE_REF not found in $KERNEL_DIR: run 'make base' first"
}

# series_patches: the patch paths listed in $SERIES_FILE, in order.
# variants_of TOPIC: the variants (configs/variants/NAME.config, or
# $WB_VARIANTS) whose fragment has TOPIC on its "# per-patch: TOPIC..."
# line: scripts/check-patches builds every patch of TOPIC again with each.
variants_of() {
	local f
	for f in "${WB_VARIANTS:-$WB_TOP/configs/variants}"/*.config; do
		[ -f "$f" ] || continue
		if grep -qE "^# per-patch:(.*[[:space:]])?$1([[:space:]]|\$)" "$f"; then
			basename "$f" .config
		fi
	done
	return 0
}

series_patches() {
	[ -f "$SERIES_FILE" ] || return 0
	grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$SERIES_FILE" || true
}

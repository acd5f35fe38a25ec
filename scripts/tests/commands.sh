#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of the workbench's commands where they must fail: the summary line
# after an unexpected stop, the run lock, a typo in configs/tests.list, an
# error inside a process substitution, an unknown test or suite, a guest that
# never reaches /init, and the base the superproject records.  Each runs in
# seconds, against scratch build directories and stand-ins for QEMU and the
# package tools.  Prints KTAP.

set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export KERNEL_DIR=${KERNEL_DIR:-$TOP/kernel}

# The stand-ins' sleep, unique to this run (other checkouts may run these
# tests at the same time).
NAP=$((3000 + $$ % 5000))
# shellcheck source=scripts/tests/ktap.sh
. "$TOP/scripts/tests/ktap.sh"
ktap_plan 18

# A stand-in for a command, first on PATH: stub NAME SCRIPT.
mkdir -p "$T/bin"
stub() {
	printf '#!/bin/sh\n%s\n' "$2" >"$T/bin/$1"
	chmod +x "$T/bin/$1"
}

# make check stops in its first stage ('make deps' cannot install as a
# normal user and every package looks missing): it still ends with the
# summary line, counting that stop as a failure.
t_summary_after_unexpected_stop() {
	stub dpkg-query 'exit 1'
	stub id 'echo 1000'
	local rc=0
	PATH=$T/bin:$PATH BUILD_DIR=$T/b1 "$TOP/scripts/check" check >"$T/log" 2>&1 || rc=$?
	rm -f "$T/bin/dpkg-query" "$T/bin/id"
	cat "$T/log"
	[ "$rc" != 0 ] &&
		grep -q "stage 'dependencies' ran to the end: 1 failed (the run stopped there, exit 1)" "$T/log" &&
		[ "$(tail -n 1 "$T/log")" = "0 passed, 1 failed, 0 skipped" ]
}

# A second run while one holds the lock is refused, and touches nothing.
t_second_run_refused() {
	mkdir -p "$T/b2/results"
	echo keep >"$T/b2/results/x.tsv"
	flock "$T/b2/.check.lock" sleep 30 &
	local holder=$! rc=0
	sleep 0.5
	env -u WB_LOCKED BUILD_DIR="$T/b2" "$TOP/scripts/check" run >"$T/log" 2>&1 || rc=$?
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	cat "$T/log"
	[ "$rc" != 0 ] && grep -q "another workbench command .* is running" "$T/log" &&
		[ "$(cat "$T/b2/results/x.tsv")" = keep ]
}

# So is every other command that builds, boots or checks out: each stops
# at once with the message, before touching anything.
t_other_commands_refused() {
	mkdir -p "$T/blk"
	flock "$T/blk/.check.lock" sleep 30 &
	local holder=$! s bad=''
	sleep 0.5
	for s in build vm check-patches kunit mail apply; do
		if env -u WB_LOCKED BUILD_DIR="$T/blk" timeout 20 "$TOP/scripts/$s" >"$T/log.$s" 2>&1 ||
			! grep -q "another workbench command .* is running" "$T/log.$s"; then
			bad+=" $s"
			cat "$T/log.$s"
		fi
	done
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	[ -z "$bad" ] || { echo "not refused:$bad"; return 1; }
}

# configs/tests.list with a typo is an error, named with its line.
t_tests_list_typo() {
	printf 'base\tkselftest\tiommu\nbase\tkunit\tno_such_suite\nbase\tkselftst\tiommu\n' >"$T/tests.list"
	local rc=0
	TESTS_LIST=$T/tests.list python3 "$TOP/scripts/testlist.py" list kselftest >"$T/log" 2>&1 || rc=$?
	cat "$T/log"
	[ "$rc" = 2 ] && grep -q "tests.list:2: KUnit suite 'no_such_suite' has no" "$T/log" &&
		grep -q "tests.list:3: unknown kind 'kselftst'" "$T/log"
}

# A failure inside what used to be a process substitution stops the build
# before it configures anything (a selftest target that does not exist).
t_process_substitution_error() {
	local rc=0
	SELFTESTS=no_such_target BUILD_DIR=$T/b3 "$TOP/scripts/build" config >"$T/log" 2>&1 || rc=$?
	cat "$T/log"
	[ "$rc" != 0 ] && grep -q "selftest target 'no_such_target' not found" "$T/log" &&
		[ ! -e "$T/b3/kernel/.config" ]
}

# lines: the helper behind those substitutions.
t_lines_helper() {
	local rc=0
	# A shell of its own: set -e is ignored in a tested context like this one.
	bash -c '
		. "$1/scripts/lib.sh"
		a=() b=() c=()
		lines a printf "x\ny\n"
		[ "${#a[@]}" = 2 ] || exit 7
		lines b true
		[ "${#b[@]}" = 0 ] || exit 7
		# A failure in the middle of a function, not only at its end.
		f() {
			false
			echo hi
		}
		lines c f
		exit 0		# not reached: lines stops the script
	' sh "$TOP" >"$T/log" 2>&1 || rc=$?
	cat "$T/log"
	[ "$rc" = 1 ] && grep -q "error: false failed" "$T/log"
}

# Unknown names stop at once, with the names that exist.
t_unknown_test() {
	! make -s -C "$TOP" test T=no_such:test BUILD_DIR="$T/b4" >"$T/log" 2>&1 &&
		grep -q "the guest runs only these selftest targets" "$T/log" &&
		[ ! -e "$T/b4" ]
}
t_unknown_suite() {
	! make -s -C "$TOP" kunit SUITE=no_such_suite BUILD_DIR="$T/b5" >"$T/log" 2>&1 &&
		grep -q "no suite 'no_such_suite'" "$T/log" && [ ! -e "$T/b5" ] &&
		! BUILD_DIR=$T/b5 "$TOP/scripts/kunit" no_such_suite >"$T/log" 2>&1 &&
		grep -q "no KUnit suite 'no_such_suite'" "$T/log"
}

# A fake build: a kernel image and a kselftest install with one test.
fake_build() {
	mkdir -p "$1/kernel/arch/x86/boot" "$1/kselftest"
	: >"$1/kernel/arch/x86/boot/bzImage"
	printf '#!/bin/sh\n' >"$1/kselftest/run_kselftest.sh"
	chmod +x "$1/kselftest/run_kselftest.sh"
	echo 'iommu:iommufd' >"$1/kselftest/kselftest-list.txt"
}

# A guest that never reaches /init (QEMU exits, nothing on ttyS1) fails.
t_guest_without_init() {
	fake_build "$T/b6"
	stub qemu-system-x86_64 'exit 0'
	local rc=0
	PATH=$T/bin:$PATH BUILD_DIR=$T/b6 "$TOP/scripts/vm" >"$T/log" 2>&1 || rc=$?
	rm -f "$T/bin/qemu-system-x86_64"
	cat "$T/log"
	[ "$rc" = 1 ] && grep -q "the guest never reached /init" "$T/log"
}

# A -t test the install does not have is refused before booting.
t_vm_unknown_test() {
	fake_build "$T/b7"
	stub qemu-system-x86_64 'echo booted >&2; exit 0'
	local rc=0
	KSELFTEST_ARGS="-t iommu:no_such" PATH=$T/bin:$PATH BUILD_DIR=$T/b7 \
		"$TOP/scripts/vm" >"$T/log" 2>&1 || rc=$?
	rm -f "$T/bin/qemu-system-x86_64"
	cat "$T/log"
	[ "$rc" = 1 ] && grep -q "no selftest 'iommu:no_such'" "$T/log" && ! grep -q booted "$T/log"
}

# The guest's limit is the sum of the programs' own limits (each
# collection's settings, or 45 s, times 4 under TCG) plus 300 s.
t_vm_timeout_from_settings() {
	fake_build "$T/b8"
	printf 'iommu:iommufd\nmine:a\nmine:b\n' >"$T/b8/kselftest/kselftest-list.txt"
	mkdir -p "$T/b8/kselftest/mine"
	echo timeout=10 >"$T/b8/kselftest/mine/settings"
	# A QEMU that writes guest-init's first line to the second serial port.
	# shellcheck disable=SC2016 # expanded by the stub
	stub qemu-system-x86_64 'n=0; for a; do case "$a" in file:*) n=$((n+1));
		[ $n = 2 ] && echo "# wb: kernel 6.18.5" >"${a#file:}";; esac; done; exit 0'
	local rc=0
	PATH=$T/bin:$PATH BUILD_DIR=$T/b8 "$TOP/scripts/vm" >"$T/log" 2>&1 || rc=$?
	rm -f "$T/bin/qemu-system-x86_64"
	cat "$T/log"
	# 45 * 4 + 2 * 10 * 4 + 300
	[ "$rc" = 0 ] && grep -q "limit 560s" "$T/log" &&
		! grep -q -- ' -o ' "$T/b8/logs/qemu.cmdline"
}

# WB_MACHINE=mce: an Intel CPU model, QEMU's monitor and a third serial
# port on sockets, the injector's port in the guest's environment, logs of
# its own (the main machine's are left alone); another name is refused.
t_vm_mce_machine() {
	fake_build "$T/b13"
	mkdir -p "$T/b13/logs"
	echo main >"$T/b13/logs/console.log"
	# shellcheck disable=SC2016 # expanded by the stub
	stub qemu-system-x86_64 'n=0; for a; do case "$a" in file:*) n=$((n+1));
		[ $n = 2 ] && echo "# wb: kernel 6.18.5" >"${a#file:}";; esac; done; exit 0'
	local rc=0 rc2=0
	WB_MACHINE=mce PATH=$T/bin:$PATH BUILD_DIR=$T/b13 "$TOP/scripts/vm" >"$T/log" 2>&1 || rc=$?
	WB_MACHINE=amd PATH=$T/bin:$PATH BUILD_DIR=$T/b13 "$TOP/scripts/vm" >>"$T/log" 2>&1 || rc2=$?
	rm -f "$T/bin/qemu-system-x86_64"
	cat "$T/log" "$T/b13/logs/qemu.mce.cmdline"
	local c=$T/b13/logs/qemu.mce.cmdline
	[ "$rc" = 0 ] && [ "$rc2" = 1 ] && grep -q "WB_MACHINE=amd: expected main or mce" "$T/log" &&
		grep -q -- '-cpu Skylake-Server' "$c" &&
		grep -q -- '-monitor unix:[^ ]*/monitor\\,server=on' "$c" &&
		grep -q -- '-serial unix:[^ ]*/inject\\,server=on' "$c" &&
		grep -q 'PFN_POISON_MCE_INJECT=/dev/ttyS2' "$c" &&
		grep -q -- "-serial file:$T/b13/logs/console.mce.log" "$c" &&
		grep -q '^# wb: kernel' "$T/b13/logs/kselftest.mce.ktap" &&
		[ "$(cat "$T/b13/logs/console.log")" = main ] && [ ! -e "$T/b13/logs/qemu.cmdline" ]
}

# interrupt NAME CMD...: start CMD as Ctrl-C would find it (a process
# group of its own), wait until the stand-in NAME (sleeping in
# "sleep $NAP") runs, send SIGINT to the group, and succeed when CMD exited
# and nothing of the stand-in is left.
interrupt() {
	local name=$1 pid
	shift
	# A background job would start with SIGINT ignored, which a script
	# cannot trap: start it as a terminal's foreground job would be.
	python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' "$@" >"$T/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		pgrep -f "$T/bin/$name" >/dev/null && break
		sleep 0.1
	done
	pgrep -f "$T/bin/$name" >/dev/null || { echo "$name never started"; return 1; }
	kill -INT -- "-$pid"
	timeout 20 tail --pid="$pid" -f /dev/null || { echo "$* did not stop on SIGINT"; return 1; }
	sleep 0.5
	cat "$T/log"
	if pgrep -f "$T/bin/$name" >/dev/null || pgrep -fx "sleep $NAP" >/dev/null; then
		echo "left running:"
		pgrep -af "$T/bin/$name|^sleep $NAP$"
		pkill -f "$T/bin/$name"
		pkill -fx "sleep $NAP"
		return 1
	fi
}

# Ctrl-C during the guest run leaves no QEMU behind.
t_interrupt_vm() {
	fake_build "$T/b9"
	stub qemu-system-x86_64 "sleep $NAP"
	PATH=$T/bin:$PATH BUILD_DIR=$T/b9 interrupt qemu-system-x86_64 "$TOP/scripts/vm"
	local rc=$?
	rm -f "$T/bin/qemu-system-x86_64"
	return $rc
}

# Ctrl-C during the kernel build leaves no make behind.
t_interrupt_build() {
	mkdir -p "$T/b10/kernel"
	: >"$T/b10/kernel/.config"
	stub make "sleep $NAP"
	PATH=$T/bin:$PATH BUILD_DIR=$T/b10 interrupt make "$TOP/scripts/build" kernel
	local rc=$?
	rm -f "$T/bin/make"
	return $rc
}

# The superproject records the base commit (the offline import, which
# every machine without the stable tree creates), not a series commit.
t_gitlink_is_the_base() {
	local want link
	want=$(sed -n 's/^IMPORT_COMMIT=//p' "$TOP/scripts/base.env")
	link=$(git -C "$TOP" ls-files -s kernel | awk '{ print $2 }')
	echo "gitlink $link, base.env $want"
	[ -n "$want" ] && [ "$link" = "$want" ]
}

# A stand-in for make's selftest install: installs run_kselftest.sh and a
# list with only the target "built", and exits 0 as the selftests' top
# Makefile does when any one target built.  Records the harness timeout of
# the tree it was asked to build.
selftest_make_stub() {
	# The stand-in expands its own arguments, not this shell's.
	# shellcheck disable=SC2016
	stub make '
for a in "$@"; do
	case "$a" in
	INSTALL_PATH=*) inst=${a#INSTALL_PATH=} ;;
	esac
done
case " $* " in
*" install "*)
	mkdir -p "$inst"
	printf "#!/bin/sh\n" >"$inst/run_kselftest.sh"
	chmod +x "$inst/run_kselftest.sh"
	echo built:prog >"$inst/kselftest-list.txt"
	mkdir -p "$inst/built"
	printf "#!/bin/sh\n" >"$inst/built/prog"
	chmod +x "$inst/built/prog"
	grep "^#define TEST_TIMEOUT_DEFAULT" "$2/kselftest_harness.h" >"'"$T"'/harness-timeout"
	;;
esac
exit 0'
}

# A selftest target that does not build fails 'make build', named.
t_selftest_target_not_built() {
	mkdir -p "$T/b11/kernel"
	: >"$T/b11/kernel/.config"
	selftest_make_stub
	local rc=0
	PATH=$T/bin:$PATH BUILD_DIR=$T/b11 SELFTESTS="built broken" \
		"$TOP/scripts/build" selftests || rc=$?
	rm -f "$T/bin/make"
	echo "exit status $rc"
	[ "$rc" != 0 ] && grep -q "not built: broken" "$T/out"
}

# One program of a target ("target:program" in tests.list) that the
# target's build did not produce fails 'make build', named; so does a
# target named both whole and by program; the program that was built is
# the only one of its target in the guest's list.
t_selftest_program_not_built() {
	local rc=0
	mkdir -p "$T/b13/kernel"
	: >"$T/b13/kernel/.config"
	selftest_make_stub
	PATH=$T/bin:$PATH BUILD_DIR=$T/b13 SELFTESTS="built:prog" \
		"$TOP/scripts/build" selftests || rc=$?
	echo "one program built: exit status $rc"
	[ "$rc" = 0 ] && [ "$(cat "$T/b13/kselftest/kselftest-list.txt")" = built:prog ] ||
		return 1
	rc=0
	PATH=$T/bin:$PATH BUILD_DIR=$T/b13 SELFTESTS="built:prog built:nosuch" \
		"$TOP/scripts/build" selftests >"$T/out13" 2>&1 || rc=$?
	cat "$T/out13"
	[ "$rc" != 0 ] && grep -q "selftest built:nosuch: .*/built/nosuch was not built" "$T/out13" ||
		return 1
	rc=0
	PATH=$T/bin:$PATH BUILD_DIR=$T/b13 SELFTESTS="built built:prog" \
		"$TOP/scripts/build" selftests >"$T/out13" 2>&1 || rc=$?
	rm -f "$T/bin/make"
	cat "$T/out13"
	[ "$rc" != 0 ] && grep -q "names the selftest target built both whole and by program" "$T/out13"
}

# make check-debug's selftests time each harness test out after
# SELFTEST_HARNESS_TIMEOUT, built from a worktree; kernel/ keeps its 30.
t_debug_harness_timeout() {
	local k=$T/k12 h=tools/testing/selftests/kselftest_harness.h rc=0
	mkdir -p "$k/${h%/*}" "$T/b12/kernel"
	printf '#define TEST_TIMEOUT_DEFAULT 30\n' >"$k/$h"
	: >"$k/Makefile"
	git -C "$k" init -q && git -C "$k" add . &&
		git -C "$k" -c user.name=t -c user.email=t@t commit -qm base || return 1
	: >"$T/b12/kernel/.config"
	selftest_make_stub
	rm -f "$T/harness-timeout"
	PATH=$T/bin:$PATH BUILD_DIR=$T/b12 KERNEL_DIR=$k SELFTESTS=built \
		SELFTEST_HARNESS_TIMEOUT=600 "$TOP/scripts/build" selftests || rc=$?
	rm -f "$T/bin/make"
	echo "exit status $rc; built with: $(cat "$T/harness-timeout" 2>&1); kernel/ has: $(cat "$k/$h")"
	[ "$rc" = 0 ] && grep -qx '#define TEST_TIMEOUT_DEFAULT 600' "$T/harness-timeout" &&
		grep -qx '#define TEST_TIMEOUT_DEFAULT 30' "$k/$h" &&
		git -C "$k" diff --quiet
}

check "make check ends with the summary line after an unexpected stop" t_summary_after_unexpected_stop
check "a second make check is refused while one runs" t_second_run_refused
check "every other workbench command is refused while one runs" t_other_commands_refused
check "a typo in configs/tests.list is an error" t_tests_list_typo
check "an error inside a process substitution stops the build" t_process_substitution_error
check "lines: a failing command stops the script" t_lines_helper
check "make test with an unknown test fails" t_unknown_test
check "make kunit with an unknown suite fails" t_unknown_suite
check "a guest that never reaches /init fails" t_guest_without_init
check "vm: an unknown -t test is refused before boot" t_vm_unknown_test
check "vm: the guest's time limit is the sum of the programs' own" t_vm_timeout_from_settings
check "Ctrl-C during the guest run leaves nothing running" t_interrupt_vm
check "vm: the machine-check machine" t_vm_mce_machine
check "Ctrl-C during the kernel build leaves nothing running" t_interrupt_build
check "the kernel gitlink records the base commit" t_gitlink_is_the_base
check "a selftest target that does not build fails the build" t_selftest_target_not_built
check "check-debug's harness timeout, kernel/ untouched" t_debug_harness_timeout
check "a program of a target that was not built, or a target named whole and by program, fails the build" t_selftest_program_not_built
ktap_end commands

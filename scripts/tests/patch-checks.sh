#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of scripts/check-patches and scripts/mail against the real base
# kernel (its checkpatch.pl, kernel-doc and get_maintainer.pl), in a scratch
# worktree of kernel/ with a scratch quilt: one clean patch, and one patch
# with a style error, broken kernel-doc and no Signed-off-by, one that
# repeats an existing kernel-doc warning; then checkpatch, kernel-doc and
# get_maintainer.pl that cannot run.  The build check runs on a tinyconfig
# build directory kept in build/ (a patch touching a .c file that
# configuration does not compile must fail, by name).  Prints KTAP.

set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
REAL_KERNEL=${KERNEL_DIR:-$TOP/kernel}
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
# Scratch worktrees of kernel/, kept in build/ between runs (a checkout of
# the whole tree takes a while).
WT=$TOP/build/wb-test-tree
export MAIL_TREE=$TOP/build/mail/.tree

echo "KTAP version 1"
PLAN=32
echo "1..$PLAN"
if ! git -C "$REAL_KERNEL" rev-parse -q --verify v6.18.5 >/dev/null; then
	for i in $(seq "$PLAN"); do echo "not ok $i no base in $REAL_KERNEL: run make base"; done
	exit 1
fi
if [ ! -e "$WT/.git" ]; then
	git -C "$REAL_KERNEL" worktree prune
	rm -rf "$WT"
	git -C "$REAL_KERNEL" worktree add -q --detach "$WT" v6.18.5 || exit 1
fi
git -C "$WT" am --abort >/dev/null 2>&1
git -C "$WT" checkout -q -f --detach v6.18.5 || exit 1

# The checks run in $WT itself (PATCH_TREE): the tinyconfig build below is
# of its sources.  One test gives them another worktree to show that
# KERNEL_DIR is never checked out.
export KERNEL_DIR=$WT PATCH_TREE=$WT QUILT_DIR=$T/quilt BUILD_DIR=$T/build SERIES_BRANCH=wb-test
# Not the user's result cache, nor the repository's per-patch options and
# list of files not compiled here (the tests that need some give their own).
export WB_CACHE=$T/cache PER_PATCH_CONFIG=/dev/null NOT_COMPILED=/dev/null
export GIT_AUTHOR_NAME="Ada Tester" GIT_AUTHOR_EMAIL=ada@example.org
export GIT_COMMITTER_NAME="Ada Tester" GIT_COMMITTER_EMAIL=ada@example.org
mkdir -p "$QUILT_DIR"

k() { git -C "$WT" "$@"; }
k checkout -q -B wb-test v6.18.5

# A clean patch: a comment clarified in lib/cmdline.c.
sed -i '0,/^ \*	get_option - Parse integer from an option string/s//&\n *	(the first integer only)/' \
	"$WT/lib/cmdline.c"
k commit -q -a -s -m "lib/cmdline: say that get_option() parses one integer" \
	-m "The kernel-doc does not say which integer get_option() returns
when the string holds several; say it is the first."
k notes --ref=refs/notes/wb-topic add -m good HEAD

# A bad patch: style error, kernel-doc naming a parameter that does not
# exist, no Signed-off-by.
cat >>"$WT/lib/cmdline.c" <<'EOF'

/**
 * wb_test_double() - Double a value
 * @y: the value
 *
 * Return: twice @x.
 */
int wb_test_double(int x)
{
	if(x > 0)
		return 2 * x;
	return 2 * x;
}
EOF
k commit -q -a -m "lib/cmdline: add wb_test_double()" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m bad HEAD

# A patch whose only kernel-doc problem is a second copy of a warning the
# file already has (the same text once line numbers are gone).
cat >>"$WT/lib/cmdline.c" <<'EOF'

/**
 * wb_test_double() - Double a value
 * @y: the value
 *
 * Return: twice @x.
 */
int wb_test_double(int x);
EOF
k commit -q -a -s -m "lib/cmdline: declare wb_test_double() again" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m dup HEAD

"$TOP/scripts/export" >"$T/export.log" 2>&1
# Cover letters: the good topic gets words, the bad one keeps placeholders.
sed -i -e 's/\*\*\* SUBJECT HERE \*\*\*/lib\/cmdline: a clearer comment/' \
	-e 's/\*\*\* BLURB HERE \*\*\*/One comment./' \
	"$QUILT_DIR/patches/good/0000-cover-letter.patch"

n=0
failed=0
result() { # name cmd...
	n=$((n + 1))
	if "${@:2}"; then
		echo "ok $n $1"
	else
		failed=$((failed + 1))
		echo "not ok $n $1"
	fi
}
rec() { # topic check: the record's "passed failed" fields
	awk -F'\t' -v t="$1" -v c="$2" '$1 == t && $2 == c { print $4, $5 }' \
		"$BUILD_DIR/results/patches.tsv"
}

CHECK_BUILD=0 "$TOP/scripts/check-patches" >"$T/check.log" 2>&1
rc=$?
result "check-patches fails on the bad patch" [ $rc != 0 ]
result "clean patch passes sob, checkpatch and kernel-doc" \
	[ "$(rec good sob)$(rec good checkpatch)$(rec good kernel-doc)" = "1 01 01 0" ]
result "missing Signed-off-by is found" [ "$(rec bad sob)" = "0 1" ]
result "checkpatch SPACING error is found" \
	grep -q 'ERROR:SPACING' "$BUILD_DIR/logs/patches/0001-lib-cmdline-add-wb_test_double.patch.checkpatch"
result "wrong kernel-doc parameter is found" \
	bash -c "[ \"$(rec bad kernel-doc)\" = '0 1' ] && grep -q \"'x' not described\" \
		'$BUILD_DIR/logs/patches/0001-lib-cmdline-add-wb_test_double.patch.kernel-doc'"

# An accepted exception silences exactly the listed types of that patch.
types=$(grep -oE '(ERROR|WARNING|CHECK):[A-Z_]+' \
	"$BUILD_DIR/logs/patches/0001-lib-cmdline-add-wb_test_double.patch.checkpatch" |
	cut -d: -f2 | sort -u)
for t in $types; do
	printf '0001-lib-cmdline-add-wb_test_double.patch %s accepted for the test\n' "$t"
done >"$QUILT_DIR/checkpatch.exceptions"
CHECK_BUILD=0 "$TOP/scripts/check-patches" >"$T/check2.log" 2>&1
result "listed checkpatch exceptions are accepted" [ "$(rec bad checkpatch)" = "1 0" ]
result "a second identical kernel-doc warning is new" [ "$(rec dup kernel-doc)" = "0 1" ]

# Tools that cannot run fail the check instead of passing it.
CHECKPATCH=$T/no-such-checkpatch.pl CHECK_BUILD=0 "$TOP/scripts/check-patches" >"$T/check3.log" 2>&1
result "checkpatch that cannot run fails" \
	bash -c "[ \"$(rec good checkpatch)\" = '0 1' ] &&
		grep -q 'did not run to the end' '$BUILD_DIR/results/patches.tsv'"
# A checkpatch that dies half way: a finding so far, no total line.
printf '%s\n' 'print "x.patch:1: WARNING:X: half a report\n"; exit 2;' >"$T/dying.pl"
CHECKPATCH=$T/dying.pl CHECK_BUILD=0 "$TOP/scripts/check-patches" >"$T/check4.log" 2>&1
result "checkpatch that dies half way fails" [ "$(rec good checkpatch)" = "0 1" ]
KERNELDOC=$T/no-such-kernel-doc.pl CHECK_BUILD=0 "$TOP/scripts/check-patches" >"$T/check5.log" 2>&1
result "kernel-doc that cannot run fails" \
	bash -c "[ \"$(rec good kernel-doc)\" = '0 1' ] &&
		grep -q 'kernel-doc did not run' '$BUILD_DIR/results/patches.tsv'"

# The checks leave KERNEL_DIR alone: its branch stays checked out while
# they run (a checkpatch stand-in looks), and an uncommitted edit stays.
k checkout -q wb-test
echo '/* an edit in progress */' >>"$WT/lib/cmdline.c"
cat >"$T/spy.pl" <<EOF
system("git -C '$WT' symbolic-ref -q HEAD >>'$T/head-during' || echo detached >>'$T/head-during'");
exec('perl', '$WT/scripts/checkpatch.pl', @ARGV);
EOF
git -C "$MAIL_TREE" checkout -q -f --detach v6.18.5 2>/dev/null ||
	git -C "$REAL_KERNEL" worktree add -q --detach "$MAIL_TREE" v6.18.5
PATCH_TREE=$MAIL_TREE CHECKPATCH=$T/spy.pl CHECK_BUILD=0 WB_PATCH_CACHE=0 "$TOP/scripts/check-patches" \
	>"$T/check-tree.log" 2>&1
result "the per-patch checks never check out KERNEL_DIR" \
	bash -c "[ \"\$(sort -u '$T/head-during')\" = refs/heads/wb-test ] &&
		[ \"\$(grep -c . '$T/head-during')\" = 3 ] &&
		[ \"\$(git -C '$WT' symbolic-ref HEAD)\" = refs/heads/wb-test ] &&
		tail -1 '$WT/lib/cmdline.c' | grep -qF 'an edit in progress' &&
		[ \"$(rec good checkpatch)\" = '1 0' ]"
k checkout -q -f wb-test

"$TOP/scripts/mail" --check good bad >"$T/mail.log" 2>&1
result "mail: b4 mails of the clean topic read back, placeholder cover letter refused" \
	bash -c "grep -qP '^good\tmail\tgood\t1\t0' '$BUILD_DIR/results/mail.tsv' &&
		grep -qP '^bad\tmail\tbad\t0\t1\t0\tcover letter: .*placeholder' '$BUILD_DIR/results/mail.tsv' &&
		grep -q '^X-Mailer: b4 ' '$BUILD_DIR/mail/good/0001-lib-cmdline-say-that-get_option-parses-one-integer.eml' &&
		grep -q '^To: ' '$BUILD_DIR/mail/good/0001-lib-cmdline-say-that-get_option-parses-one-integer.eml' &&
		git -C '$WT' rev-parse -q --verify b4/good >/dev/null"
# b4 drops cover letter lines that start with '#': the read-back sees it.
cp "$QUILT_DIR/patches/good/0000-cover-letter.patch" "$T/cover.keep"
sed -i 's/^One comment\.$/&\n#include <linux\/kernel.h> is not needed./' \
	"$QUILT_DIR/patches/good/0000-cover-letter.patch"
"$TOP/scripts/mail" --check good >"$T/mail1.log" 2>&1
result "mail: a cover letter b4 changes fails" \
	grep -qP '^good\tmail\tgood\t0\t1\t0\tcover letter text differs' "$BUILD_DIR/results/mail.tsv"
cp "$T/cover.keep" "$QUILT_DIR/patches/good/0000-cover-letter.patch"

GET_MAINTAINER=$T/no-such-get_maintainer.pl "$TOP/scripts/mail" --check good \
	>"$T/mail2.log" 2>&1
result "mail: get_maintainer.pl that cannot run fails" \
	grep -qP '^good\tmail\tgood\t0\t1\t0\tget_maintainer.pl failed' "$BUILD_DIR/results/mail.tsv"
printf '%s\n' 'exit 0;' >"$T/silent.pl"
GET_MAINTAINER=$T/silent.pl "$TOP/scripts/mail" --check good >"$T/mail3.log" 2>&1
result "mail: no recipient fails" \
	grep -qP '^good\tmail\tgood\t0\t1\t0\tget_maintainer.pl named no recipient' \
	"$BUILD_DIR/results/mail.tsv"

# A prerequisite's own prerequisites come first: dup requires bad, which
# requires good, so dup's mails apply to the base plus good and bad.
cp "$QUILT_DIR/series" "$T/series.keep"
cp "$QUILT_DIR/patches/dup/0000-cover-letter.patch" "$T/dup-cover.keep"
sed -i -e 's/^# bad: .*/# bad: a function (requires: good)/' \
	-e 's/^# dup: .*/# dup: a declaration (requires: bad)/' "$QUILT_DIR/series"
sed -i -e 's/\*\*\* SUBJECT HERE \*\*\*/lib\/cmdline: a declaration/' \
	-e 's/\*\*\* BLURB HERE \*\*\*/One declaration./' \
	"$QUILT_DIR/patches/dup/0000-cover-letter.patch"
"$TOP/scripts/mail" --check dup >"$T/mail4.log" 2>&1
result "mail: a topic's mails apply onto its prerequisites' prerequisites too" \
	bash -c "grep -qP '^dup\tmail\tdup\t1\t0' '$BUILD_DIR/results/mail.tsv' &&
		grep -qF 'apply to refs/tags/v6.18.5 + good bad as' '$T/mail4.log' &&
		git -C '$WT' log --format=%s b4/dup |
			grep -qxF 'lib/cmdline: say that get_option() parses one integer'"
cp "$T/series.keep" "$QUILT_DIR/series"
cp "$T/dup-cover.keep" "$QUILT_DIR/patches/dup/0000-cover-letter.patch"

# The build check: a scratch quilt of a patch to kernel/dma/direct.c (in
# tinyconfig) and one to block/blk-mq-dma.c (CONFIG_BLOCK is off there), on
# a tinyconfig build directory kept between runs.
KOUT_T=$TOP/build/wb-test-kout
k checkout -q -B wb-test v6.18.5
sed -i '0,/^#include/s//\/* wb-test *\/\n&/' "$WT/kernel/dma/direct.c"
k commit -q -a -s -m "dma-direct: a comment" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m built HEAD
sed -i '0,/^#include/s//\/* wb-test *\/\n&/' "$WT/block/blk-mq-dma.c"
k commit -q -a -s -m "block: a comment" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m unbuilt HEAD
# A patch adding a file under a Kconfig option of its own, which the
# configuration (like the test kernel's fragment) enables.
printf '\nconfig WB_TEST_OPTION\n\tbool "wb test"\n' >>"$WT/kernel/dma/Kconfig"
# shellcheck disable=SC2016 # a Makefile line
printf 'obj-$(CONFIG_WB_TEST_OPTION) += wb_test.o\n' >>"$WT/kernel/dma/Makefile"
printf '// SPDX-License-Identifier: GPL-2.0\nint wb_test_option;\n' >"$WT/kernel/dma/wb_test.c"
k add kernel/dma/wb_test.c
k commit -q -a -s -m "dma: a file under a new option" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m newoption HEAD
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export2.log" 2>&1
mkdir -p "$KOUT_T"
[ -f "$KOUT_T/.config" ] ||
	make -C "$WT" O="$KOUT_T" ARCH=x86_64 tinyconfig >"$T/tiny.log" 2>&1
grep -qx 'CONFIG_WB_TEST_OPTION=y' "$KOUT_T/.config" ||
	echo 'CONFIG_WB_TEST_OPTION=y' >>"$KOUT_T/.config"
# The "full build" of the series' tip that the checks read which objects
# the configuration compiles: here the directories of the three files.
tinybuild() {
	make -C "$WT" O="$KOUT_T" ARCH=x86_64 CC="ccache gcc" HOSTCC="ccache gcc" \
		-j"$(nproc)" W=1 kernel/dma/ block/ >"$T/tinybuild.log" 2>&1
}
tinybuild
BUILD_DIR=$T/build2 KOUT=$KOUT_T "$TOP/scripts/check-patches" >"$T/check6.log" 2>&1
rec2() {
	awk -F'\t' -v t="$1" '$1 == t && $2 == "build" { print $4, $5, $7 }' \
		"$T/build2/results/patches.tsv"
}
result "build: a compiled file passes" bash -c "[[ \"$(rec2 built)\" == '1 0 '* ]]"
result "build: a file the configuration does not compile fails, by name" \
	bash -c "[[ \"$(rec2 unbuilt)\" == '0 1 not compiled by the test kernel'*'block/blk-mq-dma.c'* ]]"
result "build: a file under an option the patch adds is compiled" \
	bash -c "[[ \"$(rec2 newoption)\" == '1 0 '* ]]"

# The same file named in a list of files not compiled here: skipped with the
# list's reason, not passed; the patch's other files are still built.
printf '# comment\nblock/blk-mq-dma.c another architecture'"'"'s file, for the test\n' \
	>"$T/not-compiled.list"
NOT_COMPILED=$T/not-compiled.list BUILD_DIR=$T/build2nc KOUT=$KOUT_T \
	"$TOP/scripts/check-patches" >"$T/check6nc.log" 2>&1
rec2nc() {
	awk -F'\t' -v t="$1" '$1 == t && $2 == "build" { print $3 "|" $4, $5, $6, $7 }' \
		"$T/build2nc/results/patches.tsv"
}
result "build: a file listed as not compiled here is skipped with the reason, never passed" \
	bash -c "[[ \"$(rec2nc unbuilt | head -n 1)\" == *': block/blk-mq-dma.c|0 0 1 not compiled here: another architecture'*'s file, for the test' ]] &&
		[ \"$(rec2nc unbuilt | grep -c '|1 0 0\|0 1 0')\" = 0 ] &&
		grep -q 'not compiled here: block/blk-mq-dma.c' '$T/build2nc/logs/patches/'*block*.build"

# Incremental: the same inputs again reuse a passed patch's results, and
# check a failed one again; a changed check input checks everything again.
BUILD_DIR=$T/build2 KOUT=$KOUT_T "$TOP/scripts/check-patches" >"$T/check7.log" 2>&1
result "an unchanged patch that passed reuses its results, a failed one is checked again" \
	bash -c "grep -q '0001-dma-direct-a-comment.patch (unchanged: earlier result)' '$T/check7.log' &&
		! grep -q '0001-block-a-comment.patch (unchanged' '$T/check7.log' &&
		[[ \"$(rec2 built)\" == '1 0 '* ]] &&
		[[ \"$(rec2 unbuilt)\" == '0 1 not compiled'* ]]"
echo '# a change' >>"$QUILT_DIR/checkpatch.exceptions"
BUILD_DIR=$T/build2 KOUT=$KOUT_T "$TOP/scripts/check-patches" >"$T/check8.log" 2>&1
result "a changed check input checks every patch again" \
	bash -c "! grep -q 'unchanged: earlier result' '$T/check8.log' &&
		[[ \"$(rec2 built)\" == '1 0 '* ]]"

# A header that kernel/dma/direct.c includes gains a warning: its dependents
# are rebuilt and the warning is new; with every header counted as wide
# (WIDE_HEADER=0), only the series' own objects would be, and there are
# none, so nothing is built, and the log says why.
k checkout -q -B wb-test v6.18.5
sed -i '0,/^#include/s//static inline int wb_test_warn(void) { int wb_unused; return 0; }\n&/' \
	"$WT/include/linux/dma-direct.h"
k commit -q -a -s -m "dma-direct: a warning in a header" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m hdr HEAD
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export4.log" 2>&1
tinybuild
BUILD_DIR=$T/build4 KOUT=$KOUT_T "$TOP/scripts/check-patches" >"$T/check10.log" 2>&1
result "build: a warning in a header is found in the objects that include it" \
	bash -c "[[ \"\$(awk -F'\t' '\$2 == \"build\" { print \$4, \$5, \$7 }' '$T/build4/results/patches.tsv')\" == '0 1 new W=1 warnings'* ]] &&
		grep -q 'wb_unused' '$T/build4/logs/patches/0001-dma-direct-a-warning-in-a-header.patch.new-warnings' &&
		grep -q 'header include/linux/dma-direct.h: the [1-9][0-9]* object(s) of the full build that include it are rebuilt' \
			'$T/build4/logs/patches/0001-dma-direct-a-warning-in-a-header.patch.build'"
WIDE_HEADER=0 BUILD_DIR=$T/build5 KOUT=$KOUT_T "$TOP/scripts/check-patches" >"$T/check11.log" 2>&1
result "build: of a wide header's dependents only the series' objects are rebuilt" \
	bash -c "awk -F'\t' '\$2 == \"build\" { print \$4, \$5, \$6 }' '$T/build5/results/patches.tsv' | grep -qx '0 0 1' &&
		grep -q 'header include/linux/dma-direct.h: [1-9][0-9]* objects of the full build include it (over 0): the 0 of them that the series touches are rebuilt' \
			'$T/build5/logs/patches/0001-dma-direct-a-warning-in-a-header.patch.build'"

# A series of one header that nothing includes: no directory to build, so
# no baseline (not make's default target, the whole kernel), and the patch
# is skipped by name rather than passed.
k checkout -q -B wb-test v6.18.5
printf '/* SPDX-License-Identifier: GPL-2.0 */\n#define WB_TEST 1\n' >"$WT/include/linux/wb_test.h"
k add include/linux/wb_test.h
k commit -q -s -m "linux: a header of its own" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m header HEAD
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export3.log" 2>&1
BUILD_DIR=$T/build3 KOUT=$KOUT_T timeout 300 "$TOP/scripts/check-patches" >"$T/check9.log" 2>&1
result "build: a header nothing includes is skipped by name; nothing else is built" \
	bash -c "awk -F'\t' '\$2 == \"build\" { print \$4, \$5, \$6, \$7 }' '$T/build3/results/patches.tsv' |
		grep -q '^0 0 1 nothing built .*include/linux/wb_test.h' &&
		! grep -q vmlinux '$T/build3/logs/patches/baseline.log'"

# A variant (scripts/build variant): the full build's configuration with an
# option turned off.  A patch whose code needs the option fails the
# variant's build; with a stub it passes, and a file that only the option
# compiles (an #error without it) is left out, by name, not compiled.
k checkout -q -B wb-test v6.18.5
printf '\nconfig WB_TEST_OPTION\n\tbool "wb test"\n' >>"$WT/kernel/dma/Kconfig"
# shellcheck disable=SC2016 # a Makefile line
printf 'obj-$(CONFIG_WB_TEST_OPTION) += wb_test.o\n' >>"$WT/kernel/dma/Makefile"
printf '// SPDX-License-Identifier: GPL-2.0\n#ifndef CONFIG_WB_TEST_OPTION\n#error only with its option\n#endif\nint wb_test_option;\n' \
	>"$WT/kernel/dma/wb_test.c"
printf '#ifdef CONFIG_WB_TEST_OPTION\nint wb_test_fn(void);\n#endif\nstatic int __maybe_unused wb_test_call(void) { return wb_test_fn(); }\n' \
	>>"$WT/kernel/dma/direct.c"
k add kernel/dma/wb_test.c
k commit -q -a -s -m "dma: code that needs an option" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m variant HEAD
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export6.log" 2>&1
tinybuild
mkdir -p "$T/vars" "$T/build6"
ln -s "$KOUT_T" "$T/build6/kernel"
printf '# CONFIG_WB_TEST_OPTION is not set\n' >"$T/vars/wboff.config"
WB_VARIANTS=$T/vars BUILD_DIR=$T/build6 "$TOP/scripts/build" variant wboff >"$T/variant1.log" 2>&1
result "variant: code that does not build without the option fails the variant" \
	bash -c "grep -q 'variant wboff failed' '$T/variant1.log' &&
		grep -q 'implicit declaration of function .wb_test_fn' '$T/build6/logs/variant-wboff.log.build'"
# The same per patch: a fragment naming the patch's topic on its
# "# per-patch:" line builds the patch again with the variant.
printf '# per-patch: other variant\n' >>"$T/vars/wboff.config"
recv() { # dir: the variant build record's "passed failed skipped note"
	awk -F'\t' '$2 == "build" && $3 ~ / \[wboff\]$/ { print $4, $5, $6, $7 }' \
		"$1/results/patches.tsv"
}
# Their build directories of their own ($T/kout6-wboff for the variant):
# the tinyconfig build stays the full build the next tests read.
rm -rf "$T/kout6"
mkdir -p "$T/kout6"
cp "$KOUT_T/.config" "$T/kout6/.config"
WB_VARIANTS=$T/vars BUILD_DIR=$T/build6p KOUT=$T/kout6 DEPS_KOUT=$KOUT_T \
	"$TOP/scripts/check-patches" >"$T/check-variant1.log" 2>&1
result "per-patch variant: a patch that does not build without the option fails" \
	bash -c "[[ \"$(recv "$T/build6p")\" == '0 1 0 build failed: '* ]] &&
		grep -q 'implicit declaration of function .wb_test_fn' \
			'$T/build6p/logs/patches/0001-dma-code-that-needs-an-option.patch.build-wboff'"
k checkout -q -f wb-test
sed -i 's/^int wb_test_fn(void);$/&\n#else\nstatic inline int wb_test_fn(void) { return 0; }/' "$WT/kernel/dma/direct.c"
k commit -q -a --amend --no-edit
WB_VARIANTS=$T/vars BUILD_DIR=$T/build6 "$TOP/scripts/build" variant wboff >"$T/variant2.log" 2>&1
result "variant: with a stub it passes; a file only the option compiles is left out" \
	bash -c "grep -q 'variant wboff: ok' '$T/variant2.log' &&
		grep -qx 'compiled: kernel/dma/direct.o' '$T/build6/logs/variant-wboff.log.objects' &&
		grep -qx 'not in this configuration: kernel/dma/wb_test.o' '$T/build6/logs/variant-wboff.log.objects'"
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export6b.log" 2>&1
WB_VARIANTS=$T/vars BUILD_DIR=$T/build6q KOUT=$T/kout6 DEPS_KOUT=$KOUT_T \
	"$TOP/scripts/check-patches" >"$T/check-variant2.log" 2>&1
k checkout -q -f wb-test
result "per-patch variant: with the stub it passes; the file only the option compiles is left out" \
	bash -c "[ \"$(recv "$T/build6q")\" = '1 0 0 1 object(s) with wboff' ] &&
		grep -qx 'variant wboff compiles 1 of the 2 object(s) of the build check: kernel/dma/direct.o' \
			'$T/build6q/logs/patches/0001-dma-code-that-needs-an-option.patch.build-wboff'"

# An option a later patch removes: the per-patch builds start from the
# tip's configuration, which no longer has it, so the patch before the
# removal does not build; PER_PATCH_CONFIG gives that patch the option back.
k checkout -q -B wb-test v6.18.5
printf '\nconfig WB_TEST_OPTION\n\tbool "wb test"\n' >>"$WT/kernel/dma/Kconfig"
# shellcheck disable=SC2016 # a Makefile line
printf 'obj-$(CONFIG_WB_TEST_OPTION) += wb_test.o\n' >>"$WT/kernel/dma/Makefile"
printf '// SPDX-License-Identifier: GPL-2.0\n#ifndef CONFIG_WB_TEST_OPTION\n#error only with its option\n#endif\nint wb_test_option;\n' \
	>"$WT/kernel/dma/wb_test.c"
k add kernel/dma/wb_test.c
k commit -q -a -s -m "dma: a file under an option" -m "For the test."
k notes --ref=refs/notes/wb-topic add -m removed HEAD
k checkout -q v6.18.5 -- kernel/dma/Kconfig
# shellcheck disable=SC2016 # a Makefile line
sed -i 's/^obj-$(CONFIG_WB_TEST_OPTION) += wb_test.o$/obj-y += wb_test.o/' "$WT/kernel/dma/Makefile"
printf '// SPDX-License-Identifier: GPL-2.0\nint wb_test_option;\n' >"$WT/kernel/dma/wb_test.c"
k commit -q -a -s -m "dma: the file without its option" -m "For the test."
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export7.log" 2>&1
tinybuild
rec7() { # dir: the build records' "passed failed" fields, in patch order
	awk -F'\t' '$2 == "build" { printf "%s %s;", $4, $5 }' "$1/results/patches.tsv"
}
PER_PATCH_CONFIG=/dev/null BUILD_DIR=$T/build7 KOUT=$KOUT_T "$TOP/scripts/check-patches" \
	>"$T/check10.log" 2>&1
printf 'CONFIG_WB_TEST_OPTION=y\n' >"$T/per-patch.config"
PER_PATCH_CONFIG=$T/per-patch.config BUILD_DIR=$T/build8 KOUT=$KOUT_T \
	"$TOP/scripts/check-patches" >"$T/check11.log" 2>&1
result "build: an option a later patch removes comes back from PER_PATCH_CONFIG" \
	bash -c "[ '$(rec7 "$T/build7")' = '0 1;1 0;' ] &&
		grep -q 'only with its option' '$T/build7/logs/patches/0001-dma-a-file-under-an-option.patch.build' &&
		[ '$(rec7 "$T/build8")' = '1 0;1 0;' ]"

# A driver the test kernel leaves out: block/ (CONFIG_BLOCK is off in the
# tinyconfig build), which PER_PATCH_CONFIG turns on for the per-patch
# builds; and a file kbuild never compiles alone: kernel/sched/idle.c, which
# kernel/sched/build_policy.c #includes (its object is the includer's).
# And a file a sibling directory's Makefile compiles through "..":
# drivers/usb/misc/onboard_usb_dev_pdevs.c, part of usbcore as
# drivers/usb/core/../misc/onboard_usb_dev_pdevs.o (as amdgpu compiles
# amdkfd's files), with USB and its options in PER_PATCH_CONFIG.
# The per-patch builds get a directory of their own (DEPS_KOUT stays the
# tinyconfig build), so the option does not leak into it.
k checkout -q -B wb-test v6.18.5
sed -i '0,/^#include/s//\/* wb-test *\/\n&/' "$WT/block/blk-mq-dma.c"
k commit -q -a -s -m "block: a comment" -m "For the test."
k notes --ref=refs/notes/wb-topic add -f -m leftout HEAD >/dev/null 2>&1
sed -i '0,/^#include/s//\/* wb-test *\/\n&/' "$WT/kernel/sched/idle.c"
k commit -q -a -s -m "sched/idle: a comment" -m "For the test."
sed -i '0,/^#include/s//\/* wb-test *\/\n&/' "$WT/drivers/usb/misc/onboard_usb_dev_pdevs.c"
k commit -q -a -s -m "usb: misc: onboard_usb_dev: a comment" -m "For the test."
sed -i '0,/^#include/s//\/* wb-test *\/\n&/' "$WT/lib/zstd/decompress/huf_decompress.c"
k commit -q -a -s -m "lib/zstd: a comment" -m "For the test."
rm -rf "$QUILT_DIR"
mkdir -p "$QUILT_DIR"
"$TOP/scripts/export" >"$T/export9.log" 2>&1
make -C "$WT" O="$KOUT_T" ARCH=x86_64 CC="ccache gcc" HOSTCC="ccache gcc" \
	-j"$(nproc)" W=1 kernel/dma/ block/ kernel/sched/ >"$T/tinybuild9.log" 2>&1
rec9() { # dir: the build records' "passed failed note" fields, in patch order
	awk -F'\t' '$2 == "build" { printf "%s %s %s;", $4, $5, $7 }' "$1/results/patches.tsv"
}
for v in 9 10; do
	rm -rf "$T/kout$v"
	mkdir -p "$T/kout$v"
	cp "$KOUT_T/.config" "$T/kout$v/.config"
done
# An empty PER_PATCH_CONFIG (a file: /dev/null would skip the search for
# what it compiles).
: >"$T/per-patch-none.config"
PER_PATCH_CONFIG=$T/per-patch-none.config BUILD_DIR=$T/build9 KOUT=$T/kout9 DEPS_KOUT=$KOUT_T \
	"$TOP/scripts/check-patches" >"$T/check12.log" 2>&1
printf 'CONFIG_BLOCK=y\nCONFIG_OF=y\nCONFIG_USB_SUPPORT=y\nCONFIG_USB=y\nCONFIG_USB_ONBOARD_DEV=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_ZSTD=y\n' \
	>"$T/per-patch-block.config"
PER_PATCH_CONFIG=$T/per-patch-block.config BUILD_DIR=$T/build10 KOUT=$T/kout10 \
	DEPS_KOUT=$KOUT_T "$TOP/scripts/check-patches" >"$T/check13.log" 2>&1
check28() {
	[[ "$(rec9 "$T/build9")" == '0 1 not compiled by'*'block/blk-mq-dma.c'*';1 0 1 object(s);0 1 not compiled by'*'drivers/usb/misc/onboard_usb_dev_pdevs.c'*';'* ]] &&
		[[ "$(rec9 "$T/build10")" == '1 0 1 object(s);1 0 1 object(s);1 0 1 object(s);'* ]] &&
		[ -f "$T/kout10/block/blk-mq-dma.o" ] && [ -f "$T/kout10/kernel/sched/build_policy.o" ] &&
		[ -f "$T/kout10/drivers/usb/misc/onboard_usb_dev_pdevs.o" ] &&
		grep -q 'drivers/usb/core/../misc/onboard_usb_dev_pdevs.o' "$T/check13.log"
}
result "build: a driver the test kernel leaves out is compiled with PER_PATCH_CONFIG; an included .c file through its includer; a file of a sibling's Makefile under its name there" \
	check28
# lib/zstd/decompress/ has no Makefile: lib/zstd/'s compiles its files, as
# xe's compiles display/*.o.  Its objects are the parent's, compiled only
# when the parent's configuration compiles them (ZSTD_DECOMPRESS: off in
# tinyconfig, on through RD_ZSTD in PER_PATCH_CONFIG), and built by name
# with the parent's flags.
check32() {
	[[ "$(rec9 "$T/build9" | cut -d';' -f4)" == '0 1 not compiled by'*'lib/zstd/decompress/huf_decompress.c'* ]] &&
		[ "$(rec9 "$T/build10" | cut -d';' -f4)" = '1 0 1 object(s)' ] &&
		[ -f "$T/kout10/lib/zstd/decompress/huf_decompress.o" ]
}
result "build: an object of a directory without a Makefile is its parent's: not compiled when the parent's configuration leaves it out, built by name when it compiles it" \
	check32

if [ "$failed" != 0 ]; then
	for f in "$T"/*.log "$BUILD_DIR"/results/*.tsv \
		"$BUILD_DIR"/logs/patches/*.checkpatch; do
		sed "s|^|# $(basename "$f"): |" "$f"
	done
fi
echo "# patch-checks: $((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of the quilt scripts (fetch-base, apply, export) on a scratch kernel
# repository and tarball, so they run in seconds.  Prints KTAP.

set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

export GIT_AUTHOR_NAME="Ada Tester" GIT_AUTHOR_EMAIL=ada@example.org
export GIT_COMMITTER_NAME="Ada Tester" GIT_COMMITTER_EMAIL=ada@example.org
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home
# The caches are the scratch HOME's, whatever the caller's environment says.
unset WB_CACHE XDG_CACHE_HOME
mkdir -p "$HOME"
git config --global init.defaultBranch master

# shellcheck source=scripts/tests/ktap.sh
. "$TOP/scripts/tests/ktap.sh"
ktap_plan 12

# A scratch "release tarball" and the base description that matches it.
mk_tarball() {
	mkdir -p "$T/src/linux-6.18.5/mm"
	printf 'VERSION = 6\nPATCHLEVEL = 18\nSUBLEVEL = 5\nEXTRAVERSION =\n' \
		>"$T/src/linux-6.18.5/Makefile"
	for i in $(seq 1 40); do echo "line $i"; done >"$T/src/linux-6.18.5/mm/a.c"
	for i in $(seq 1 40); do echo "other $i"; done >"$T/src/linux-6.18.5/mm/b.c"
	# An executable and a symbolic link: their modes are in the tree.
	printf '#!/bin/sh\n' >"$T/src/linux-6.18.5/mm/run.sh"
	chmod 755 "$T/src/linux-6.18.5/mm/run.sh"
	ln -s b.c "$T/src/linux-6.18.5/mm/link.c"
	tar -C "$T/src" -cJf "$T/base.tar.xz" linux-6.18.5
	tree=$(cd "$T/src/linux-6.18.5" && git init -q . && git add -A -f &&
		git write-tree && rm -rf .git)
	sed -e "s/^TARBALL_SHA256=.*/TARBALL_SHA256=$(sha256sum "$T/base.tar.xz" | cut -d' ' -f1)/" \
		-e "s/^TARBALL_TREE=.*/TARBALL_TREE=$tree/" \
		-e "/^IMPORT_COMMIT=/d" \
		"$TOP/scripts/base.env" >"$T/base.env"
}

export WB_BASE_ENV=$T/base.env WB_OFFLINE=1 KERNEL_DIR=$T/kernel QUILT_DIR=$T/quilt
mkdir -p "$QUILT_DIR"
mk_tarball

t_base_import() {
	KERNEL_TARBALL=$T/base.tar.xz "$TOP/scripts/fetch-base" &&
		first=$(git -C "$KERNEL_DIR" rev-parse v6.18.5) &&
		KERNEL_TARBALL=$T/base.tar.xz "$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'already present' "$T/err" &&
		[ "$(git -C "$KERNEL_DIR" rev-parse v6.18.5)" = "$first" ] &&
		# A second machine importing the same tarball gets the same commit.
		KERNEL_DIR=$T/kernel2 KERNEL_TARBALL=$T/base.tar.xz \
			"$TOP/scripts/fetch-base" &&
		[ "$(git -C "$T/kernel2" rev-parse v6.18.5)" = "$first" ]
}

t_base_corrupt() {
	cp "$T/base.tar.xz" "$T/bad.tar.xz"
	printf 'X' | dd of="$T/bad.tar.xz" bs=1 seek=100 conv=notrunc 2>/dev/null
	! KERNEL_DIR=$T/k3 KERNEL_TARBALL=$T/bad.tar.xz \
		"$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q "expected $(sed -n 's/^TARBALL_SHA256=//p' "$T/base.env")" "$T/err" &&
		! git -C "$T/k3" rev-parse -q --verify v6.18.5 >/dev/null 2>&1
}

t_base_wrong_tree() {
	# Right checksum, wrong content: the tree check catches it.
	sed "s/^TARBALL_TREE=.*/TARBALL_TREE=0123456789012345678901234567890123456789/" \
		"$T/base.env" >"$T/base-wrongtree.env"
	! WB_BASE_ENV=$T/base-wrongtree.env KERNEL_DIR=$T/k4 \
		KERNEL_TARBALL=$T/base.tar.xz "$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'expected 0123456789012345678901234567890123456789' "$T/err"
}

t_base_missing() {
	! KERNEL_DIR=$T/k5 KERNEL_TARBALL=$T/nonexistent.tar.xz \
		"$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'nonexistent.tar.xz does not exist' "$T/err"
}

# A second checkout on the machine takes the import from the cache (and
# gets the same commit); a damaged cache is noticed and the tarball
# imported instead.
t_base_cache() {
	local want
	want=$(git -C "$KERNEL_DIR" rev-parse v6.18.5)
	sed "s/^TARBALL_TREE=.*/&\nIMPORT_COMMIT=$want/" "$T/base.env" >"$T/base-c.env"
	WB_BASE_ENV=$T/base-c.env KERNEL_DIR=$T/kc1 KERNEL_TARBALL=$T/base.tar.xz \
		"$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'keeping the base import' "$T/err" &&
		WB_BASE_ENV=$T/base-c.env KERNEL_DIR=$T/kc2 KERNEL_TARBALL=$T/nonexistent \
			"$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'the base import from .*verifying' "$T/err" &&
		[ "$(git -C "$T/kc2" rev-parse v6.18.5)" = "$want" ] &&
		[ "$(cat "$T/kc2/mm/a.c")" = "$(cat "$T/kc1/mm/a.c")" ] || return 1
	local pack
	pack=$(ls "$HOME"/.cache/linux-wb/base/*/objects.pack)
	printf 'XXXX' | dd of="$pack" bs=1 seek=200 conv=notrunc 2>/dev/null
	WB_BASE_ENV=$T/base-c.env KERNEL_DIR=$T/kc3 KERNEL_TARBALL=$T/base.tar.xz \
		"$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'is damaged: importing the tarball instead' "$T/err" &&
		[ "$(git -C "$T/kc3" rev-parse v6.18.5)" = "$want" ]
}

# Two topics of commits on the series branch, as a developer makes them.
mk_topics() {
	local k=$KERNEL_DIR
	git -C "$k" checkout -q -B series v6.18.5
	sed -i 's/line 5$/line five/' "$k/mm/a.c"
	git -C "$k" commit -q -a -s -m "mm: spell five" -m "Because words read better."
	git -C "$k" notes --ref=refs/notes/wb-topic add -m alpha HEAD
	sed -i 's/line 30$/line thirty/' "$k/mm/a.c"
	git -C "$k" commit -q -a -s -m "mm: spell thirty" -m "Consistency."
	sed -i 's/other 7$/other seven/' "$k/mm/b.c"
	git -C "$k" commit -q -a -s -m "mm/b: spell seven" -m "Also here."
	git -C "$k" notes --ref=refs/notes/wb-topic add -m beta HEAD
}

t_export_new() {
	mk_topics &&
		"$TOP/scripts/export" &&
		[ "$(grep -c '^patches/alpha/' "$QUILT_DIR/series")" = 2 ] &&
		[ "$(grep -c '^patches/beta/' "$QUILT_DIR/series")" = 1 ] &&
		grep -q '^# alpha:' "$QUILT_DIR/series" &&
		grep -q '^base-commit: ' "$QUILT_DIR/patches/alpha/0000-cover-letter.patch"
}

t_cover_kept() {
	local c=$QUILT_DIR/patches/alpha/0000-cover-letter.patch
	sed -i -e 's/\*\*\* SUBJECT HERE \*\*\*/mm: spell numbers/' \
		-e 's/\*\*\* BLURB HERE \*\*\*/Numbers as words.\n\nTwo paragraphs./' "$c"
	sed -i 's/^# alpha: .*/# alpha: numbers spelled out/' "$QUILT_DIR/series"
	cp -r "$QUILT_DIR" "$T/before"
	"$TOP/scripts/export" &&
		diff -r "$T/before" "$QUILT_DIR" &&
		python3 "$TOP/scripts/cover.py" check "$c"
}

t_roundtrip() {
	# apply -> export on an unchanged quilt changes no byte.
	rm -rf "$T/before"
	cp -r "$QUILT_DIR" "$T/before"
	sleep 1	# a new commit date must not leak into the output
	"$TOP/scripts/apply" &&
		"$TOP/scripts/export" &&
		diff -r "$T/before" "$QUILT_DIR" &&
		[ "$(git -C "$KERNEL_DIR" rev-list --count v6.18.5..series)" = 3 ]
}

t_apply_fails_named() {
	local p
	p=$(ls "$QUILT_DIR"/patches/alpha/0002-*.patch)
	cp "$p" "$T/saved.patch"
	sed -i 's/^ line 29$/ line twenty-nine/' "$p"
	! "$TOP/scripts/apply" 2>"$T/err"
	local rc=$?
	cp "$T/saved.patch" "$p"
	[ $rc = 0 ] &&
		grep -q "patches/alpha/$(basename "$p") (patch 2 of 3) does not apply" "$T/err" &&
		grep -q '^failing hunk (mm/a.c' "$T/err" &&
		grep -q '^ line twenty-nine' "$T/err"
}

t_rebase_keeps_topics() {
	# A commit inserted into a topic joins it; reworded commits keep notes.
	local k=$KERNEL_DIR
	"$TOP/scripts/apply" &&
		git -C "$k" -c core.editor=true rebase -q \
			--exec 'true' v6.18.5 &&
		git -C "$k" checkout -q series~1 &&
		sed -i 's/line 40$/line forty/' "$k/mm/a.c" &&
		git -C "$k" commit -q -a -s -m "mm: spell forty" &&
		new=$(git -C "$k" rev-parse HEAD) &&
		git -C "$k" checkout -q series &&
		git -C "$k" rebase -q --onto "$new" series~1 &&
		"$TOP/scripts/export" &&
		[ "$(grep -c '^patches/alpha/' "$QUILT_DIR/series")" = 3 ] &&
		[ "$(grep -c '^patches/beta/' "$QUILT_DIR/series")" = 1 ] &&
		grep -q '^# alpha: numbers spelled out' "$QUILT_DIR/series"
}

# export --check: passes on an unchanged quilt, fails on a changed byte.
t_export_check() {
	local p
	"$TOP/scripts/apply" && "$TOP/scripts/export" --check || return 1
	p=$(ls "$QUILT_DIR"/patches/beta/0001-*.patch)
	cp "$p" "$T/saved.patch"
	sed -i 's/^Also here\.$/Also there./' "$p"
	! "$TOP/scripts/export" --check 2>"$T/err"
	local rc=$?
	cp "$T/saved.patch" "$p"
	[ $rc = 0 ] && grep -q 'differ from a fresh export' "$T/err"
}

# The online route, with a local stand-in for the stable tree: the same
# sources in a commit of its own, tagged v6.18.5.  fetch-base takes it, and
# the quilt made on the tarball import applies and exports the same (but
# for the cover letters' base-commit, which names the base).
t_online_route() {
	local st=$T/stable
	mkdir -p "$st" && tar -C "$st" -xf "$T/base.tar.xz" --strip-components=1 &&
		git -C "$st" init -q && git -C "$st" add -A -f &&
		GIT_COMMITTER_DATE=2026-01-10T00:00:00Z git -C "$st" commit -q -m "Linux 6.18.5" &&
		git -C "$st" tag v6.18.5 &&
		sed -e "s|^STABLE_URL=.*|STABLE_URL=file://$st|" "$T/base.env" >"$T/base-online.env" &&
		echo "IMPORT_COMMIT=$(git -C "$KERNEL_DIR" rev-parse v6.18.5)" >>"$T/base-online.env" &&
		WB_OFFLINE=0 WB_BASE_ENV=$T/base-online.env KERNEL_DIR=$T/k6 \
			"$TOP/scripts/fetch-base" 2>"$T/err" &&
		grep -q 'fetching v6.18.5 from the stable tree' "$T/err" &&
		[ "$(git -C "$T/k6" rev-parse 'v6.18.5^{commit}')" = "$(git -C "$st" rev-parse HEAD)" ] &&
		[ "$(git -C "$T/k6" rev-parse 'v6.18.5^{commit}')" != "$(git -C "$KERNEL_DIR" rev-parse v6.18.5)" ] &&
		WB_BASE_ENV=$T/base-online.env KERNEL_DIR=$T/k6 "$TOP/scripts/apply" >/dev/null 2>&1 &&
		WB_BASE_ENV=$T/base-online.env KERNEL_DIR=$T/k6 "$TOP/scripts/export" --check 2>"$T/err" &&
		grep -q 'base-commit lines are not compared' "$T/err"
}

check "base: tarball import is deterministic and idempotent" t_base_import
check "base: another checkout takes the import from the verified cache" t_base_cache
check "base: corrupted tarball is refused with expected checksum" t_base_corrupt
check "base: tree mismatch is refused with expected tree" t_base_wrong_tree
check "base: missing tarball names the path it looked at" t_base_missing
check "export: new topics, series headers, base-commit" t_export_new
check "export: cover letter subject and text are kept" t_cover_kept
check "apply+export: round trip is byte-for-byte" t_roundtrip
check "apply: failing patch is named with its hunk" t_apply_fails_named
check "export: notes survive rebase; inserted commit joins its topic" t_rebase_keeps_topics
check "export --check: an unchanged quilt passes, a changed byte fails" t_export_check
check "base: the online route with a stand-in stable tree; the quilt exports the same" t_online_route

ktap_end quilt

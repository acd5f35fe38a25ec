# SPDX-License-Identifier: GPL-2.0
# KTAP output for the workbench's shell tests.  Source it after setting T
# (a scratch directory); 'ktap_plan N' starts the document, 'check NAME
# CMD...' adds one result, 'ktap_end NAME' prints the tally and returns
# non-zero when a test failed.
# shellcheck shell=bash

n=0
failed=0

ktap_plan() {
	echo "KTAP version 1"
	echo "1..$1"
}

# check NAME CMD...: one KTAP result; CMD's output becomes diagnostics on
# failure.
check() {
	local name=$1
	shift
	n=$((n + 1))
	if "$@" >"$T/out" 2>&1; then
		echo "ok $n $name"
	else
		failed=$((failed + 1))
		sed 's/^/# /' "$T/out"
		echo "not ok $n $name"
	fi
}

ktap_end() {
	echo "# $1: $((n - failed)) passed, $failed failed"
	[ "$failed" = 0 ]
}

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read what a test run printed and count it.

KTAP is parsed with the kernel's own parser (tools/testing/kunit's
kunit_parser).  run_kselftest.sh nests each program's KTAP under a "# "
prefix at the same level as its own result lines, which kunit_parser cannot
tell apart when a program dies half way; so the runner's output is first cut
into one document per program, and the runner's verdict (exit code,
TIMEOUT) is added to what the program's own KTAP said.

The kernel console is searched for splats (WARNING, BUG, Oops, lockdep,
RCU stalls, hung tasks, soft lockups, KASAN/UBSAN): any one fails the run.

Subcommands:
  ktap FILE [--name NAME]          results of one KTAP document
  kselftest FILE [--logs DIR] [--suffix S]
                                   results of run_kselftest.sh output (S
                                   appended to every name)
  kunit CONSOLE                    results of KUnit suites in a console log
  splats CONSOLE [--no-kmemleak]   list the splats in a console log
                                   (--no-kmemleak: leave kmemleak's
                                   summary line to the kmemleak check)
  kmemleak KTAP [--allow FILE]     leaks in guest-init's kmemleak report
                                   that FILE does not accept
  builtin NAME CONSOLE             results of a test built into the kernel
                                   (configs/tests.list kind "builtin"):
                                   dmabuf_selftests, CONFIG_DMABUF_SELFTESTS
  ivshmem LOG --ram FILE           the bytes vfio_dmabuf_test (LOG: its
                                   log) had a device write into the
                                   ivshmem's RAM are in FILE, the copy of
                                   its backing file the host kept
Each prints TSV records (name, passed, failed, skipped, note) on stdout,
or with --tsv FILE appends them there prefixed with the topic from --topic.
"""

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Iterable, List, Optional, Set, Tuple

WB_TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL_DIR = os.environ.get('KERNEL_DIR', os.path.join(WB_TOP, 'kernel'))
sys.path.insert(0, os.path.join(KERNEL_DIR, 'tools', 'testing', 'kunit'))
# pylint: disable=wrong-import-position
import kunit_parser  # noqa: E402
import kunit_printer  # noqa: E402


@dataclass
class Result:
	"""Counts of one test program or suite."""
	name: str
	passed: int = 0
	failed: int = 0
	skipped: int = 0
	note: str = ''

	def tsv(self) -> str:
		"""One TSV record (tabs and newlines in the text become spaces)."""
		name, note = (re.sub(r'[\t\n]', ' ', x) for x in (self.name, self.note))
		return f'{name}\t{self.passed}\t{self.failed}\t{self.skipped}\t{note}'


# A test that did not pass, whatever its counts say: a crashed suite with no
# result lines has zero counts and must still fail.
NOT_PASSED = (kunit_parser.TestStatus.FAILURE, kunit_parser.TestStatus.TEST_CRASHED,
	      kunit_parser.TestStatus.FAILURE_TO_PARSE_TESTS,
	      kunit_parser.TestStatus.NO_TESTS)
# "1..0 # SKIP reason": the whole program skipped (kselftest's ksft_exit_skip()
# before any test).
WHOLE_SKIP = re.compile(r'^\s*1\.\.0\s*#\s*SKIP\b\s*(.*)$', re.IGNORECASE)


def counts_of(test: kunit_parser.Test) -> Tuple[int, int, int]:
	"""passed, failed (including crashed and parse errors), skipped."""
	c = test.counts
	failed = c.failed + c.crashed
	if failed == 0 and (c.errors or test.status in NOT_PASSED):
		failed = 1		# malformed, truncated, crashed or empty
	return c.passed, failed, c.skipped


def failed_names(test: kunit_parser.Test) -> List[str]:
	"""Names of the failed or crashed leaf tests under a test."""
	names: List[str] = []
	for sub in test.subtests:
		if sub.subtests:
			names += failed_names(sub)
		elif sub.status in (kunit_parser.TestStatus.FAILURE,
				    kunit_parser.TestStatus.TEST_CRASHED):
			names.append(sub.name)
	return names


def names_note(names: List[str], limit: int = 10) -> str:
	"""'failed: a, b' naming at most limit tests."""
	if not names:
		return ''
	more = f' and {len(names) - limit} more' if len(names) > limit else ''
	return 'failed: ' + ', '.join(names[:limit]) + more


TOP_PLAN = re.compile(r'^1\.\.(\d+)')
TOP_RESULT = re.compile(r'^(ok|not ok) \d+')


def top_level_plan(lines: List[str]) -> Tuple[Optional[int], int]:
	"""The plan of a KTAP document's top level, and its number of results
	(kunit_parser neither fails a missing plan nor counts results past it)."""
	plan: Optional[int] = None
	results = 0
	for line in lines:
		m = TOP_PLAN.match(line)
		if m and plan is None:
			plan = int(m.group(1))
		elif TOP_RESULT.match(line):
			results += 1
	return plan, results


def parse_ktap(lines: Iterable[str], name: str) -> Result:
	"""Results of one KTAP document (a test program's output)."""
	lines = list(lines)
	for line in lines:
		m = WHOLE_SKIP.match(line)
		if m:
			return Result(name, 0, 0, 1, f'SKIP {m.group(1)}'.strip())
		if kunit_parser.TEST_PLAN.match(line):
			break
	test = kunit_parser.parse_run_tests(lines, kunit_printer.null_printer)
	passed, failed, skipped = counts_of(test)
	plan, results = top_level_plan(lines)
	problem = ''
	if results and plan is None:
		problem = 'no plan line'
	elif plan is not None and results > plan:
		problem = f'{results} results for a plan of {plan}'
	if problem:
		failed += 1
		return Result(name, passed, failed, skipped, problem)
	note = ''
	if test.status == kunit_parser.TestStatus.FAILURE_TO_PARSE_TESTS:
		note = 'no KTAP output'
	elif test.counts.crashed or test.counts.errors:
		note = 'crashed or incomplete KTAP'
	note = '; '.join(x for x in (note, names_note(failed_names(test))) if x)
	return Result(name, passed, failed, skipped, note)


RUNNER_RESULT = re.compile(r'^(ok|not ok) (\d+) selftests: (\S+): (\S+)(?: # (.*))?$')
RUNNER_HEADER = re.compile(r'^# selftests: (\S+): (\S+)$')


def split_kselftest(text: str) -> List[Tuple[str, List[str], Optional[re.Match[str]]]]:
	"""Cut run_kselftest.sh output into (name, program lines, runner result)."""
	out: List[Tuple[str, List[str], Optional[re.Match[str]]]] = []
	name: Optional[str] = None
	body: List[str] = []
	for line in text.splitlines():
		m = RUNNER_HEADER.match(line)
		if m:
			if name is not None:
				out.append((name, body, None))
			name, body = f'{m.group(1)}:{m.group(2)}', []
			continue
		m = RUNNER_RESULT.match(line)
		if m and name is not None:
			out.append((name, body, m))
			name, body = None, []
			continue
		if name is not None and line.startswith('#'):
			body.append(line[2:] if line.startswith('# ') else line[1:])
	if name is not None:
		out.append((name, body, None))
	return out


def parse_kselftest(text: str, logs: Optional[str] = None) -> List[Result]:
	"""Results of each program run by run_kselftest.sh."""
	results = []
	for name, body, verdict in split_kselftest(text):
		if logs:
			path = os.path.join(logs, name.replace(':', '/') + '.log')
			os.makedirs(os.path.dirname(path), exist_ok=True)
			with open(path, 'w', encoding='utf-8') as f:
				f.write('\n'.join(body) + '\n')
		has_ktap = any(kunit_parser.TAP_START.match(l) or
			       kunit_parser.KTAP_START.match(l) for l in body)
		if has_ktap:
			r = parse_ktap(body, name)
		else:
			r = Result(name)
		if verdict is None:
			r.failed += 1
			r.note = 'no result from run_kselftest.sh (guest died?)'
		elif verdict.group(1) == 'not ok':
			directive = verdict.group(5) or 'failed'
			if r.failed == 0:
				r.failed = 1	# the program failed without saying which test
			r.note = '; '.join(x for x in (r.note, directive) if x)
		elif (verdict.group(5) or '').startswith('SKIP'):
			if not has_ktap:
				r.skipped = 1
			r.note = r.note or 'SKIP'
		elif not has_ktap:
			r.passed = 1
		results.append(r)
	return results


def parse_kunit(console: str) -> List[Result]:
	"""Results of each KUnit suite reported on the console."""
	lines = console.splitlines()
	if not any(kunit_parser.KTAP_START.search(l) or
		   kunit_parser.EXECUTOR_ERROR.search(l) for l in lines):
		return []
	test = kunit_parser.parse_run_tests(lines, kunit_printer.null_printer)
	results = []
	for n, suite in enumerate(test.subtests, 1):
		passed, failed, skipped = counts_of(suite)
		# A suite the plan announced that never reported has no name.
		name = suite.name or f'(suite {n} of {len(test.subtests)}: no result)'
		note = '' if suite.ok_status() else str(suite.status.name)
		note = '; '.join(x for x in (note, names_note(failed_names(suite))) if x)
		results.append(Result(f'kunit:{name}', passed, failed, skipped, note))
	errors = [m.group(1) for m in map(kunit_parser.EXECUTOR_ERROR.search, lines) if m]
	if errors:
		results.append(Result('kunit', 0, 1, 0, f'kunit executor: {errors[0]}'))
	elif not results and test.status != kunit_parser.TestStatus.NO_TESTS:
		passed, failed, skipped = counts_of(test)
		results.append(Result('kunit', passed, failed, skipped,
				      str(test.status.name)))
	return results


SPLAT_PATTERNS = [
	r'WARNING: CPU: \d+ PID: \d+ at ',
	r'WARNING: (possible|inconsistent|suspicious|bad unlock|held lock|lock held|'
	r'circular|nested lock|possible recursive|possible irq)',
	r'BUG: ',
	r'kernel BUG at ',
	r'Oops: ',
	r'general protection fault',
	r'Kernel panic - not syncing',
	r'INFO: task \S+ blocked for more than \d+ seconds',
	r'INFO: rcu_\w+ (self-)?detected stall',
	r'rcu: INFO: rcu_\w+ (self-)?detected stall',
	r'INFO: trying to register non-static key',
	r'DEBUG_LOCKS_WARN_ON',
	r'UBSAN: ',
	r'KASAN: ',
	# Detectors that switched themselves off no longer detect anything.
	r'kmemleak: Kernel memory leak detector disabled',
	r'DMA-API: debugging out of memory',
	r'kmemleak: \d+ new suspected memory leaks',
]
KMEMLEAK_SUMMARY = re.compile(SPLAT_PATTERNS[-1])
SPLAT = re.compile('|'.join(f'(?:{p})' for p in SPLAT_PATTERNS))
# A register dump belongs to the report printed just before it; alone, it
# is a splat of its own.
RIP = re.compile(r'RIP: 00\d\d:')
RIP_WINDOW = 30
TIMESTAMP = re.compile(r'^\[\s*\d+\.\d+\]\s*')


def find_splats(console: str) -> List[Tuple[int, str]]:
	"""(line number, line) of the first line of each splat in a console log."""
	found: List[Tuple[int, str]] = []
	for n, line in enumerate(console.splitlines(), 1):
		text = TIMESTAMP.sub('', line).strip()
		if SPLAT.search(text):
			found.append((n, text))
		elif RIP.search(text) and not (found and n - found[-1][0] <= RIP_WINDOW):
			found.append((n, text))
	return found


KMEMLEAK = '# wb: kmemleak: '
KMEMLEAK_DONE = '# wb: kmemleak scan done'
KMEMLEAK_OBJECT = re.compile(r'^unreferenced object (0x[0-9a-f]+) \(size (\d+)\)')
FRAME = re.compile(r'([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+')


@dataclass
class Leak:
	"""One object of a kmemleak report."""
	header: str
	functions: List[str]


def read_allow(path: str) -> List[Tuple[List[str], str]]:
	"""(functions that must all be in a backtrace, reason) per allow line."""
	allow = []
	with open(path, encoding='utf-8') as f:
		for n, line in enumerate(f, 1):
			if not line.strip() or line.startswith('#'):
				continue
			funcs, sep, reason = line.rstrip('\n').partition('\t')
			if not sep or not funcs.split() or not reason.strip():
				raise ValueError(f'{path}:{n}: expected "<functions><TAB><reason>"')
			allow.append((funcs.split(), reason))
	return allow


def parse_kmemleak(text: str) -> Optional[List[Leak]]:
	"""Objects of guest-init's kmemleak report, or None if it never ran."""
	lines = text.splitlines()
	if KMEMLEAK_DONE not in lines:
		return None
	leaks: List[Leak] = []
	for line in lines:
		if not line.startswith(KMEMLEAK):
			continue
		body = line[len(KMEMLEAK):]
		if KMEMLEAK_OBJECT.match(body):
			leaks.append(Leak(body, []))
		elif leaks:
			leaks[-1].functions += FRAME.findall(body)
	return leaks


def check_kmemleak(text: str, allow: List[Tuple[List[str], str]]) -> Result:
	"""One record: no leak but those the allow list accepts."""
	leaks = parse_kmemleak(text)
	if leaks is None:
		return Result('kmemleak', 0, 1, 0, 'kmemleak did not scan (no report from guest-init)')
	bad = [x for x in leaks
	       if not any(all(f in x.functions for f in funcs) for funcs, _ in allow)]
	accepted = len(leaks) - len(bad)
	note = f'{len(leaks)} leak(s), {accepted} accepted by the allow list'
	if bad:
		first = bad[0]
		return Result('kmemleak', 0, 1, 0, f'{note}; first: {first.header} in '
			      f'{" <- ".join(first.functions[:6])}')
	return Result('kmemleak', 1, 0, 0, note)


# vfio_dmabuf's dma_writes_the_bar: the edu writes DEVICE_MAGIC and then
# byte i = (i * 13 + 5) & 0xff (EDU_DMA_LEN bytes in all) at 8192 in the
# ivshmem's RAM, through the iommufd IOAS; the host reads them from the copy
# of the backing file that scripts/vm keeps.
IVSHMEM_TEST = 'vfio_dmabuf.iommufd.dma_writes_the_bar'
IVSHMEM_NAME = "vfio_dmabuf:vfio_dmabuf_test (the host reads the edu's write)"
DEVICE_MAGIC = b'vfio_dmabuf edu\n'
DEVICE_OFFSET = 8192
DEVICE_LEN = 2048


DMABUF_GROUP = re.compile(r'^dma-buf: Running (\w+)$')
DMABUF_SUBTEST = re.compile(r'^dma-buf: Running (\w+)/(\w+)$')
DMABUF_FAILED = re.compile(r'^dma-buf/(\w+): (\w+) failed with error (-?\d+)$')
DMABUF_FILTER = re.compile(r'Kernel command line:.*\bdmabuf_selftests\.st_filter=(\S+)')
DMABUF_MAGIC = re.compile(r'(\w+) returned (-?\d+), conflicting with selftest')


def parse_dmabuf_selftests(console: str) -> Result:
	"""drivers/dma-buf/selftest.c built in: "dma-buf: Running GROUP" and
	"dma-buf: Running GROUP/TEST" for each test it starts, "dma-buf/GROUP:
	TEST failed with error E" for the one that stops it.  A group without
	subtests (sanitycheck) counts as one test."""
	r = Result('builtin:dmabuf_selftests')
	groups: List[str] = []
	with_subtests: Set[str] = set()
	subtests = 0
	failures = []
	for line in console.splitlines():
		line = TIMESTAMP.sub('', line).rstrip()
		if m := DMABUF_GROUP.match(line):
			groups.append(m.group(1))
		elif m := DMABUF_SUBTEST.match(line):
			with_subtests.add(m.group(1))
			subtests += 1
		elif m := DMABUF_FAILED.match(line):
			failures.append(f'{m.group(1)}/{m.group(2)}: error {m.group(3)}')
		elif m := DMABUF_MAGIC.search(line):
			failures.append(f'{m.group(1)} returned {m.group(2)}')
	if not groups:
		r.failed = 1
		r.note = 'did not run: no "dma-buf: Running" line (CONFIG_DMABUF_SELFTESTS=y?)'
		return r
	r.failed = len(failures)
	r.passed = subtests + len([g for g in groups if g not in with_subtests]) - r.failed
	# Tests the command line's st_filter leaves out ("!GROUP/TEST")
	left_out = [t for m in DMABUF_FILTER.finditer(console)
		    for t in m.group(1).split(',') if t.startswith('!')]
	r.skipped = len(left_out)
	r.note = '; '.join(x for x in (names_note(failures),
				       ', '.join(t[1:] for t in left_out) +
				       ' left out (st_filter)' if left_out else '') if x)
	return r


BUILTIN_READERS = {'dmabuf_selftests': parse_dmabuf_selftests}


def device_bytes() -> bytes:
	"""What dma_writes_the_bar has the edu write."""
	return DEVICE_MAGIC + bytes((i * 13 + 5) & 0xff
				    for i in range(len(DEVICE_MAGIC), DEVICE_LEN))


def check_ivshmem(test_log: str, ram: Optional[bytes]) -> Result:
	"""The edu's write is in the ivshmem's RAM if the guest's test passed."""
	ran = re.search(rf'^ok \d+ {re.escape(IVSHMEM_TEST)}\s*$', test_log, re.MULTILINE)
	if not ran:
		return Result(IVSHMEM_NAME, 0, 0, 1, f'{IVSHMEM_TEST} did not pass in the guest: nothing to read')
	if ram is None:
		return Result(IVSHMEM_NAME, 0, 1, 0, 'no copy of the ivshmem\'s RAM')
	got, want = ram[DEVICE_OFFSET:DEVICE_OFFSET + DEVICE_LEN], device_bytes()
	if got == want:
		return Result(IVSHMEM_NAME, 1, 0, 0)
	if len(got) < len(want):
		return Result(IVSHMEM_NAME, 0, 1, 0, f'the copy ends at {DEVICE_OFFSET + len(got)}')
	i = next(i for i in range(len(want)) if got[i] != want[i])
	return Result(IVSHMEM_NAME, 0, 1, 0,
		      f'byte {DEVICE_OFFSET + i} is 0x{got[i]:02x}, the edu wrote 0x{want[i]:02x}')


def main(argv: List[str]) -> int:
	"""Command line entry point."""
	ap = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
	ap.add_argument('what', choices=['ktap', 'kselftest', 'kunit', 'splats', 'kmemleak',
					 'ivshmem', 'builtin'])
	ap.add_argument('file', help='the input; for builtin: the test\'s name, then the console')
	ap.add_argument('console', nargs='?', default=None, help='builtin: the console log')
	ap.add_argument('--name', default=None, help='name of a KTAP document')
	ap.add_argument('--logs', default=None, help='directory for per-test logs')
	ap.add_argument('--suffix', default='',
			help='kselftest: appended to every name (a second boot of the same tests)')
	ap.add_argument('--allow', default=None, help='kmemleak reports accepted')
	ap.add_argument('--no-kmemleak', action='store_true',
			help="splats: not kmemleak's summary line")
	ap.add_argument('--ram', default=None,
			help="ivshmem: the copy of the ivshmem's RAM (FILE: vfio_dmabuf_test's log)")
	args = ap.parse_args(argv[1:])
	if args.what == 'builtin':
		if args.file not in BUILTIN_READERS or not args.console:
			ap.error(f'builtin NAME CONSOLE: NAME is one of {", ".join(BUILTIN_READERS)}')
		with open(args.console, encoding='utf-8', errors='replace') as f:
			r = BUILTIN_READERS[args.file](f.read())
		print(r.tsv())
		return 1 if r.failed else 0
	with open(args.file, encoding='utf-8', errors='replace') as f:
		text = f.read()
	if args.what == 'splats':
		splats = find_splats(text)
		if args.no_kmemleak:
			splats = [(n, x) for n, x in splats if not KMEMLEAK_SUMMARY.search(x)]
		for n, line in splats:
			print(f'{args.file}:{n}: {line}')
		return 1 if splats else 0
	if args.what == 'ivshmem':
		ram = None
		if args.ram and os.path.exists(args.ram):
			with open(args.ram, 'rb') as rf:
				ram = rf.read()
		r = check_ivshmem(text, ram)
		print(r.tsv())
		return 1 if r.failed else 0
	if args.what == 'kmemleak':
		r = check_kmemleak(text, read_allow(args.allow) if args.allow else [])
		print(r.tsv())
		return 1 if r.failed else 0
	if args.what == 'ktap':
		name = args.name or os.path.basename(args.file)
		results = [parse_ktap(text.splitlines(), name)]
	elif args.what == 'kselftest':
		results = parse_kselftest(text, args.logs)
		if not results:
			results = [Result('kselftest', 0, 1, 0, f'no test program ran ({args.file})')]
		for r in results:
			r.name += args.suffix
	else:
		results = parse_kunit(text)
	for r in results:
		print(r.tsv())
	return 1 if any(r.failed for r in results) else 0


if __name__ == '__main__':
	sys.exit(main(sys.argv))

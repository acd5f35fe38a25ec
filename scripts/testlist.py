#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read configs/tests.list: which tests the guest runs, and their topics.

The one reader of that file: the Makefile, scripts/check, scripts/build and
scripts/kunit all ask this script.  Every line is checked, so a typo stops
the run instead of quietly shrinking the test kernel's configuration:

  <topic> kselftest <target>   topic "base" or a topic of the series file;
                               the target exists in this repository's or the
                               kernel's tools/testing/selftests/
  <topic> kselftest <target>:<program>
                               only that program of the target (one its
                               Makefile installs, listed or not in its
                               kselftest-list.txt): the guest runs no other
                               program of the target
  <topic> kunit <suite>        kunit/<suite>.kunitconfig exists
  <topic> builtin <name>       a test built into the kernel that reports on
                               the console at boot, one of BUILTINS: its
                               option is merged into the test kernel and
                               results.py reads its lines

Subcommands:
  list KIND          the names of one kind (kselftest, kunit, builtin), in order
  topic NAME         the topic of a result name ("iommu:iommufd",
                     "kunit:<suite>", "builtin:<name>"), or "unlisted"
  config             the options the builtin tests need, a config fragment
  cmdline            what they need on the kernel command line
  check              only validate
Errors go to stderr as FILE:LINE: message, with exit status 2.
Environment: TESTS_LIST (another file), KERNEL_DIR, QUILT_DIR.
"""

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import List, Optional

WB_TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ('kselftest', 'kunit', 'builtin')
# Tests built into the kernel that run at boot: the option that builds them,
# and what they need on the kernel's command line (results.py has a reader
# for each, which counts what the command line leaves out as skipped).
# Two of the dma-buf selftests are left out, for the guest's sake:
# dma_fence_chain/wait_backward runs for 93 s under TCG without
# rescheduling, in the boot's init thread (a soft lockup), and
# dma_fence/race_signal_callback busy-waits, under rcu_read_lock(), for a
# partner thread that on two TCG vCPUs without preemption may never run
# (soft lockups for over 100 s, seen in one boot of two).
BUILTINS = {
	'dmabuf_selftests': ('CONFIG_DMABUF_SELFTESTS=y',
			     'dmabuf_selftests.st_filter='
			     '!dma_fence/race_signal_callback,!dma_fence_chain/wait_backward'),
}
TOPIC_HEADER = re.compile(r'^# ([a-z0-9][a-z0-9._-]*):')


class ListError(Exception):
	"""A line of tests.list that cannot be right."""


@dataclass
class Entry:
	"""One test of tests.list."""
	topic: str
	kind: str
	name: str


def series_topics(series: str) -> List[str]:
	"""Topics named by the header lines of a series file."""
	if not os.path.exists(series):
		return []
	with open(series, encoding='utf-8') as f:
		return [m.group(1) for m in map(TOPIC_HEADER.match, f) if m]


def read(path: str, top: str = WB_TOP, kernel_dir: Optional[str] = None,
	 series: Optional[str] = None) -> List[Entry]:
	"""Every entry of a tests.list, or ListError naming each bad line."""
	kdir: str = kernel_dir or os.environ.get('KERNEL_DIR') or os.path.join(top, 'kernel')
	series_file = series or os.path.join(os.environ.get('QUILT_DIR', top), 'series')
	topics = ['base'] + series_topics(series_file)
	entries: List[Entry] = []
	errors: List[str] = []
	with open(path, encoding='utf-8') as f:
		for n, line in enumerate(f, 1):
			text = line.split('#', 1)[0].strip()
			if not text:
				continue
			where = f'{path}:{n}'
			fields = text.split()
			if len(fields) != 3:
				errors.append(f'{where}: expected "<topic> <kind> <name>", got {text!r}')
				continue
			topic, kind, name = fields
			if kind not in KINDS:
				errors.append(f'{where}: unknown kind {kind!r} (one of {", ".join(KINDS)})')
				continue
			if topic not in topics:
				errors.append(f'{where}: topic {topic!r} is neither "base" nor a topic '
					      f'of {series_file} ({", ".join(topics[1:]) or "none"})')
			if kind == 'builtin':
				if name not in BUILTINS:
					errors.append(f'{where}: no builtin test {name!r} '
						      f'(one of {", ".join(BUILTINS)})')
			elif kind == 'kunit':
				cfg = os.path.join(top, 'kunit', f'{name}.kunitconfig')
				if not os.path.isfile(cfg):
					errors.append(f'{where}: KUnit suite {name!r} has no {cfg}')
			else:
				target = name.split(':', 1)[0]
				dirs = [os.path.join(d, 'tools', 'testing', 'selftests', target)
					for d in (top, kdir)]
				if not any(os.path.isdir(d) for d in dirs):
					errors.append(f'{where}: selftest target {name!r} not found in '
						      f'{" or ".join(dirs)}')
			if any(e.kind == kind and e.name == name for e in entries):
				errors.append(f'{where}: {kind} {name!r} listed twice')
			entries.append(Entry(topic, kind, name))
	if errors:
		raise ListError('\n'.join(errors))
	return entries


def topic_of(entries: List[Entry], result: str) -> str:
	"""Topic of a result name: "kunit:<suite>", "builtin:<name>" or
	"<target>:<program>"."""
	if result.startswith('kunit:'):
		kind, name = 'kunit', result[len('kunit:'):]
	elif result.startswith('builtin:'):
		kind, name = 'builtin', result[len('builtin:'):]
	else:
		# A "<target>:<program>" entry first, then its target's
		kind, name = 'kselftest', result.split(':', 1)[0]
		for e in entries:
			if e.kind == kind and e.name == result:
				return e.topic
	for e in entries:
		if e.kind == kind and e.name == name:
			return e.topic
	return 'unlisted'


def main(argv: List[str]) -> int:
	"""Command line entry point."""
	ap = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
	ap.add_argument('--file', default=os.environ.get(
		'TESTS_LIST', os.path.join(WB_TOP, 'configs', 'tests.list')))
	sub = ap.add_subparsers(dest='cmd', required=True)
	sub.add_parser('list').add_argument('kind', choices=KINDS)
	sub.add_parser('topic').add_argument('name')
	sub.add_parser('check')
	sub.add_parser('config')
	sub.add_parser('cmdline')
	args = ap.parse_args(argv[1:])
	try:
		entries = read(args.file)
	except (ListError, OSError) as err:
		print(f'testlist.py: {err}', file=sys.stderr)
		return 2
	if args.cmd == 'list':
		for e in entries:
			if e.kind == args.kind:
				print(e.name)
	elif args.cmd == 'topic':
		print(topic_of(entries, args.name))
	elif args.cmd in ('config', 'cmdline'):
		words = [BUILTINS[e.name][0 if args.cmd == 'config' else 1]
			 for e in entries if e.kind == 'builtin']
		if words:
			print(('\n' if args.cmd == 'config' else ' ').join(w for w in words if w))
	return 0


if __name__ == '__main__':
	sys.exit(main(sys.argv))

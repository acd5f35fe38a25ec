#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print the summary of a workbench run.

Reads the TSV records the stages wrote to build/results/*.tsv
(topic, check, name, passed, failed, skipped, note), prints a table per
topic (patches, checkpatch, builds, tests) in series order, the
workbench's own tests apart, and every failure by name, and ends with the
plain line "N passed, N failed, N skipped".  Exit status 1 on any failure,
or when nothing at all was counted.

With --json FILE it also writes the records as KernelCI-style JSON (the
format of kunit.py --json: nested groups with test_cases of status PASS,
FAIL or SKIP): one group per topic, one sub-group per check, one test case
per record.
"""

import argparse
import glob
import json
import os
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List


@dataclass
class Row:
	"""One record."""
	topic: str
	check: str
	name: str
	passed: int
	failed: int
	skipped: int
	note: str


@dataclass
class Tally:
	"""Counts of one kind of check within a topic."""
	passed: int = 0
	failed: int = 0
	skipped: int = 0

	def add(self, row: Row) -> None:
		"""Count a record in."""
		self.passed += row.passed
		self.failed += row.failed
		self.skipped += row.skipped

	def cell(self) -> str:
		"""passed/total, with failures and skips spelt out."""
		total = self.passed + self.failed + self.skipped
		if total == 0:
			return '-'
		s = f'{self.passed}/{total}'
		if self.failed:
			s += f' ({self.failed} FAILED)'
		if self.skipped:
			s += f' ({self.skipped} skipped)'
		return s


@dataclass
class Topic:
	"""All counts of one topic."""
	patches: int = 0
	checks: Dict[str, Tally] = field(default_factory=dict)

	def tally(self, check: str) -> Tally:
		"""The tally of one check kind, created on first use."""
		return self.checks.setdefault(check, Tally())


def read_rows(paths: List[str]) -> List[Row]:
	"""Records of every TSV file given."""
	rows = []
	for path in paths:
		with open(path, encoding='utf-8') as f:
			for n, line in enumerate(f, 1):
				parts = line.rstrip('\n').split('\t')
				try:
					if len(parts) != 7:
						raise ValueError(f'{len(parts)} fields')
					rows.append(Row(parts[0], parts[1], parts[2], int(parts[3]),
							int(parts[4]), int(parts[5]), parts[6]))
				except ValueError as e:
					# Counted as a failure: the summary line must come.
					rows.append(Row('series', 'workbench', f'{path}:{n}', 0, 1, 0,
							f'malformed record ({e}): {line.strip()[:80]}'))
	return rows


COLUMNS = [('patches', 'sob'), ('checkpatch', 'checkpatch'),
	   ('kernel-doc', 'kernel-doc'), ('builds', 'build'),
	   ('mail', 'mail'), ('tests', 'test')]


TOPIC_HEADER = re.compile(r'^# ([a-z0-9][a-z0-9._-]*):')
# Topics that are not in the series file: the base kernel's tests first,
# the checks of the whole series, then the workbench's own tests.
FIRST, LAST = ['base'], ['series', 'workbench']


def topic_order(rows: List[Row], series: str = '') -> List[str]:
	"""Topics of the records: base, the series file's order, series, workbench."""
	order = list(FIRST)
	if series and os.path.exists(series):
		with open(series, encoding='utf-8') as f:
			order += [m.group(1) for m in map(TOPIC_HEADER.match, f) if m]
	seen = {r.topic for r in rows}
	extra = sorted(seen - set(order) - set(LAST))
	return [t for t in order + extra + LAST if t in seen]


def status(row: Row) -> str:
	"""KernelCI status of a record."""
	if row.failed:
		return 'FAIL'
	return 'SKIP' if row.skipped and not row.passed else 'PASS'


def to_json(rows: List[Row], series: str = '') -> Dict[str, Any]:
	"""The records as KernelCI-style nested groups (kunit.py --json's shape)."""
	groups = []
	for topic in topic_order(rows, series):
		checks: Dict[str, List[Dict[str, Any]]] = OrderedDict()
		for r in rows:
			if r.topic == topic:
				checks.setdefault(r.check, []).append({
					'name': r.name, 'status': status(r), 'passed': r.passed,
					'failed': r.failed, 'skipped': r.skipped, 'note': r.note})
		groups.append({'name': topic, 'test_cases': [], 'sub_groups': [
			{'name': c, 'test_cases': cases, 'sub_groups': []}
			for c, cases in checks.items()]})
	return {'name': 'workbench', 'arch': 'x86_64', 'defconfig': 'tinyconfig',
		'build_environment': 'x86_64', 'lab_name': None, 'test_cases': [],
		'sub_groups': groups,
		'totals': {'passed': sum(r.passed for r in rows),
			   'failed': sum(r.failed for r in rows),
			   'skipped': sum(r.skipped for r in rows)}}


def line(rows: List[Row]) -> str:
	"""'N passed, N failed, N skipped' of some records."""
	return (f'{sum(r.passed for r in rows)} passed, {sum(r.failed for r in rows)} failed, '
		f'{sum(r.skipped for r in rows)} skipped')


def summarize(rows: List[Row], series: str = '') -> str:
	"""The table, the failures and the final line."""
	topics: Dict[str, Topic] = OrderedDict((t, Topic()) for t in topic_order(rows, series))
	for r in rows:
		t = topics.setdefault(r.topic, Topic())
		kind = r.check if r.check in dict(COLUMNS).values() else 'test'
		t.tally(kind).add(r)
		if r.check == 'sob':
			t.patches += 1
	out = []
	head = ['topic'] + [c for c, _ in COLUMNS]
	table = [head]
	for name, t in topics.items():
		table.append([name] + [t.checks[k].cell() if k in t.checks else '-'
				       for _, k in COLUMNS])
	widths = [max(len(r[i]) for r in table) for i in range(len(head))]
	for i, cells in enumerate(table):
		if cells[0] == 'workbench':
			out.append('')		# the workbench's own tests, apart
		out.append('  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
		if i == 0:
			out.append('  '.join('-' * w for w in widths))
	failures = [r for r in rows if r.failed]
	if failures:
		out.append('')
		out.append('Failures:')
		for r in failures:
			out.append(f'  {r.topic}: {r.check}: {r.name}: {r.failed} failed'
				   + (f' ({r.note})' if r.note else ''))
	out.append('')
	wb = [r for r in rows if r.topic == 'workbench']
	if wb:
		out.append(f'kernel and series: {line([r for r in rows if r.topic != "workbench"])}; '
			   f'workbench: {line(wb)}')
	out.append(line(rows))
	return '\n'.join(out)


def main(argv: List[str]) -> int:
	"""Command line entry point: summary.py RESULTS_DIR [--series F] [--json F]."""
	ap = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
	ap.add_argument('results', help='directory of *.tsv records')
	ap.add_argument('--series', default='', help='series file (topic order)')
	ap.add_argument('--json', default='', help='write the records as JSON here')
	args = ap.parse_args(argv[1:])
	paths = sorted(glob.glob(os.path.join(args.results, '*.tsv')))
	rows = read_rows(paths)
	print(summarize(rows, args.series))
	if args.json:
		with open(args.json, 'w', encoding='utf-8') as f:
			json.dump(to_json(rows, args.series), f, indent=1)
			f.write('\n')
	if not rows:
		print('summary.py: nothing was counted', file=sys.stderr)
		return 1
	return 1 if any(r.failed for r in rows) else 0


if __name__ == '__main__':
	sys.exit(main(sys.argv))

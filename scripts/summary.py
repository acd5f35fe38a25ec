#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print the summary of a workbench run.

Reads the TSV records the stages wrote to build/results/*.tsv
(topic, check, name, passed, failed, skipped, note), prints a table per
topic (patches, checkpatch, builds, tests) and every failure, and ends with
the plain line "N passed, N failed, N skipped".  Exit status 1 on any
failure, or when nothing at all was counted.
"""

import glob
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List


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
				if len(parts) != 7:
					raise ValueError(f'{path}:{n}: expected 7 fields, got {len(parts)}')
				rows.append(Row(parts[0], parts[1], parts[2], int(parts[3]),
						int(parts[4]), int(parts[5]), parts[6]))
	return rows


COLUMNS = [('patches', 'sob'), ('checkpatch', 'checkpatch'),
	   ('kernel-doc', 'kernel-doc'), ('builds', 'build'),
	   ('mail', 'mail'), ('tests', 'test')]


def summarize(rows: List[Row]) -> str:
	"""The table, the failures and the final line."""
	topics: Dict[str, Topic] = OrderedDict()
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
	passed = sum(r.passed for r in rows)
	failed = sum(r.failed for r in rows)
	skipped = sum(r.skipped for r in rows)
	out.append('')
	out.append(f'{passed} passed, {failed} failed, {skipped} skipped')
	return '\n'.join(out)


def main(argv: List[str]) -> int:
	"""Command line entry point: summary.py RESULTS_DIR."""
	if len(argv) != 2:
		print(__doc__, file=sys.stderr)
		return 2
	paths = sorted(glob.glob(os.path.join(argv[1], '*.tsv')))
	rows = read_rows(paths)
	print(summarize(rows))
	if not rows:
		print('summary.py: nothing was counted', file=sys.stderr)
		return 1
	return 1 if any(r.failed for r in rows) else 0


if __name__ == '__main__':
	sys.exit(main(sys.argv))

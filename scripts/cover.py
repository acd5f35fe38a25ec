#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Cover letters of the quilt's topics.

``git format-patch --cover-letter`` writes a cover letter with placeholder
subject and text followed by a generated tail (shortlog, diffstat,
base-commit).  The subject and text are ours, kept in
patches/<topic>/0000-cover-letter.patch; ``fill`` carries them from the
existing cover letter into a newly generated one, so that re-exporting
refreshes the tail and keeps the words.

    cover.py fill GENERATED EXISTING    rewrite GENERATED in place
    cover.py check COVER                fail if placeholders remain
    cover.py text COVER                 print the subject, a blank line and
                                        the text (a b4 prep cover letter)
"""

import re
import sys
from dataclasses import dataclass
from typing import List, Optional

SUBJECT_PLACEHOLDER = '*** SUBJECT HERE ***'
BLURB_PLACEHOLDER = '*** BLURB HERE ***'
SHORTLOG_AUTHOR = re.compile(r'^\S.* \(\d+\):$')
TAIL_TAGS = ('base-commit:', 'prerequisite-patch-id:')


class CoverError(Exception):
	"""A cover letter that cannot be understood."""


@dataclass
class Cover:
	"""The parts of a cover letter a person writes."""
	subject: str
	blurb: List[str]


def split_message(text: str) -> tuple[List[str], List[str]]:
	"""Split a one-message mbox into unfolded header lines and body lines."""
	lines = text.split('\n')
	try:
		end = lines.index('')
	except ValueError as e:
		raise CoverError('no blank line after the headers') from e
	headers: List[str] = []
	for line in lines[:end]:
		if line[:1] in (' ', '\t') and headers:
			headers[-1] += ' ' + line.strip()
		else:
			headers.append(line)
	return headers, lines[end + 1:]


def tail_start(body: List[str]) -> int:
	"""Index of the first line of the generated tail of a cover letter body.

	Walks back over base-commit/prerequisite lines, the diffstat and the
	shortlog author blocks; what precedes them is the text a person wrote.
	"""
	i = len(body)

	def skip_blank() -> None:
		nonlocal i
		while i > 0 and body[i - 1] == '':
			i -= 1

	skip_blank()
	while i > 0 and body[i - 1].startswith(TAIL_TAGS):
		i -= 1
	skip_blank()
	while i > 0 and body[i - 1].startswith(' ') and not body[i - 1].startswith('  '):
		i -= 1					# diffstat lines: one leading space
	while True:
		skip_blank()
		j = i
		while j > 0 and body[j - 1].startswith('  '):
			j -= 1				# shortlog subjects
		if j == i or j == 0 or not SHORTLOG_AUTHOR.match(body[j - 1]):
			return i
		i = j - 1


def parse(text: str) -> Cover:
	"""Extract the subject (without its [PATCH ...] tag) and the text."""
	headers, body = split_message(text)
	subject: Optional[str] = None
	for h in headers:
		if h.lower().startswith('subject:'):
			subject = re.sub(r'^\[[^]]*\]\s*', '', h[len('subject:'):].strip())
	if subject is None:
		raise CoverError('no Subject header')
	blurb = body[:tail_start(body)]
	while blurb and blurb[-1] == '':
		blurb.pop()
	return Cover(subject, blurb)


def fill(generated: str, existing: Optional[str]) -> str:
	"""Put the subject and text of ``existing`` into ``generated``."""
	if existing is None:
		return generated
	cover = parse(existing)
	if SUBJECT_PLACEHOLDER not in generated or BLURB_PLACEHOLDER not in generated:
		raise CoverError('generated cover letter has no placeholders')
	out = generated.replace(SUBJECT_PLACEHOLDER, cover.subject, 1)
	out = out.replace(BLURB_PLACEHOLDER, '\n'.join(cover.blurb), 1)
	if not out.isascii() and 'Content-Type:' not in out.split('\n\n', 1)[0]:
		head, rest = out.split('\n\n', 1)
		out = (head + '\nMIME-Version: 1.0\n'
		       'Content-Type: text/plain; charset=UTF-8\n'
		       'Content-Transfer-Encoding: 8bit\n\n' + rest)
	return out


def check(text: str) -> List[str]:
	"""Problems that keep a cover letter from being mailed."""
	problems = []
	if SUBJECT_PLACEHOLDER in text:
		problems.append('the subject is still the placeholder')
	if BLURB_PLACEHOLDER in text:
		problems.append('the text is still the placeholder')
	return problems


def text(cover: Cover) -> str:
	"""The cover letter as 'b4 prep --edit-cover' takes it."""
	return cover.subject + '\n\n' + '\n'.join(cover.blurb) + '\n'


def main(argv: List[str]) -> int:
	"""Command line entry point."""
	if len(argv) == 4 and argv[1] == 'fill':
		with open(argv[2], encoding='utf-8') as f:
			generated = f.read()
		try:
			with open(argv[3], encoding='utf-8') as f:
				existing: Optional[str] = f.read()
		except FileNotFoundError:
			existing = None
			print(f'cover.py: no {argv[3]} yet: write the subject and text '
			      'of the new cover letter there', file=sys.stderr)
		try:
			out = fill(generated, existing)
		except CoverError as e:
			print(f'cover.py: {argv[3]}: {e}', file=sys.stderr)
			return 1
		with open(argv[2], 'w', encoding='utf-8') as f:
			f.write(out)
		return 0
	if len(argv) == 3 and argv[1] == 'check':
		with open(argv[2], encoding='utf-8') as f:
			problems = check(f.read())
		for p in problems:
			print(f'{argv[2]}: {p}', file=sys.stderr)
		return 1 if problems else 0
	if len(argv) == 3 and argv[1] == 'text':
		with open(argv[2], encoding='utf-8') as f:
			content = f.read()
		try:
			sys.stdout.write(text(parse(content)))
		except CoverError as e:
			print(f'cover.py: {argv[2]}: {e}', file=sys.stderr)
			return 1
		return 0
	print(__doc__, file=sys.stderr)
	return 2


if __name__ == '__main__':
	sys.exit(main(sys.argv))

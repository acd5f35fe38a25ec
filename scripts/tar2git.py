#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Stream a release tarball into `git fast-import` as one commit.

	tar2git.py TARBALL TOPDIR REF NAME EMAIL EPOCH MESSAGE | git fast-import

Reads TARBALL sequentially (any compression tarfile knows) and writes a
fast-import stream: one root commit on REF, by NAME <EMAIL> at EPOCH (UTC)
for both author and committer, with MESSAGE, whose tree is the contents of
TOPDIR/ in the tarball: regular files (mode 100755 when the owner may
execute them, else 100644, as `git add` records them) and symbolic links.
fast-import writes the objects as one pack, with no loose object and no
extracted tree on disk.  The caller compares the result with the expected
tree and commit: this script decides nothing.  A member it cannot represent
(a hard link, a device, a path git cannot take) is an error.
"""

import sys
import tarfile
from typing import BinaryIO


class TarError(Exception):
	"""A tarball member that cannot become a git tree entry."""


def entry_path(name: str, topdir: str) -> str | None:
	"""The path of member NAME inside TOPDIR, or None when outside it."""
	prefix = topdir.rstrip('/') + '/'
	if not name.startswith(prefix):
		return None
	path = name[len(prefix):].rstrip('/')
	if '\n' in path or path.startswith('"'):
		raise TarError(f'{name}: a path fast-import would need quoted')
	return path or None


def header(out: BinaryIO, ref: str, ident: str, epoch: int, message: str) -> None:
	"""The commit command that the file entries follow."""
	msg = message.encode()
	out.write(f'commit {ref}\n'.encode())
	out.write(f'author {ident} {epoch} +0000\n'.encode())
	out.write(f'committer {ident} {epoch} +0000\n'.encode())
	out.write(b'data %d\n' % len(msg) + msg + b'\n')


def entry(out: BinaryIO, mode: str, path: str, data: bytes) -> None:
	"""One file of the commit, its contents inline."""
	out.write(f'M {mode} inline {path}\n'.encode())
	out.write(b'data %d\n' % len(data))
	out.write(data)
	out.write(b'\n')


def stream(tar: tarfile.TarFile, topdir: str, out: BinaryIO) -> int:
	"""Every member of TAR under TOPDIR as an entry; the number written."""
	n = 0
	for m in tar:
		path = entry_path(m.name, topdir)
		if path is None or m.isdir():
			continue
		if m.isreg():
			f = tar.extractfile(m)
			if f is None:
				raise TarError(f'{m.name}: cannot read')
			entry(out, '100755' if m.mode & 0o100 else '100644', path, f.read())
		elif m.issym():
			entry(out, '120000', path, m.linkname.encode())
		else:
			raise TarError(f'{m.name}: neither a file, a directory nor a symbolic link')
		n += 1
	return n


def main(argv: list[str]) -> int:
	if len(argv) != 8:
		print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
		return 2
	tarball, topdir, ref, name, email, epoch, message = argv[1:]
	out = sys.stdout.buffer
	try:
		with tarfile.open(tarball, 'r|*') as tar:
			header(out, ref, f'{name} <{email}>', int(epoch), message)
			n = stream(tar, topdir, out)
	except (OSError, tarfile.TarError, TarError) as e:
		print(f'tar2git.py: {tarball}: {e}', file=sys.stderr)
		return 1
	if n == 0:
		print(f'tar2git.py: {tarball}: nothing under {topdir}/', file=sys.stderr)
		return 1
	out.write(b'done\n')
	return 0


if __name__ == '__main__':
	sys.exit(main(sys.argv))

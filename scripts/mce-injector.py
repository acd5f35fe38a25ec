#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Inject machine checks into a QEMU guest when a test in it asks.

The guest's end is a serial port (QEMU '-serial unix:GUEST,server=on,
wait=off'); its tests name it in $PFN_POISON_MCE_INJECT.  The host's end is
QEMU's human monitor ('-monitor unix:MONITOR,server=on,wait=off').  A test
writes one line and reads one back, its request followed by the result:

  mce CPU BANK STATUS MCG_STATUS ADDR MISC [user]
  mce CPU BANK STATUS MCG_STATUS ADDR MISC [user] -> ok | -> error: WHY

The first seven words are QEMU's HMP 'mce' command, which is sent with
'-b': the other CPUs take a machine check too (with an invalid error),
as Intel CPUs broadcast them, or the kernel's handler waits for them in
vain and panics.  With 'user' the
machine check is raised only while CPU runs user code: the guest is
stopped, CPU's CS is read, and the 'mce' is issued while the guest is
still stopped, so the vCPU takes the machine check at the user
instruction it stopped at (QEMU delivers #MC before other interrupts).
When CPU is in the kernel the guest runs again for a moment and the
check is repeated, for up to USER_S seconds.  An action-required error
that hits the kernel instead of the test's process would panic the guest;
one that hits another user process (the test pins its reader to CPU and
keeps the others off it) would get that process a SIGBUS.

Runs until QEMU closes either socket; every request and answer goes to
LOG.

Usage: mce-injector.py GUEST_SOCKET MONITOR_SOCKET LOG
"""

import os
import re
import socket
import sys
import time
from typing import List, TextIO

# How long to wait for QEMU to create its sockets.
CONNECT_S = 30.0
# How long to look for CPU in user mode before giving up (the workbench's
# tests shorten it).
USER_S = float(os.environ.get('MCE_INJECTOR_USER_S', '10'))
# QEMU's HMP prompt, which ends every answer.
PROMPT = b'(qemu) '
REQUEST = re.compile(r'^mce( [0-9]+){2}( (0x[0-9a-fA-F]+|[0-9]+)){4}( user)?$')


def connect(path: str) -> socket.socket:
	"""A connection to QEMU's unix socket PATH, once QEMU made it."""
	deadline = time.monotonic() + CONNECT_S
	while True:
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		try:
			s.connect(path)
			return s
		except OSError:
			s.close()
			if time.monotonic() > deadline:
				raise
			time.sleep(0.1)


class Monitor:
	"""QEMU's human monitor: one command at a time, answer up to the prompt."""

	def __init__(self, sock: socket.socket) -> None:
		self.sock = sock
		self.read_prompt()

	def read_prompt(self) -> str:
		"""Everything up to the next prompt."""
		buf = b''
		while not buf.endswith(PROMPT):
			data = self.sock.recv(4096)
			if not data:
				raise EOFError('the monitor closed')
			buf += data
		return buf[:-len(PROMPT)].decode(errors='replace')

	def cmd(self, line: str) -> str:
		"""Run LINE; its output without the echo and the prompt."""
		self.sock.sendall(line.encode() + b'\n')
		out = self.read_prompt()
		# The monitor echoes the command (with terminal escapes).
		lines = out.replace('\r', '').split('\n')
		return '\n'.join(ln for ln in lines[1:] if ln.strip())


def cpu_in_user_mode(mon: Monitor, cpu: int) -> bool:
	"""Whether CPU (of a stopped guest) was stopped in user mode."""
	out = mon.cmd(f'cpu {cpu}')
	if out:
		raise ValueError(f'cpu {cpu}: {out}')
	regs = mon.cmd('info registers')
	m = re.search(r'^CS =([0-9a-f]{4}) ', regs, re.M)
	return m is not None and int(m.group(1), 16) & 3 == 3


def outcome(out: str) -> str:
	"""The answer to a request whose 'mce' printed OUT (nothing when it worked)."""
	return f'error: {out}' if out else 'ok'


def inject(mon: Monitor, words: List[str]) -> str:
	"""Handle one request; the answer line."""
	user = words[-1] == 'user'
	# Broadcast (-b), as Intel CPUs do without local machine checks: the
	# handler on the CPU that took it waits for every other CPU to enter.
	hmp = ' '.join(['mce', '-b'] + words[1:7])
	if not user:
		return outcome(mon.cmd(hmp))
	cpu = int(words[1])
	deadline = time.monotonic() + USER_S
	while time.monotonic() < deadline:
		mon.cmd('stop')
		try:
			if cpu_in_user_mode(mon, cpu):
				return outcome(mon.cmd(hmp))
		except ValueError as e:
			return f'error: {e}'
		finally:
			# Never leave the guest stopped.
			mon.cmd('cont')
		time.sleep(0.005)
	return f'error: CPU {cpu} not seen in user mode within {USER_S:g} s'


def serve(guest: socket.socket, mon: Monitor, log: TextIO) -> None:
	"""Answer the guest's requests until QEMU closes a socket."""
	buf = b''
	while True:
		data = guest.recv(4096)
		if not data:
			return
		buf += data
		while b'\n' in buf:
			raw, buf = buf.split(b'\n', 1)
			line = raw.decode(errors='replace').strip()
			if not line:
				continue
			if REQUEST.match(line):
				answer = inject(mon, line.split())
			else:
				answer = 'error: not "mce CPU BANK STATUS MCG_STATUS ADDR MISC [user]"'
			print(f'{line} -> {answer}', file=log, flush=True)
			guest.sendall(f'{line} -> {answer}\n'.encode())


def main(argv: List[str]) -> int:
	"""Entry point."""
	if len(argv) != 4:
		print(__doc__.strip().rsplit('\n', 1)[-1], file=sys.stderr)
		return 2
	with open(argv[3], 'a', encoding='utf-8') as log:
		try:
			guest = connect(argv[1])
			mon = Monitor(connect(argv[2]))
			serve(guest, mon, log)
		except (OSError, EOFError) as e:
			print(f'mce-injector: {e}', file=log, flush=True)
	return 0


if __name__ == '__main__':
	sys.exit(main(sys.argv))

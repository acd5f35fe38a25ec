#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Tests of the workbench's Python scripts (results, cover, summary,
mce-injector).

Run directly: prints KTAP, one result per test method.
"""

import os
import sys
import traceback
import unittest
from types import TracebackType
from typing import List, Tuple, Type, Union

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
# pylint: disable=wrong-import-position
import cover  # noqa: E402
import results  # noqa: E402
import summary  # noqa: E402
import tar2git  # noqa: E402
import testlist  # noqa: E402


def data(name: str) -> str:
	"""Contents of a sample file."""
	with open(os.path.join(HERE, 'data', name), encoding='utf-8') as f:
		return f.read()


class KselftestTest(unittest.TestCase):
	"""run_kselftest.sh output: nesting, SKIP, TIMEOUT, crash."""

	def setUp(self) -> None:
		self.r = {r.name: r for r in results.parse_kselftest(data('kselftest-nested.ktap'))}

	def test_programs_found(self) -> None:
		self.assertEqual(list(self.r), ['iommu:iommufd', 'iommu:iommufd_fail_nth',
						'vfio_dmabuf:vfio_dmabuf_test', 'mm:slow'])

	def test_nested_counts_with_skip_and_failure(self) -> None:
		r = self.r['iommu:iommufd']
		self.assertEqual((r.passed, r.failed, r.skipped), (2, 1, 1))
		self.assertIn('exit=1', r.note)
		self.assertIn('failed: iommufd_ioas.mock_domain.copy', r.note)

	def test_all_passing(self) -> None:
		r = self.r['iommu:iommufd_fail_nth']
		self.assertEqual((r.passed, r.failed, r.skipped, r.note), (3, 0, 0, ''))

	def test_crashed_program_counts_missing_tests(self) -> None:
		r = self.r['vfio_dmabuf:vfio_dmabuf_test']
		self.assertEqual((r.passed, r.failed, r.skipped), (2, 3, 0))
		self.assertIn('exit=139', r.note)

	def test_timeout(self) -> None:
		r = self.r['mm:slow']
		self.assertEqual((r.passed, r.failed), (1, 1))
		self.assertIn('TIMEOUT 45 seconds', r.note)

	def test_no_verdict_means_guest_died(self) -> None:
		text = 'TAP version 13\n1..1\n# selftests: a: b\n# TAP version 13\n# 1..2\n# ok 1 x\n'
		(r,) = results.parse_kselftest(text)
		self.assertEqual(r.name, 'a:b')
		self.assertGreaterEqual(r.failed, 1)
		self.assertIn('guest died', r.note)

	def test_program_without_ktap(self) -> None:
		text = ('TAP version 13\n1..2\n# selftests: a: plain\n# hello\n'
			'ok 1 selftests: a: plain\n# selftests: a: skipper\n'
			'ok 2 selftests: a: skipper # SKIP\n')
		r = {x.name: x for x in results.parse_kselftest(text)}
		self.assertEqual((r['a:plain'].passed, r['a:plain'].failed), (1, 0))
		self.assertEqual((r['a:skipper'].passed, r['a:skipper'].skipped), (0, 1))

	def test_whole_program_skip(self) -> None:
		text = ('TAP version 13\n1..2\n# selftests: a: noenv\n# TAP version 13\n'
			'# 1..0 # SKIP no /dev/vfio/devices\n'
			'ok 1 selftests: a: noenv # SKIP\n'
			'# selftests: a: lies\n# TAP version 13\n# 1..0 # SKIP whatever\n'
			'not ok 2 selftests: a: lies # exit=1\n')
		r = {x.name: x for x in results.parse_kselftest(text)}
		self.assertEqual((r['a:noenv'].passed, r['a:noenv'].failed, r['a:noenv'].skipped),
				 (0, 0, 1))
		self.assertIn('no /dev/vfio/devices', r['a:noenv'].note)
		# Skipped as a whole, but the runner saw a failure exit: failed.
		self.assertEqual(r['a:lies'].failed, 1)

	def test_missing_plan_and_results_past_it_fail(self) -> None:
		r = results.parse_ktap(['TAP version 13', 'ok 1 a', 'ok 2 b'], 'x')
		self.assertEqual((r.passed, r.failed, r.note), (2, 1, 'no plan line'))
		r = results.parse_ktap(['TAP version 13', '1..1', 'ok 1 a', 'not ok 2 b'], 'y')
		self.assertEqual((r.failed, r.note), (1, '2 results for a plan of 1'))

	def test_record_text_has_no_tabs(self) -> None:
		r = results.Result('a\tb', 1, 0, 0, 'x\ty\nz')
		self.assertEqual(r.tsv().split('\t'), ['a b', '1', '0', '0', 'x y z'])

	def test_no_program_ran(self) -> None:
		import contextlib  # pylint: disable=import-outside-toplevel
		import io  # pylint: disable=import-outside-toplevel
		import tempfile  # pylint: disable=import-outside-toplevel
		out = io.StringIO()
		with tempfile.NamedTemporaryFile('w', suffix='.ktap') as f, \
				contextlib.redirect_stdout(out):
			f.write('# wb: kernel 6.18.5\n')
			f.flush()
			self.assertEqual(results.main(['results.py', 'kselftest', f.name]), 1)
		self.assertIn('\t0\t1\t0\tno test program ran', out.getvalue())

	def test_suffix(self) -> None:
		import contextlib  # pylint: disable=import-outside-toplevel
		import io  # pylint: disable=import-outside-toplevel
		out = io.StringIO()
		with contextlib.redirect_stdout(out):
			results.main(['results.py', 'kselftest', '--suffix', ' (second)',
				      os.path.join(HERE, 'data', 'kselftest-nested.ktap')])
		names = [ln.split('\t')[0] for ln in out.getvalue().splitlines()]
		self.assertEqual(names[:2], ['iommu:iommufd (second)', 'iommu:iommufd_fail_nth (second)'])

	def test_per_test_logs(self) -> None:
		import tempfile  # pylint: disable=import-outside-toplevel
		with tempfile.TemporaryDirectory() as d:
			results.parse_kselftest(data('kselftest-nested.ktap'), d)
			with open(os.path.join(d, 'iommu', 'iommufd_fail_nth.log'), encoding='utf-8') as f:
				log = f.read()
		self.assertTrue(log.startswith('TAP version 13\n1..3\n'))
		self.assertIn('ok 3 basic_fail_nth.access_rw', log)


class KunitTest(unittest.TestCase):
	"""KUnit KTAP on a console with timestamps and noise."""

	def test_suites(self) -> None:
		r = {x.name: x for x in results.parse_kunit(data('console-kunit.log'))}
		self.assertEqual(set(r), {'kunit:dma_buf_phys', 'kunit:p2pdma_provider'})
		self.assertEqual((r['kunit:dma_buf_phys'].passed, r['kunit:dma_buf_phys'].failed,
				  r['kunit:dma_buf_phys'].skipped), (2, 0, 1))
		self.assertEqual((r['kunit:p2pdma_provider'].passed,
				  r['kunit:p2pdma_provider'].failed), (1, 1))

	def test_no_kunit(self) -> None:
		self.assertEqual(results.parse_kunit('[ 0.1] hello\n[ 0.2] world\n'), [])

	def test_kunit_without_suites(self) -> None:
		console = '[ 0.1] KTAP version 1\n[ 0.1] 1..0\n[ 0.2] Run /init\n'
		self.assertEqual(results.parse_kunit(console), [])

	def test_crashed_and_missing_suites_fail(self) -> None:
		console = ('[ 0.1] KTAP version 1\n[ 0.1] 1..3\n'
			   '[ 0.1]     KTAP version 1\n[ 0.1]     # Subtest: a\n'
			   '[ 0.1]     1..1\n[ 0.1]     ok 1 t1\n[ 0.1] ok 1 a\n'
			   '[ 0.1]     KTAP version 1\n[ 0.1]     # Subtest: b\n'
			   '[ 0.1]     1..0\n[ 0.1] not ok 2 b\n'
			   '[ 0.2] reboot: Power down\n')
		r = results.parse_kunit(console)
		self.assertEqual([(x.name, x.passed, x.failed) for x in r],
				 [('kunit:a', 1, 0), ('kunit:b', 0, 1),
				  ('kunit:(suite 3 of 3: no result)', 0, 1)])

	def test_executor_error(self) -> None:
		console = '[ 0.1] kunit executor: unknown filter\n[ 0.2] Run /init\n'
		(r,) = results.parse_kunit(console)
		self.assertEqual(r.failed, 1)


DMABUF_CONSOLE = """[    1.10] dma-buf: Running sanitycheck
[    1.11] dma-buf: Running dma_fence
[    1.11] dma-buf: Running dma_fence/sanitycheck
[    1.12] dma-buf: Running dma_fence/test_signaling
[    1.20] dma-buf: Running dma_resv
[    1.21] dma-buf: Running dma_resv/sanitycheck
[    1.30] Run /init as init process
"""


class BuiltinTest(unittest.TestCase):
	"""Tests built into the kernel, read from the console."""

	def test_dmabuf_selftests_pass(self) -> None:
		r = results.parse_dmabuf_selftests(DMABUF_CONSOLE)
		self.assertEqual((r.name, r.passed, r.failed, r.skipped),
				 ('builtin:dmabuf_selftests', 4, 0, 0))

	def test_dmabuf_selftests_failure(self) -> None:
		# The failure stops the run: dma_resv never starts.
		console = DMABUF_CONSOLE.split('[    1.20]')[0] + \
			'[    1.13] dma-buf/dma_fence: test_signaling failed with error -22\n'
		r = results.parse_dmabuf_selftests(console)
		self.assertEqual((r.passed, r.failed), (2, 1))
		self.assertIn('dma_fence/test_signaling: error -22', r.note)

	def test_dmabuf_selftests_left_out(self) -> None:
		console = ('[    0.3] Kernel command line: console=ttyS0 '
			   'dmabuf_selftests.st_filter=!dma_fence/race_signal_callback,'
			   '!dma_fence_chain/wait_backward --\n' + DMABUF_CONSOLE)
		r = results.parse_dmabuf_selftests(console)
		self.assertEqual((r.passed, r.failed, r.skipped), (4, 0, 2))
		self.assertEqual(r.note, 'dma_fence/race_signal_callback, '
				 'dma_fence_chain/wait_backward left out (st_filter)')

	def test_dmabuf_selftests_absent(self) -> None:
		r = results.parse_dmabuf_selftests('[ 0.1] Run /init as init process\n')
		self.assertEqual((r.passed, r.failed), (0, 1))
		self.assertIn('did not run', r.note)


class SplatTest(unittest.TestCase):
	"""Kernel splats in a console log."""

	def test_each_splat_once(self) -> None:
		found = results.find_splats(data('console-splats.log'))
		self.assertEqual([n for n, _ in found], [5, 12, 15, 17, 18, 19, 20])
		self.assertTrue(found[0][1].startswith('WARNING: CPU: 1 PID: 77 at drivers/vfio'))
		self.assertIn('circular locking', found[1][1])
		self.assertTrue(found[6][1].startswith('Oops: general protection fault'))

	def test_clean_log(self) -> None:
		log = '\n'.join(data('console-splats.log').splitlines()[:3] + ['[ 9.0] reboot: Power down'])
		self.assertEqual(results.find_splats(log), [])

	def test_rip_alone_is_a_splat(self) -> None:
		self.assertEqual(len(results.find_splats('[ 1.0] RIP: 0010:foo+0x1/0x2\n')), 1)


class TestlistTest(unittest.TestCase):
	"""configs/tests.list: the one reader, and its errors."""

	def setUp(self) -> None:
		import tempfile  # pylint: disable=import-outside-toplevel
		self.dir = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
		top = self.dir.name
		for d in ('kunit', 'tools/testing/selftests/mine', 'kernel'):
			os.makedirs(os.path.join(top, d))
		with open(os.path.join(top, 'kunit', 'suite_a.kunitconfig'), 'w',
			  encoding='utf-8') as f:
			f.write('CONFIG_KUNIT=y\n')
		with open(os.path.join(top, 'series'), 'w', encoding='utf-8') as f:
			f.write('# topic-a: words (requires: none)\npatches/topic-a/0001-x.patch\n')
		self.top = top

	def tearDown(self) -> None:
		self.dir.cleanup()

	def read(self, text: str) -> List[testlist.Entry]:
		"""Entries of a tests.list with this text."""
		path = os.path.join(self.top, 'tests.list')
		with open(path, 'w', encoding='utf-8') as f:
			f.write(text)
		return testlist.read(path, self.top, os.path.join(self.top, 'kernel'),
				     os.path.join(self.top, 'series'))

	def test_good(self) -> None:
		e = self.read('# comment\ntopic-a\tkselftest\tmine\nbase kunit suite_a\n')
		self.assertEqual([(x.topic, x.kind, x.name) for x in e],
				 [('topic-a', 'kselftest', 'mine'), ('base', 'kunit', 'suite_a')])
		self.assertEqual(testlist.topic_of(e, 'mine:prog'), 'topic-a')
		self.assertEqual(testlist.topic_of(e, 'kunit:suite_a'), 'base')
		self.assertEqual(testlist.topic_of(e, 'other:prog'), 'unlisted')

	def test_one_program_of_a_target(self) -> None:
		e = self.read('topic-a kselftest mine:prog\nbase kselftest mine\n')
		self.assertEqual(testlist.topic_of(e, 'mine:prog'), 'topic-a')
		self.assertEqual(testlist.topic_of(e, 'mine:other'), 'base')
		with self.assertRaises(testlist.ListError) as ctx:
			self.read('topic-a kselftest nothere:prog\n')
		self.assertIn("selftest target 'nothere:prog' not found", str(ctx.exception))

	def test_builtin(self) -> None:
		e = self.read('topic-a builtin dmabuf_selftests\n')
		self.assertEqual(testlist.topic_of(e, 'builtin:dmabuf_selftests'), 'topic-a')
		with self.assertRaises(testlist.ListError) as ctx:
			self.read('topic-a builtin nothing_such\n')
		self.assertIn("tests.list:1: no builtin test 'nothing_such'", str(ctx.exception))

	def test_every_typo_is_named(self) -> None:
		with self.assertRaises(testlist.ListError) as ctx:
			self.read('topic-b kselftest mine\nbase kselftst mine\n'
				  'base kunit suite_b\nbase kselftest nothere\nbase kunit\n'
				  'base kunit suite_a\nbase kunit suite_a\n')
		msg = str(ctx.exception)
		for n, what in ((1, "topic 'topic-b'"), (2, "unknown kind 'kselftst'"),
				(3, "KUnit suite 'suite_b' has no"), (4, "selftest target 'nothere' not found"),
				(5, 'expected "<topic> <kind> <name>"'), (7, "kunit 'suite_a' listed twice")):
			self.assertIn(f'tests.list:{n}: {what}', msg)


KMEMLEAK_REPORT = '''# wb: run_kselftest.sh exited 0
# wb: kmemleak: unreferenced object 0xffff888004a1b000 (size 64):
# wb: kmemleak:   comm "iommufd_fail_nt", pid 77, jiffies 4294937296
# wb: kmemleak:   backtrace (crc 0):
# wb: kmemleak:     __kmalloc_cache_noprof+0x2ad/0x3a0
# wb: kmemleak:     dev_iommu_get+0x3f/0x120
# wb: kmemleak:     iommu_mock_device_add+0x50/0x90
# wb: kmemleak: unreferenced object 0xffff888004a1c000 (size 128):
# wb: kmemleak:   backtrace (crc 0):
# wb: kmemleak:     __kmalloc_noprof+0x1/0x2
# wb: kmemleak:     vfio_pci_core_feature_dma_buf+0x10/0x200
# wb: kmemleak scan done
'''


class KmemleakTest(unittest.TestCase):
	"""guest-init's kmemleak report against the allow list."""
	allow = [(['dev_iommu_get', 'iommu_mock_device_add'], 'a 6.18.5 bug')]

	def test_allowed_only(self) -> None:
		text = '\n'.join(KMEMLEAK_REPORT.splitlines()[:7] + ['# wb: kmemleak scan done'])
		r = results.check_kmemleak(text, self.allow)
		self.assertEqual((r.passed, r.failed), (1, 0))
		self.assertIn('1 leak(s), 1 accepted', r.note)

	def test_other_leak_fails(self) -> None:
		r = results.check_kmemleak(KMEMLEAK_REPORT, self.allow)
		self.assertEqual((r.passed, r.failed), (0, 1))
		self.assertIn('vfio_pci_core_feature_dma_buf', r.note)

	def test_no_allow_list(self) -> None:
		text = '\n'.join(KMEMLEAK_REPORT.splitlines()[:7] + ['# wb: kmemleak scan done'])
		self.assertEqual(results.check_kmemleak(text, []).failed, 1)

	def test_no_scan_fails(self) -> None:
		r = results.check_kmemleak('# wb: run_kselftest.sh exited 0\n', self.allow)
		self.assertEqual(r.failed, 1)
		self.assertIn('did not scan', r.note)

	def test_allow_file_of_the_repository(self) -> None:
		allow = results.read_allow(os.path.join(os.path.dirname(os.path.dirname(HERE)),
							'configs', 'debug.allow'))
		self.assertEqual([a[0] for a in allow],
				 [['dev_iommu_get', 'iommu_mock_device_add'],
				  ['unwrap_merge_order', 'st_init']])


COVER = '''From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Ada Tester <ada@example.org>
Date: Sun, 11 Jan 2026 00:00:00 +0000
Subject: [PATCH 0/2] vfio/pci: export MMIO through dma-buf and a rather long
 subject that was folded

First paragraph of the design.

Jane Doe (2):
  not an author line, just text (1):
  indented text

Second paragraph.

Ada Tester (2):
  vfio: one
  vfio: two

Jane Doe (1):
  PCI/P2PDMA: three

 drivers/vfio/pci/vfio_pci_core.c | 10 ++++++++++
 1 file changed, 10 insertions(+)

base-commit: 9aa6de3f8cc6434b553e3571ff7d9f276b562ba8
prerequisite-patch-id: 0123456789abcdef0123456789abcdef01234567
'''


class IvshmemTest(unittest.TestCase):
	"""The host's read of what the guest's device wrote into the ivshmem."""
	PASSED = 'ok 57 vfio_dmabuf.iommufd.dma_writes_the_bar\n'

	def ram(self) -> bytearray:
		ram = bytearray(12288)
		ram[8192:8192 + 2048] = results.device_bytes()
		return ram

	def test_the_bytes_are_there(self) -> None:
		r = results.check_ivshmem(self.PASSED, bytes(self.ram()))
		self.assertEqual((1, 0, 0), (r.passed, r.failed, r.skipped))
		self.assertEqual(b'vfio_dmabuf edu\n' + bytes([(16 * 13 + 5) & 0xff]),
				 results.device_bytes()[:17])

	def test_a_wrong_byte_is_named(self) -> None:
		ram = self.ram()
		ram[8192 + 100] ^= 1
		r = results.check_ivshmem(self.PASSED, bytes(ram))
		self.assertEqual((0, 1, 0), (r.passed, r.failed, r.skipped))
		self.assertIn('byte 8292', r.note)

	def test_nothing_written_fails(self) -> None:
		r = results.check_ivshmem(self.PASSED, bytes(12288))
		self.assertEqual((0, 1, 0), (r.passed, r.failed, r.skipped))
		r = results.check_ivshmem(self.PASSED, None)
		self.assertEqual((0, 1, 0), (r.passed, r.failed, r.skipped))
		r = results.check_ivshmem(self.PASSED, bytes(9000))
		self.assertEqual((0, 1, 0), (r.passed, r.failed, r.skipped))

	def test_a_test_that_did_not_pass_is_not_read(self) -> None:
		for log in ('', 'not ok 57 vfio_dmabuf.iommufd.dma_writes_the_bar\n',
			    'ok 57 vfio_dmabuf.iommufd.dma_writes_the_bar # SKIP no edu\n'):
			r = results.check_ivshmem(log, bytes(self.ram()))
			self.assertEqual((0, 0, 1), (r.passed, r.failed, r.skipped), log)


class CoverTest(unittest.TestCase):
	"""Cover letter text carried across exports."""

	def test_parse(self) -> None:
		c = cover.parse(COVER)
		self.assertEqual(c.subject, 'vfio/pci: export MMIO through dma-buf and a rather '
				 'long subject that was folded')
		self.assertEqual(c.blurb[0], 'First paragraph of the design.')
		self.assertEqual(c.blurb[-1], 'Second paragraph.')
		self.assertIn('  indented text', c.blurb)

	def test_fill_refreshes_tail(self) -> None:
		gen = COVER.replace('Subject: [PATCH 0/2] vfio/pci: export MMIO through dma-buf '
				    'and a rather long\n subject that was folded',
				    'Subject: [PATCH 0/3] *** SUBJECT HERE ***')
		gen = gen.split('\n\n', 1)[0] + '\n\n*** BLURB HERE ***\n\nAda Tester (3):\n  x\n'
		out = cover.fill(gen, COVER)
		self.assertIn('Subject: [PATCH 0/3] vfio/pci: export MMIO', out)
		self.assertIn('Second paragraph.\n\nAda Tester (3):\n  x\n', out)
		self.assertEqual(cover.check(out), [])
		# Filling the same generated letter from the result changes nothing.
		self.assertEqual(cover.fill(gen, out), out)
		self.assertEqual(len(cover.check(gen)), 2)

	def test_non_ascii_gets_charset(self) -> None:
		gen = 'From: a\nSubject: [PATCH 0/1] *** SUBJECT HERE ***\n\n*** BLURB HERE ***\n'
		old = 'From: a\nSubject: [PATCH 0/1] x\n\nTested by Ren\u00e9.\n'
		out = cover.fill(gen, old)
		self.assertIn('Content-Type: text/plain; charset=UTF-8\n', out)


class SummaryTest(unittest.TestCase):
	"""The table and the final line."""

	def test_line_and_table(self) -> None:
		rows = [summary.Row('vfio-dmabuf', 'sob', 'p1', 1, 0, 0, ''),
			summary.Row('vfio-dmabuf', 'checkpatch', 'p1', 0, 1, 0, 'x'),
			summary.Row('base', 'test', 'iommu:iommufd', 224, 0, 5, ''),
			summary.Row('series', 'test', 'no kernel splats', 1, 0, 0, '')]
		out = summary.summarize(rows)
		self.assertTrue(out.endswith('\n226 passed, 1 failed, 5 skipped'))
		self.assertIn('0/1 (1 FAILED)', out)
		self.assertIn('224/229 (5 skipped)', out)

	def test_malformed_record_is_a_failure(self) -> None:
		import tempfile  # pylint: disable=import-outside-toplevel
		with tempfile.NamedTemporaryFile('w', suffix='.tsv') as f:
			f.write('t\ttest\tok\t1\t0\t0\t\nt\ttest\tbad\t1\t0\n')
			f.flush()
			rows = summary.read_rows([f.name])
		self.assertEqual([(r.name, r.failed) for r in rows], [('ok', 0), (f'{f.name}:2', 1)])
		self.assertTrue(summary.summarize(rows).endswith('1 passed, 1 failed, 0 skipped'))

	def test_series_order_workbench_apart_and_json(self) -> None:
		import tempfile  # pylint: disable=import-outside-toplevel
		rows = [summary.Row('workbench', 'test', 'quilt', 9, 0, 0, ''),
			summary.Row('series', 'test', 'no splats', 1, 0, 0, ''),
			summary.Row('zeta', 'sob', 'p1', 1, 0, 0, ''),
			summary.Row('alpha', 'test', 'a:b', 0, 2, 0, 'failed: t1, t2'),
			summary.Row('base', 'test', 'iommu:iommufd', 0, 0, 1, 'SKIP')]
		with tempfile.NamedTemporaryFile('w', suffix='series') as f:
			f.write('# zeta: z (requires: none)\np\n# alpha: a (requires: zeta)\np\n')
			f.flush()
			out = summary.summarize(rows, f.name)
			js = summary.to_json(rows, f.name)
		names = [ln.split()[0] for ln in out.splitlines()[2:7] if ln.strip()]
		self.assertEqual(names, ['base', 'zeta', 'alpha', 'series'])
		self.assertIn('\n\nworkbench', out)
		self.assertIn('alpha: test: a:b: 2 failed (failed: t1, t2)', out)
		self.assertIn('kernel and series: 2 passed, 2 failed, 1 skipped; '
			      'workbench: 9 passed, 0 failed, 0 skipped', out)
		self.assertTrue(out.endswith('\n11 passed, 2 failed, 1 skipped'))
		self.assertEqual([g['name'] for g in js['sub_groups']],
				 ['base', 'zeta', 'alpha', 'series', 'workbench'])
		case = js['sub_groups'][2]['sub_groups'][0]['test_cases'][0]
		self.assertEqual((case['name'], case['status']), ('a:b', 'FAIL'))
		self.assertEqual(js['sub_groups'][0]['sub_groups'][0]['test_cases'][0]['status'], 'SKIP')


class Tar2gitTest(unittest.TestCase):
	"""tar2git.py's fast-import stream from small tarballs."""

	@staticmethod
	def tarball(members: List[Tuple[str, str, bytes]]) -> bytes:
		"""A tar of MEMBERS: (name, kind 'f' 'x' 'l' 'h' 'd', data)."""
		# pylint: disable=import-outside-toplevel
		import io
		import tarfile
		buf = io.BytesIO()
		with tarfile.open(fileobj=buf, mode='w') as tar:
			for name, kind, data in members:
				info = tarfile.TarInfo(name)
				if kind in 'fx':
					info.size = len(data)
					info.mode = 0o755 if kind == 'x' else 0o644
					tar.addfile(info, io.BytesIO(data))
					continue
				info.type = {'l': tarfile.SYMTYPE, 'h': tarfile.LNKTYPE,
					     'd': tarfile.DIRTYPE}[kind]
				info.linkname = data.decode()
				tar.addfile(info)
		return buf.getvalue()

	def stream(self, members: List[Tuple[str, str, bytes]]) -> Tuple[int, bytes]:
		"""tar2git.stream() of a tarball of MEMBERS under linux-1/."""
		# pylint: disable=import-outside-toplevel
		import io
		import tarfile
		out = io.BytesIO()
		with tarfile.open(fileobj=io.BytesIO(self.tarball(members)), mode='r|') as tar:
			n = tar2git.stream(tar, 'linux-1', out)
		return n, out.getvalue()

	def test_modes_and_links(self) -> None:
		n, out = self.stream([('linux-1/', 'd', b''), ('linux-1/a.c', 'f', b'int a;\n'),
				      ('linux-1/s.sh', 'x', b'#!/bin/sh\n'),
				      ('linux-1/l.c', 'l', b'a.c'), ('other/x', 'f', b'no')])
		self.assertEqual(n, 3)
		self.assertEqual(out, b'M 100644 inline a.c\ndata 7\nint a;\n\n'
				 b'M 100755 inline s.sh\ndata 10\n#!/bin/sh\n\n'
				 b'M 120000 inline l.c\ndata 3\na.c\n')

	def test_hard_link_is_an_error(self) -> None:
		with self.assertRaisesRegex(tar2git.TarError, 'linux-1/h.c: neither'):
			self.stream([('linux-1/a.c', 'f', b'x'), ('linux-1/h.c', 'h', b'linux-1/a.c')])

	def test_quoted_path_is_an_error(self) -> None:
		with self.assertRaisesRegex(tar2git.TarError, 'quoted'):
			self.stream([('linux-1/"q.c', 'f', b'x')])

	def test_header(self) -> None:
		# pylint: disable=import-outside-toplevel
		import io
		out = io.BytesIO()
		tar2git.header(out, 'refs/x', 'A <a@b>', 5, 'm\n')
		self.assertEqual(out.getvalue(), b'commit refs/x\nauthor A <a@b> 5 +0000\n'
				 b'committer A <a@b> 5 +0000\ndata 2\nm\n\n')


class MceInjectorTest(unittest.TestCase):
	"""mce-injector.py between a stand-in guest port and a stand-in monitor."""

	def run_injector(self, requests: List[str], cs: List[str], mce_error: str = '',
			 user_s: str = '10') -> Tuple[List[str], List[str]]:
		"""Answers to REQUESTS and the monitor commands they caused.  The
		monitor reports CS values from CS in turn, and MCE_ERROR for 'mce'."""
		# pylint: disable=import-outside-toplevel
		import socket
		import subprocess
		import tempfile
		import threading
		commands: List[str] = []
		answers: List[str] = []
		with tempfile.TemporaryDirectory() as d:
			guest_path, mon_path = os.path.join(d, 'inject'), os.path.join(d, 'monitor')
			guest_srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
			guest_srv.settimeout(30)
			guest_srv.bind(guest_path)
			guest_srv.listen(1)
			mon_srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
			mon_srv.settimeout(30)
			mon_srv.bind(mon_path)
			mon_srv.listen(1)

			def monitor() -> None:
				conn, _ = mon_srv.accept()
				conn.settimeout(30)
				conn.sendall(b'QEMU 7.2.22 monitor - type \'help\' for more information\r\n(qemu) ')
				f = conn.makefile('rb')
				for raw in f:
					line = raw.decode().strip()
					commands.append(line)
					out = ''
					if line == 'info registers':
						sel = cs.pop(0) if cs else '0010'
						out = f'RAX=0\r\nCS ={sel} 0000000000000000 ffffffff 00a0fb00\r\n'
					elif line.startswith('mce'):
						out = mce_error
					# Echo (with an escape, as QEMU does), output, prompt.
					conn.sendall(f'{line}\x1b[K\r\n{out}(qemu) '.encode())
				f.close()
				conn.close()

			t = threading.Thread(target=monitor)
			t.start()
			log = os.path.join(d, 'log')
			proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(HERE),
									 'mce-injector.py'),
						 guest_path, mon_path, log],
						env=dict(os.environ, MCE_INJECTOR_USER_S=user_s))
			conn, _ = guest_srv.accept()
			conn.settimeout(30)
			f = conn.makefile('rb')
			for req in requests:
				conn.sendall(req.encode() + b'\n')
				answers.append(f.readline().decode().strip())
			f.close()
			conn.close()
			self.assertEqual(proc.wait(timeout=30), 0)
			t.join(timeout=30)
			mon_srv.close()
			guest_srv.close()
		return answers, commands

	def test_broadcast(self) -> None:
		answers, commands = self.run_injector(['mce 0 1 0xbd000000000000c0 0x5 0x1000 0x86'], [])
		self.assertEqual(answers, ['mce 0 1 0xbd000000000000c0 0x5 0x1000 0x86 -> ok'])
		self.assertEqual(commands, ['mce -b 0 1 0xbd000000000000c0 0x5 0x1000 0x86'])

	def test_user_waits_for_user_mode(self) -> None:
		answers, commands = self.run_injector(
			['mce 1 1 0xbd80000000000134 0x7 0x2000 0x86 user'], ['0010', '0033'])
		self.assertEqual(answers, ['mce 1 1 0xbd80000000000134 0x7 0x2000 0x86 user -> ok'])
		self.assertEqual(commands, ['stop', 'cpu 1', 'info registers', 'cont',
					    'stop', 'cpu 1', 'info registers',
					    'mce -b 1 1 0xbd80000000000134 0x7 0x2000 0x86', 'cont'])

	def test_bad_request_and_monitor_error(self) -> None:
		answers, commands = self.run_injector(
			['mce 0 1 0x1', 'mce 0 1 0x1 0x2 0x3 0x4'], [], 'Unknown CPU\r\n')
		self.assertTrue(answers[0].startswith('mce 0 1 0x1 -> error: not "mce CPU'))
		self.assertEqual(answers[1], 'mce 0 1 0x1 0x2 0x3 0x4 -> error: Unknown CPU')
		self.assertEqual(commands, ['mce -b 0 1 0x1 0x2 0x3 0x4'])

	def test_user_gives_up_and_leaves_the_guest_running(self) -> None:
		# The kernel all along: give up after USER_S, the guest running.
		answers, commands = self.run_injector(['mce 0 1 0x1 0x2 0x3 0x4 user'], [],
						      user_s='0.3')
		self.assertEqual(answers, ['mce 0 1 0x1 0x2 0x3 0x4 user -> error: '
					   'CPU 0 not seen in user mode within 0.3 s'])
		self.assertEqual(commands[-1], 'cont')
		self.assertEqual(commands.count('stop'), commands.count('cont'))
		self.assertNotIn('mce -b 0 1 0x1 0x2 0x3 0x4', commands)


ExcInfo = Union[Tuple[Type[BaseException], BaseException, TracebackType],
		Tuple[None, None, None]]


class KtapResult(unittest.TextTestResult):
	"""Prints one KTAP line per test."""
	n = 0

	def _line(self, test: unittest.TestCase, ok: bool, directive: str = '') -> None:
		KtapResult.n += 1
		print(f'{"ok" if ok else "not ok"} {KtapResult.n} {test.id()}{directive}', flush=True)

	def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802
		super().addSuccess(test)
		self._line(test, True)

	def _fail(self, test: unittest.TestCase, err: ExcInfo) -> None:
		text = ''.join(traceback.format_exception(err[1])) if err[1] else 'error'
		for line in text.splitlines():
			print(f'# {line}')
		self._line(test, False)

	def addFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:  # noqa: N802
		super().addFailure(test, err)
		self._fail(test, err)

	def addError(self, test: unittest.TestCase, err: ExcInfo) -> None:  # noqa: N802
		super().addError(test, err)
		self._fail(test, err)


def main() -> int:
	"""Run every test, print KTAP."""
	suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
	print('KTAP version 1')
	print(f'1..{suite.countTestCases()}')
	runner = unittest.TextTestRunner(stream=open(os.devnull, 'w', encoding='utf-8'),
					 resultclass=KtapResult)
	res: List[unittest.TestResult] = [runner.run(suite)]
	return 0 if res[0].wasSuccessful() else 1


if __name__ == '__main__':
	sys.exit(main())

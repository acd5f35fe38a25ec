#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Take out of kernel/drivers/dma-buf/dma-buf.c what the dmabuf-revoke topic
adds to attach, map and unmap: the revoked checks and the count of mappings.

The baseline for the cost the topic adds to those calls, measured with the
benchmark case of its KUnit suite on both kernels (see the topic's cover
letter).  A throwaway change of the working tree, never committed:

    python3 bench/dma-buf-revoke-baseline.py
    scripts/build kernel
    VM_APPEND='memmap=256M$0x70000000 dma_buf_revoke_test.benchmark=1' \\
        GUEST_CMD=true scripts/vm
    git -C kernel checkout drivers/dma-buf/dma-buf.c
"""

import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(TOP, 'kernel', 'drivers', 'dma-buf', 'dma-buf.c')

CUTS = [
	('''	/* A hint, to spare the exporter's callback: checked again below */
	if (READ_ONCE(dmabuf->revoked))
		return ERR_PTR(-ENODEV);
''', ''),
	('''	dma_resv_lock(dmabuf->resv, NULL);
	if (dmabuf->revoked) {
		dma_resv_unlock(dmabuf->resv);
		ret = -ENODEV;
		goto err_revoked;
	}
	list_add(&attach->node, &dmabuf->attachments);''',
	 '''	dma_resv_lock(dmabuf->resv, NULL);
	if (0)
		goto err_revoked;
	list_add(&attach->node, &dmabuf->attachments);'''),
	('''	if (attach->dmabuf->revoked)
		return ERR_PTR(-ENODEV);

	if (dma_buf_pin_on_map(attach)) {''', '''	if (dma_buf_pin_on_map(attach)) {'''),
	('''	attach->nr_mappings++;
	WRITE_ONCE(attach->dmabuf->nr_mappings, attach->dmabuf->nr_mappings + 1);
''', ''),
	('''	dma_buf_put_mappings(attach, 1);''', ''),
]


def main() -> int:
	"""Apply every cut, or change nothing."""
	with open(PATH, encoding='utf-8') as f:
		text = f.read()
	for old, new in CUTS:
		if text.count(old) != 1:
			print(f'{PATH}: not found once:\n{old}', file=sys.stderr)
			return 1
		text = text.replace(old, new)
	with open(PATH, 'w', encoding='utf-8') as f:
		f.write(text)
	return 0


if __name__ == '__main__':
	sys.exit(main())

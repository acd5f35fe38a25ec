# SPDX-License-Identifier: GPL-2.0
#
# The one entry point of the workbench.  'make help' lists the targets.

SHELL := /bin/bash
S := scripts

.PHONY: help run check check-debug deps base apply export build config vm test kunit guest-run \
	mail patch-checks selftest clean

help:
	@echo 'make run            install, fetch the base, apply, build, boot, test, summary'
	@echo 'make check          run + per-patch checks, mails, kunit.py, workbench tests'
	@echo 'make check-debug    run with KASAN, kmemleak, DMA-API debug, UBSAN (build/debug/)'
	@echo 'make deps           install the Debian packages this machine lacks'
	@echo 'make base           populate kernel/ with Linux 6.18.5 (tag v6.18.5)'
	@echo 'make apply          git am the quilt onto a fresh "series" branch in kernel/'
	@echo 'make export         regenerate patches/ and series from the "series" branch'
	@echo 'make build          build the test kernel and the selftests (build/)'
	@echo 'make vm             boot the test kernel and run every selftest'
	@echo 'make test T=c:t     build, boot and run one selftest (e.g. T=iommu:iommufd)'
	@echo 'make kunit [SUITE=s] each KUnit suite (or s) alone through kunit.py'
	@echo 'make guest-run CMD=c build, boot and run one command (e.g. a benchmark) in the guest'
	@echo 'make mail [TOPIC=t] write a topic'"'"'s mails to build/mail/<t>/ and check they apply'
	@echo 'make patch-checks   checkpatch, kernel-doc, Signed-off-by and W=1 build per patch'
	@echo 'make selftest       the workbench'"'"'s own tests'
	@echo 'make clean          remove build/ (kernel/, ccache and ~/.cache/linux-wb are kept)'

run:
	$(S)/check run

check:
	$(S)/check check

check-debug:
	$(S)/check debug

deps:
	$(S)/deps

base:
	$(S)/fetch-base

apply: base
	$(S)/apply

export:
	$(S)/export

config:
	$(S)/build config

build:
	$(S)/build all

vm:
	$(S)/vm

# WB_MACHINE=mce: the machine-check machine (scripts/vm), whose logs carry
# its name.
MSFX := $(if $(filter-out main,$(WB_MACHINE)),.$(WB_MACHINE))

test:
	@[ -n "$(T)" ] || { echo 'usage: make test T=collection:test' >&2; exit 2; }
	@python3 $(S)/testlist.py list kselftest | grep -qxF -- "$$(echo '$(T)' | cut -d: -f1)" || { \
		echo "make test: '$(T)': the guest runs only these selftest targets" \
			"(configs/tests.list): $$(python3 $(S)/testlist.py list kselftest | paste -sd' ')" >&2; \
		exit 2; }
	$(S)/build all
	KSELFTEST_ARGS="-t $(T)" $(S)/vm
	python3 $(S)/results.py kselftest --logs build/logs/kselftest$(MSFX) build/logs/kselftest$(MSFX).ktap
	python3 $(S)/results.py splats build/logs/console$(MSFX).log

kunit:
	@[ -z "$(SUITE)" ] || [ -f kunit/$(SUITE).kunitconfig ] || { \
		echo "make kunit: no suite '$(SUITE)': kunit/ has" \
			"$$(cd kunit && ls *.kunitconfig | sed 's/\.kunitconfig$$//' | paste -sd' ')" >&2; \
		exit 2; }
	[ "$(KUNIT_BUILD)" = 1 ] || { $(S)/build config && $(S)/build kernel; }
	$(S)/kunit $(SUITE)

guest-run:
	@[ -n "$(CMD)" ] || { echo 'usage: make guest-run CMD="pfn_poison/pfn_poison_test --bench"' >&2; exit 2; }
	$(S)/build all
	GUEST_CMD="$(CMD)" $(S)/vm
	@grep -v '^# wb: pci' build/logs/kselftest.ktap

mail:
	$(S)/mail $(TOPIC)

patch-checks:
	$(S)/build config
	$(S)/build kernel
	$(S)/check-patches

selftest:
	$(S)/tests/run

clean:
	rm -rf build

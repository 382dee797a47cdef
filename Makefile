# Two commands do everything on a fresh machine (see README.md):
#   make book   set up .venv if needed, then build the HTML book into _build/html
#   make test   set up .venv if needed, then lint, unit tests, every chapter once under nbval,
#               the book build from those executions (warnings are errors), and the website
#               in a real browser
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON_VERSION := 3.11
PYTHON ?= python$(PYTHON_VERSION)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tlcourse-installed
EXTRAS := book,test
CHAPTERS := $(sort $(wildcard chapters/*.md))
# Every page that is a notebook: the chapters, and the results page (machine and versions).
NOTEBOOKS := $(CHAPTERS) appendix/results.md
# The order the notebooks start in under nbval, slowest first (the chapters' times in the
# README's timing table), then any page not named here. pytest-xdist hands each worker two
# files at a time, in this order (--no-loadscope-reorder; its default order is by number of
# cells): the two slowest chapters start at once, on different workers, and the short ones
# fill the gaps at the end. That shortens the run's wall time, not any chapter's.
SLOWEST_FIRST := chapters/07_domain_adaptation.md chapters/04_fine_tuning.md chapters/09_your_own_images.md \
	chapters/05_semi_supervised.md chapters/03_feature_extraction.md chapters/08_scaling_out.md chapters/06_gan_augmentation.md \
	chapters/01_what_is_transfer_learning.md chapters/02_pretraining.md
RUN_ORDER := $(filter $(NOTEBOOKS),$(SLOWEST_FIRST)) $(filter-out $(SLOWEST_FIRST),$(NOTEBOOKS))

.PHONY: help setup book test test-portable lint unit notebooks site linkcheck student clean

help:
	@echo "make book   build the book into _build/html (creates .venv on first use)"
	@echo "make test   lint, unit tests, every chapter under nbval, the book build, the browser test"
	@echo "make test-portable   every chapter under nbval with one thread, no oneDNN, an empty data cache"
	@echo "make linkcheck   check the book's external links (needs internet; not part of make test)"
	@echo "make student   the student edition (solutions replaced by stubs) into _build/student/_build/html"

# The stamp is rebuilt when the pins change, so `make` re-installs exactly then.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python $(PYTHON_VERSION) is needed: $(PYTHON) not found." >&2; exit 1; }
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(PYTHON_VERSION))))'; then \
		echo "$(VENV) has the wrong Python; recreating it."; rm -rf $(VENV); fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); \
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"; \
	echo "installed the pinned dependencies in $$(( $$(date +%s) - start )) s"
	@if [ "$${TLCOURSE_NEWEST:-0}" = 1 ]; then \
		echo "TLCOURSE_NEWEST=1: the pinned packages upgraded to their newest releases"; \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade \
			$$($(BIN)/python .ci/pinned_names.py); fi
	@$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tlcourse)" >/dev/null
	@touch $(STAMP)

comma := ,

setup: $(STAMP)

book: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going; \
	PYTHONPATH=_ext $(BIN)/python -m tlcourse_book.notebooks . _build/notebooks; \
	echo "book built in $$(( $$(date +%s) - start )) s: _build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check src tests _ext .ci
	$(BIN)/ruff format --check src tests _ext .ci
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

unit: $(STAMP)
	$(BIN)/pytest tests -q -p no:cacheprovider --ignore=tests/site -n auto

# The browser test drives Debian's Chromium (Playwright's own browser download cannot work
# offline). As root it is installed here, with fonts for the glossary's Chinese terms and
# the emoji of the timings table.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "The browser test needs Chromium at $(CHROMIUM): sudo apt-get install chromium" >&2; exit 1; fi
	@start=$$(date +%s); \
	apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei fonts-noto-color-emoji >/dev/null; \
	echo "installed Chromium in $$(( $$(date +%s) - start )) s"

# The built website in a real browser: every page loads without JavaScript errors, every
# image loads, formulas are typeset, no output shows a traceback, no request leaves the
# machine, the sidebar lists every chapter, search works. Two workers (pytest-xdist), each
# with its own server (a free port) and browser: 56 s against 76 s on two cores.
site: $(STAMP) $(CHROMIUM)
	@test -f _build/html/index.html || { echo "No built book: run make book first." >&2; exit 1; }
	$(BIN)/pytest tests/site -q -p no:cacheprovider -n 2
	@echo "screenshots of every page: _build/screenshots"

linkcheck: $(STAMP)
	$(BIN)/jupyter-book build . --builder linkcheck

# Every chapter runs once, under nbval: one test per code cell, so a failing assertion fails
# the run. Each chapter whose cells all pass goes into the execution cache, keyed on its code,
# the package source and the pins (_ext/tlcourse_book), and the book is built from it.
# Two chapters at a time (pytest-xdist, one file per worker), each kernel on one thread:
# two kernels keep both cores busy, where one kernel leaves most of the second one idle.
# The source model that most chapters start from is pretrained first (or found in the data
# cache), so that no chapter waits for another one to train it; with the thread settings a
# chapter's kernel would have (the thread count changes the float rounding, and so the model).
NOTEBOOK_WORKERS ?= 2
KERNEL_THREADS = $(if $(filter 1,$(NOTEBOOK_WORKERS)),,OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1})
notebooks: $(STAMP)
	@start=$$(date +%s); \
	$(KERNEL_THREADS) $(BIN)/python -c 'import tlcourse.torch as tt; tt.get_source_model()'; \
	echo "source model ready in $$(( $$(date +%s) - start )) s"
	PYTHONPATH=_ext $(BIN)/pytest -p tlcourse_book.nbval_cache --nbval-lax --nbval-current-env \
		--nbval-kernel-startup-timeout 300 -p no:cacheprovider -q --durations=10 -n $(NOTEBOOK_WORKERS) --dist loadfile \
		--no-loadscope-reorder $(RUN_ORDER)

# The chapters as a reader's laptop may run them: one thread per kernel, TensorFlow without
# its oneDNN kernels, and an empty data cache, so the synthetic digits are rendered and the
# source model is pretrained again under those settings. Every assertion must still hold.
# Nothing is stored for the book (TLCOURSE_BOOK_CACHE=0): the book shows make test's run.
test-portable: $(STAMP)
	@cache=$$(mktemp -d); trap 'rm -rf "$$cache"' EXIT; \
	export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
		TF_ENABLE_ONEDNN_OPTS=0 TLCOURSE_CACHE_DIR="$$cache" TLCOURSE_BOOK_CACHE=0; \
	$(call timed,every chapter under nbval$(comma) portable settings,$(MAKE) --no-print-directory notebooks)

# Chromium first: a missing browser should fail the run at its start, not after an hour.
# The book step must find every chapter in the cache the nbval run wrote: with
# TLCOURSE_REQUIRE_CACHED=1 it fails rather than execute a chapter a second time.
test: $(STAMP) $(CHROMIUM)
	@$(call timed,lint,$(MAKE) --no-print-directory lint)
	@$(call timed,unit tests,$(MAKE) --no-print-directory unit)
	@$(call timed,every chapter under nbval,$(MAKE) --no-print-directory notebooks)
	@$(call timed,book build from the nbval run,TLCOURSE_REQUIRE_CACHED=1 $(MAKE) --no-print-directory book)
	@$(call timed,browser test,$(MAKE) --no-print-directory site)

# The student edition, generated from the chapters (never a second copy): every solution
# becomes a stub cell that raises NotImplementedError (tlcourse_book.student). Its notebooks
# run under nbval like the book's (the stubs are the only cells allowed to raise), the
# site is built from that run, and no page may still show a solution.
STUDENT := _build/student
student: $(STAMP) $(CHROMIUM)
	PYTHONPATH=_ext $(BIN)/python -m tlcourse_book.student $(STUDENT)
	$(KERNEL_THREADS) $(BIN)/python -c 'import tlcourse.torch as tt; tt.get_source_model()'
	cd $(STUDENT) && PYTHONPATH=$(CURDIR)/_ext $(CURDIR)/$(BIN)/pytest -p tlcourse_book.nbval_cache \
		--nbval-lax --nbval-current-env --nbval-kernel-startup-timeout 300 -p no:cacheprovider -q \
		-n $(NOTEBOOK_WORKERS) --dist loadfile --no-loadscope-reorder --book-root . $(RUN_ORDER)
	cd $(STUDENT) && TLCOURSE_REQUIRE_CACHED=1 $(CURDIR)/$(BIN)/jupyter-book build . --builder html -W -n --keep-going
	PYTHONPATH=_ext $(BIN)/python -m tlcourse_book.student --check $(STUDENT)/_build/html
	PYTHONPATH=_ext $(BIN)/python -m tlcourse_book.notebooks $(STUDENT) $(STUDENT)/_build/notebooks
	TLCOURSE_SITE_HTML=$(STUDENT)/_build/html $(BIN)/pytest tests/site -q -p no:cacheprovider -n 2

# $(call timed,what,command): run the command, then print how long it took.
timed = start=$$(date +%s); $(2); echo "make test: $(1) took $$(( $$(date +%s) - start )) s"

clean:
	rm -rf _build  # also drops the execution cache, so every chapter runs again

"""A pytest plugin: nbval runs each chapter once, and the book build reuses that run.

Use it as ``pytest -p tlcourse_book.nbval_cache --nbval-lax chapters/*.md``. Each MyST
Markdown notebook is read as MyST-NB reads it and run by nbval, one test per code cell
(a failing ``assert`` fails its test; a cell tagged ``raises-exception`` must raise).
When every cell of a chapter has passed, the executed notebook, with the outputs nbval
collected, goes into the execution cache of the current environment
(:func:`tlcourse_book.execution.cache_path`), where the book build finds it and executes
nothing. A chapter with a failing or skipped cell is not cached, and neither is any
chapter of a run with ``TLCOURSE_BOOK_CACHE=0`` (``make test-portable``: a run under a
reader's settings, whose outputs the book must not show).
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

from tlcourse_book import execution

# Which framework a code cell drives, read from its source: the course's aliases
# (``tt``/``tk``, also when passed as the backend of an experiment loop) and the
# frameworks' own names.
_USES = {
    "PyTorch": re.compile(r"\btt\b|\btorch\b|\btorchvision\b|\bnn\.|torchrun"),
    "TensorFlow": re.compile(r"\btk\b|\bkeras\b|\btensorflow\b|\btf\."),
}
FRAMEWORK_LABELS = ("PyTorch", "TensorFlow", "both", "neither")
#: Set to ``0`` to run the chapters without storing them for the book build.
BOOK_CACHE = "TLCOURSE_BOOK_CACHE"


def framework_of(source: str) -> str:
    """``"PyTorch"``, ``"TensorFlow"``, ``"both"`` or ``"neither"``: what a cell runs."""
    used = [name for name, pattern in _USES.items() if pattern.search(source)]
    return used[0] if len(used) == 1 else ("both" if used else "neither")


def split_seconds(cells: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per framework label for ``(source, seconds)`` pairs (every label present)."""
    seconds = dict.fromkeys(FRAMEWORK_LABELS, 0.0)
    for source, duration in cells:
        seconds[framework_of(source)] += duration
    return seconds


def format_split(seconds: dict[str, float]) -> str:
    return ", ".join(f"{label} {seconds[label]:.0f} s" for label in FRAMEWORK_LABELS)


def pytest_addoption(parser):
    group = parser.getgroup("tlcourse-book")
    group.addoption(
        "--book-root",
        default=None,
        help="the book's root folder (holds _config.yml, src/ and pyproject.toml); "
        "default: the nearest parent of the rootdir with a _config.yml",
    )


#: What a kernel may use when several chapters run side by side (``pytest -n 2``): one
#: thread each, so two kernels share two cores instead of four threads fighting for them.
#: Each chapter runs 10-35% longer on one thread than alone on two (measured), but two at
#: a time finish all chapters in about 0.6 of the serial wall time.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def pytest_configure(config):
    option = config.getoption("book_root")
    if option and not (Path(option) / "_config.yml").is_file():
        raise pytest.UsageError(f"--book-root {option}: no _config.yml there")
    if hasattr(config, "workerinput"):  # an xdist worker: the controller prints
        if int(config.workerinput.get("workercount", 1)) > 1:  # kernels inherit this
            for name, value in ONE_THREAD.items():
                os.environ.setdefault(name, value)
    else:
        config.pluginmanager.register(ChapterLines(config), "tlcourse-chapter-lines")


def _book_root(config) -> Path:
    option = config.getoption("book_root")
    if option:
        return Path(option).resolve()
    for folder in (Path(config.rootpath), *Path(config.rootpath).parents):
        if (folder / "_config.yml").is_file():
            return folder.resolve()
    raise pytest.UsageError("no _config.yml above the rootdir: pass --book-root")


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".md" and execution.is_notebook(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None


class MystNotebook(IPyNbFile):
    """A chapter: nbval's notebook collector, reading the ``.md`` as MyST-NB does."""

    def collect(self):
        self.book_root = _book_root(self.config)
        self.nb = execution.read_notebook(self.path, self.book_root)
        self.outcomes: dict[int, tuple[str, list]] = {}
        self.durations: dict[int, float] = {}
        code_cells = [cell for cell in self.nb.cells if cell.cell_type == "code"]
        for number, cell in enumerate(code_cells):
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.update(dict(find_comment_markers(cell.source)))
            options.setdefault("check", self.compare_outputs)
            yield IPyNbCell.from_parent(
                self, name=f"Cell {number}", cell_num=number, cell=cell, options=options
            )

    def setup(self):
        self.started = time.perf_counter()
        super().setup()  # starts the kernel, in the chapter's folder as MyST-NB does

    def teardown(self):
        super().teardown()
        seconds = time.perf_counter() - self.started
        n_cells = sum(cell.cell_type == "code" for cell in self.nb.cells)
        passed = [n for n, (outcome, _) in self.outcomes.items() if outcome == "passed"]
        name = Path(os.path.relpath(self.path, self.book_root)).as_posix()
        failed = f"{n_cells - len(passed)} of {n_cells} cells did not pass"
        if os.environ.get(BOOK_CACHE, "") == "0":
            note = f"not cached ({BOOK_CACHE}=0)" + (f"; {failed}" if len(passed) < n_cells else "")
        elif len(passed) == n_cells:
            folder = execution.cache_path(self.book_root)
            outputs = [self.outcomes[n][1] for n in range(n_cells)]
            execution.store_executed(folder, self.nb, outputs, str(self.path), seconds)
            note = "cached for the book build"
        else:
            note = f"not cached: {failed}"
        code = [cell.source for cell in self.nb.cells if cell.cell_type == "code"]
        split = split_seconds([(code[n], t) for n, t in self.durations.items()])
        line = f"{name} ran once in {seconds:.0f} s ({n_cells} cells; {format_split(split)})"
        line = f"{line}, {note}"
        # Carried by the last cell's teardown report (below), which xdist's workers send to
        # the process that prints.
        self.summary = {"line": line, "split": split}


_PROPERTY = "tlcourse_chapter"


class ChapterLines:
    """Prints each chapter's line as its last cell's teardown report arrives, then all.

    Registered in the process that prints (the xdist controller, or the only process):
    xdist's workers forward their reports to it.
    """

    def __init__(self, config):
        self.config = config
        self.lines: list[str] = []
        self.totals = dict.fromkeys(FRAMEWORK_LABELS, 0.0)

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == _PROPERTY:
                for label, seconds in value["split"].items():
                    self.totals[label] += seconds
                self.lines.append(value["line"])
                self._write_now(value["line"])

    def _write_now(self, line: str) -> None:
        """Print ``line`` now, past pytest's output capture."""
        manager = self.config.pluginmanager
        reporter = manager.get_plugin("terminalreporter")
        capture = manager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("chapters, each executed once")
            for line in self.lines:
                terminalreporter.write_line(line)
        if len(self.lines) > 1:
            terminalreporter.write_line(f"all pages: {format_split(self.totals)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    parent = item.parent
    if isinstance(parent, MystNotebook) and isinstance(item, IPyNbCell):
        if report.when == "call":
            outputs = list(getattr(item, "test_outputs", None) or [])
            parent.outcomes[item.cell_num] = (report.outcome, outputs)
            parent.durations[item.cell_num] = report.duration
        elif report.outcome != "passed":  # set-up or teardown failed, or skipped
            parent.outcomes[item.cell_num] = (report.outcome, [])
        summary = getattr(parent, "summary", None)
        if report.when == "teardown" and summary is not None:
            report.user_properties.append((_PROPERTY, summary))
            parent.summary = None
    return report

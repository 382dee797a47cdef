"""Notebooks for Colab and Binder: one per chapter, the package pinned to the built commit."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nbformat

from tlcourse_book import notebooks
from tlcourse_book.execution import read_notebook

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))


def test_each_chapter_becomes_a_notebook_that_installs_the_package_at_the_commit(tmp_path):
    written = notebooks.write_notebooks(ROOT, tmp_path, commit="0123456789abcdef")
    assert [p.stem for p in written] == [c.stem for c in CHAPTERS]
    repository, edition = notebooks.book_settings(ROOT)
    assert edition == "teacher" and repository == "https://github.com/tlcourse/tlcourse"
    for chapter, path in zip(CHAPTERS, written, strict=True):
        assert path == tmp_path / "teacher" / "chapters" / f"{chapter.stem}.ipynb"
        notebook = nbformat.read(path, 4)
        nbformat.validate(notebook)
        first, *rest = notebook.cells
        assert first.metadata["tags"] == [notebooks.INSTALL_TAG]
        assert f"tlcourse @ git+{repository}@0123456789abcdef" in first.source
        assert [c.source for c in rest] == [c.source for c in read_notebook(chapter, ROOT).cells]
        assert "source_map" not in json.dumps([c.metadata for c in rest])


def test_the_install_cell_does_nothing_on_a_readers_machine():
    cell = notebooks.install_cell("https://github.com/o/r", "abc")
    namespace: dict = {}
    exec(compile(cell.source, "install", "exec"), namespace)  # no Colab, no Binder here
    assert namespace["HOSTED"] is False


def _context(pagename, edition):
    app = SimpleNamespace(config=SimpleNamespace(
        tlcourse_edition=edition,
        html_theme_options={"repository_url": "https://github.com/o/r", "launch_buttons": {
            "colab_url": "https://colab.research.google.com",
            "binderhub_url": "https://mybinder.org"}}))  # fmt: skip
    buttons = [
        {"url": "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/x.md"},
        {"url": "https://colab.research.google.com/github/o/r/blob/main/x.md"},
    ]
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": buttons}]}
    notebooks.point_launch_buttons(app, pagename, "page.html", context, None)
    return [b["url"] for b in buttons]


def test_launch_buttons_open_the_editions_notebook_on_the_notebooks_branch():
    binder, colab = _context("chapters/02_pretraining", "student")
    assert colab == ("https://colab.research.google.com/github/o/r/blob/notebooks/"
                     "student/chapters/02_pretraining.ipynb")  # fmt: skip
    assert binder == ("https://mybinder.org/v2/gh/o/r/notebooks?urlpath=tree/"
                      "student/chapters/02_pretraining.ipynb")  # fmt: skip
    assert _context("intro", "teacher")[0].endswith("/main?urlpath=tree/x.md")  # not a chapter

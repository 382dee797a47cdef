"""The book build's fixes: duplicate scripts dropped, pasting pages rewritten, outputs kept."""

import nbformat
from docutils import nodes
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from myst_nb.ext.glue.utils import PendingGlueReference
from sphinx.builders.html._assets import _JavaScript

from tlcourse_book.fixes import (
    _drop_duplicate_scripts,
    has_outputs,
    pastes_from_other_docs,
    restore_cached_outputs,
    unique_scripts,
)


def test_inline_script_added_twice_is_kept_once():
    # The two forms Sphinx 7.4 produces for the same script: file name None and "".
    thebe = "const THEBE_JS_URL = 'x'"
    scripts = [
        _JavaScript("doctools.js"),
        _JavaScript(None, body=thebe),
        _JavaScript("sphinx-thebe.js", **{"async": "async"}),
        _JavaScript("", body=thebe),
    ]
    assert unique_scripts(scripts) == scripts[:3]


def test_different_scripts_are_all_kept():
    scripts = [_JavaScript(None, body="let a = 1"), _JavaScript(None, body="let b = 2")]
    scripts.append(_JavaScript("a.js"))
    scripts.append(_JavaScript("a.js", defer="defer"))
    assert unique_scripts(scripts) == scripts


def test_page_context_is_cleaned_in_place():
    scripts = [_JavaScript(None, body="const X = 1"), _JavaScript("", body="const X = 1")]
    context = {"script_files": scripts}
    _drop_duplicate_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] is scripts and len(scripts) == 1


def test_pages_that_paste_from_other_pages_are_recognised():
    doctree = nodes.document(None, None)
    paragraph = nodes.paragraph()
    doctree += paragraph
    assert not pastes_from_other_docs(doctree)
    paragraph += PendingGlueReference(refdoc="chapters/01", key="acc", inline=True, gtype="text")
    assert pastes_from_other_docs(doctree)


def _notebook(source, output=None):
    cell = nbformat.v4.new_code_cell(source)
    if output is not None:
        cell.outputs = [nbformat.v4.new_output("stream", text=output)]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return notebook


def test_cached_outputs_are_written_into_the_downloadable_notebook(tmp_path):
    cache = get_cache(tmp_path / "cache")
    executed = _notebook("print(1)", output="1\n")
    cache.cache_notebook_bundle(CacheBundleIn(executed, "chapter.ipynb"), check_validity=False)
    path = tmp_path / "chapter.ipynb"
    nbformat.write(_notebook("print(1)"), path)  # what MyST-NB wrote: no outputs

    assert restore_cached_outputs(path, tmp_path / "cache")
    restored = nbformat.read(path, as_version=4)
    assert has_outputs(restored) and restored.cells[0].outputs[0]["text"] == "1\n"
    assert not restore_cached_outputs(path, tmp_path / "cache")  # nothing left to do


def test_notebook_missing_from_the_cache_is_left_alone(tmp_path):
    path = tmp_path / "other.ipynb"
    nbformat.write(_notebook("print(2)"), path)
    before = path.read_text()
    assert not restore_cached_outputs(path, tmp_path / "cache")
    assert path.read_text() == before

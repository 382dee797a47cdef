"""The book's Sphinx extension: duplicate scripts dropped, pasting pages rewritten."""

from docutils import nodes
from myst_nb.ext.glue.utils import PendingGlueReference
from sphinx.builders.html._assets import _JavaScript

from tlcourse.sphinxext import _drop_duplicate_scripts, pastes_from_other_docs, unique_scripts


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

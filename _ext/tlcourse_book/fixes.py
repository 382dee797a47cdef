"""Fixes to what Sphinx and MyST-NB write (part of the ``tlcourse_book`` extension).

1. Sphinx 7.4 (the version Jupyter Book 1 runs on) keeps an inline script that an extension
adds after the builder starts twice: once as given (file name ``None``) and once more,
copied from its registry, with the file name ``""``. The two never compare equal, so the
page includes both. sphinx-thebe's ``const THEBE_JS_URL = ...`` is such a script, and the
browser then throws "Identifier 'THEBE_JS_URL' has already been declared" on every page.
This extension removes the second copy before the page is written.

2. A page that pastes glued values from other pages (``{glue:text}`path::key```, as the
   "Results at a glance" page does) is filled in when it is written. Sphinx rewrites only
   pages whose own source changed, so after a chapter runs again such a page would keep
   the old values; this extension rewrites every pasting page on every build.

3. The chapters' download button offers the executed notebook that MyST-NB writes to
   ``_build/jupyter_execute``. MyST-NB 1.4 writes it *without outputs* when the outputs
   come from the execution cache (a chapter whose code did not change since the last
   build); this extension writes it again with the cached outputs merged in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def script_key(script: Any) -> tuple:
    """What makes two page scripts the same: file (``None`` and ``""`` alike), attributes."""
    filename = str(getattr(script, "filename", script) or "")
    attributes = getattr(script, "attributes", {})
    return filename, tuple(sorted((k, str(v)) for k, v in attributes.items()))


def unique_scripts(scripts: list) -> list:
    """``scripts`` without repeats (by :func:`script_key`), in their original order."""
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"][:] = unique_scripts(list(context["script_files"]))


def _pasting_docs(env) -> set[str]:
    if not hasattr(env, "tlcourse_pasting_docs"):
        env.tlcourse_pasting_docs = set()
    return env.tlcourse_pasting_docs


def pastes_from_other_docs(doctree) -> bool:
    """Whether a doctree holds glue references to other documents, resolved at write time."""
    from myst_nb.ext.glue.utils import PendingGlueReference

    return any(True for _ in doctree.findall(PendingGlueReference))


def _note_pasting_doc(app, doctree) -> None:
    docs = _pasting_docs(app.env)
    if pastes_from_other_docs(doctree):
        docs.add(app.env.docname)
    else:
        docs.discard(app.env.docname)


def _rewrite_pasting_docs(app, env) -> list[str]:
    return sorted(doc for doc in _pasting_docs(env) if doc in env.found_docs)


def has_outputs(notebook) -> bool:
    """Whether any code cell of ``notebook`` (an nbformat node) has an output."""
    return any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def restore_cached_outputs(path: Path, cache_path: str | Path) -> bool:
    """Merge the cached outputs into the notebook at ``path`` if it has none; True if done."""
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(path, as_version=4)
    if has_outputs(notebook):
        return False
    try:
        _, merged = get_cache(cache_path).merge_match_into_notebook(notebook)
    except KeyError:  # not in the cache: it was executed in this build, or not at all
        return False
    nbformat.write(merged, path)
    return True


def _write_executed_notebook(app, doctree) -> None:
    config = getattr(app.env, "mystnb_config", None)
    if config is None or config.execution_mode != "cache":
        return
    path = Path(config.output_folder, *f"{app.env.docname}.ipynb".split("/"))
    if path.exists():
        restore_cached_outputs(path, config.execution_cache_path or ".jupyter_cache")


def connect(app) -> None:
    """Connect the three fixes to the Sphinx events they need."""
    # After every other handler (priority 900), so that scripts added per page count too.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("doctree-read", _note_pasting_doc)
    app.connect("env-updated", _rewrite_pasting_docs)
    app.connect("doctree-read", _write_executed_notebook)

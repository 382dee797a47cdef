"""The book's Sphinx extension and build tools (not part of the readers' package).

* The execution cache is keyed on the environment: MyST-NB's cache folder becomes
  ``_build/.jupyter_cache/HASH``, with HASH from the package source, the pins and the
  Python version (:mod:`tlcourse_book.execution`), so the book never shows outputs of
  older code.
* With ``TLCOURSE_REQUIRE_CACHED=1`` (as ``make test`` sets it after the nbval run) the
  build fails as soon as it would execute a chapter itself: every page must show the
  outputs of the nbval run (:mod:`tlcourse_book.nbval_cache`).
* A page is read again whenever its chapter has a newer cache entry (a new nbval run),
  even if the page's source did not change, so it always shows the latest execution.
* Fixes to what Sphinx 7.4 and MyST-NB 1.4 write (:mod:`tlcourse_book.fixes`).

``_config.yml`` enables it with ``sphinx: local_extensions: {tlcourse_book: _ext}``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sphinx.errors import ExtensionError

from tlcourse_book import execution, fixes

REQUIRE_CACHED = "TLCOURSE_REQUIRE_CACHED"


def environment_cache_path(srcdir: str | Path, outdir: str | Path, configured: str) -> Path:
    """Where the build keeps executed chapters for the current environment."""
    if not configured:  # MyST-NB's default place, as the nbval run computes it
        return execution.cache_path(srcdir, Path(outdir).parent)
    base = Path(configured) if Path(configured).is_absolute() else Path(srcdir) / configured
    return base.resolve() / execution.environment_hash(srcdir)


def _set_cache_path(app, config) -> None:
    path = environment_cache_path(app.srcdir, app.outdir, config.nb_execution_cache_path)
    config.nb_execution_cache_path = str(path)
    execution.prune_other_environments(path)


def _cache_records(cache_folder: str) -> list:
    """Every record in the jupyter-cache at ``cache_folder`` (none if it does not exist)."""
    from jupyter_cache import get_cache

    if not Path(cache_folder).is_dir():
        return []
    return get_cache(cache_folder).list_cache_records()


def _records(cache_folder: str) -> set[tuple]:
    return {(r.pk, r.hashkey, r.uri, str(r.created)) for r in _cache_records(cache_folder)}


def _remember_cached(app) -> None:
    app.tlcourse_cached_before = _records(app.config.nb_execution_cache_path)


def _refuse_execution(app, doctree) -> None:
    if os.environ.get(REQUIRE_CACHED, "") in ("", "0"):
        return
    new = _records(app.config.nb_execution_cache_path) - app.tlcourse_cached_before
    if new:
        uris = ", ".join(sorted(uri for _, _, uri, _ in new))
        raise ExtensionError(
            f"{REQUIRE_CACHED} is set, but the book build executed {uris}: the nbval run "
            "left no cache entry for it (run `make notebooks` first, or unset the variable)"
        )


def _latest_record(cache_folder: str, source: Path) -> tuple | None:
    """The newest cache record of the chapter at ``source``, as (pk, created)."""
    records = [(r.pk, str(r.created)) for r in _cache_records(cache_folder) if r.uri == str(source)]
    return max(records) if records else None


def _used_records(env) -> dict:
    if not hasattr(env, "tlcourse_records"):
        env.tlcourse_records = {}
    return env.tlcourse_records


def _note_record(app, doctree) -> None:
    from myst_nb.sphinx_ import NbMetadataCollector

    docname = app.env.docname
    if NbMetadataCollector.get_exec_data(app.env, docname) is None:
        _used_records(app.env).pop(docname, None)  # not an executed notebook
        return
    source = Path(app.env.doc2path(docname))
    record = _latest_record(app.config.nb_execution_cache_path, source)
    _used_records(app.env)[docname] = record


def _outdated_by_a_new_run(app, env, added, changed, removed) -> list[str]:
    """Pages whose chapter was executed again (by nbval) since the page was read."""
    folder = app.config.nb_execution_cache_path
    return [
        docname
        for docname, record in _used_records(env).items()
        if docname in env.found_docs
        and docname not in changed
        and _latest_record(folder, Path(env.doc2path(docname))) != record
    ]


def _merge_records(app, env, docnames, other) -> None:
    _used_records(env).update({d: r for d, r in _used_records(other).items() if d in docnames})


def setup(app) -> dict:
    # After MyST-NB's own config handlers, before it reads the value at builder-inited.
    app.connect("config-inited", _set_cache_path, priority=900)
    app.connect("builder-inited", _remember_cached, priority=900)
    app.connect("doctree-read", _refuse_execution)
    # A page is read again when its chapter has a newer cache entry (a new nbval run), even
    # if its source is unchanged: it always shows the latest execution.
    app.connect("doctree-read", _note_record)
    app.connect("env-get-outdated", _outdated_by_a_new_run)
    app.connect("env-merge-info", _merge_records)
    fixes.connect(app)
    # Which edition this build is ("teacher" or "student", set by tlcourse_book.student);
    # each chapter's Colab and Binder buttons open that edition's notebook.
    from tlcourse_book import notebooks  # here: `python -m tlcourse_book.notebooks` runs it

    app.add_config_value("tlcourse_edition", "teacher", "html")
    app.connect("html-page-context", notebooks.point_launch_buttons, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

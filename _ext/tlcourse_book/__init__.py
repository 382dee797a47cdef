"""The book's Sphinx extension and build tools (not part of the readers' package).

* The execution cache is keyed on the environment: MyST-NB's cache folder becomes
  ``_build/.jupyter_cache/HASH``, with HASH from the package source, the pins and the
  Python version (:mod:`tlcourse_book.execution`), so the book never shows outputs of
  older code.
* With ``TLCOURSE_REQUIRE_CACHED=1`` (as ``make test`` sets it after the nbval run) the
  build fails as soon as it would execute a chapter itself: every page must show the
  outputs of the nbval run (:mod:`tlcourse_book.nbval_cache`).
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
    base = Path(configured) if configured else Path(outdir).parent / ".jupyter_cache"
    if not base.is_absolute():
        base = Path(srcdir) / base
    return base.resolve() / execution.environment_hash(srcdir)


def _set_cache_path(app, config) -> None:
    path = environment_cache_path(app.srcdir, app.outdir, config.nb_execution_cache_path)
    config.nb_execution_cache_path = str(path)
    execution.prune_other_environments(path)


def _records(cache_folder: str) -> set[tuple]:
    from jupyter_cache import get_cache

    if not Path(cache_folder).is_dir():
        return set()
    records = get_cache(cache_folder).list_cache_records()
    return {(r.pk, r.hashkey, r.uri, str(r.created)) for r in records}


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


def setup(app) -> dict:
    # After MyST-NB's own config handlers, before it reads the value at builder-inited.
    app.connect("config-inited", _set_cache_path, priority=900)
    app.connect("builder-inited", _remember_cached, priority=900)
    app.connect("doctree-read", _refuse_execution)
    fixes.connect(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

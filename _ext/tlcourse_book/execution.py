"""One execution per chapter, shared by the test run and the book build.

The book build (MyST-NB in ``cache`` mode) looks each chapter up in a jupyter-cache folder
by a hash of its code cells. Two things are added here:

* **The cache folder is keyed on the environment.** Its name is a hash of the package
  source (``src/tlcourse``), the pinned dependencies (``pyproject.toml``) and the Python
  version, so a change to any of them makes every chapter run again, without ``make clean``.
  MyST-NB's own key covers the code cells only.
* **The test run fills the cache.** The nbval run (:mod:`tlcourse_book.nbval_cache`)
  executes each chapter once and stores the executed notebook here, read from the ``.md``
  exactly as MyST-NB reads it, so that the book build finds every chapter cached and shows
  the outputs of that run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tomllib
from pathlib import Path

import nbformat

from tlcourse.files import file_lock

#: Hex digits of the environment hash used in the cache folder's name.
HASH_LENGTH = 16
#: Cache folders of other environments kept (the newest ones) when a new one is made.
KEEP_OTHER_ENVIRONMENTS = 2


def _pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf8")).get("project", {})
    pins = list(project.get("dependencies", []))
    for name, extra in sorted(project.get("optional-dependencies", {}).items()):
        pins += [f"[{name}] {req}" for req in extra]
    return pins


def _source_files(package: Path) -> list[Path]:
    return sorted(
        path
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def environment_hash(root: str | Path) -> str:
    """Hash of what a chapter's outputs depend on besides its code cells.

    The package source under ``root/src/tlcourse`` (every file, by path and content), the
    dependency pins in ``root/pyproject.toml`` and the Python version (major.minor).
    """
    root = Path(root)
    package = root / "src" / "tlcourse"
    pyproject = root / "pyproject.toml"
    if not package.is_dir():
        raise FileNotFoundError(f"no package source at {package}")
    if not pyproject.is_file():
        raise FileNotFoundError(f"no pins at {pyproject}")
    digest = hashlib.sha256()
    digest.update(f"python {sys.version_info[0]}.{sys.version_info[1]}\n".encode())
    digest.update(json.dumps(_pins(pyproject)).encode())
    for path in _source_files(package):
        digest.update(b"\0" + path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:HASH_LENGTH]


def cache_path(root: str | Path, build_dir: str | Path | None = None) -> Path:
    """The jupyter-cache folder for the current environment: ``_build/.jupyter_cache/HASH``."""
    root = Path(root).resolve()
    build_dir = Path(build_dir) if build_dir is not None else root / "_build"
    return build_dir / ".jupyter_cache" / environment_hash(root)


def prune_other_environments(path: Path, keep: int = KEEP_OTHER_ENVIRONMENTS) -> list[Path]:
    """Remove all but the ``keep`` newest sibling cache folders of ``path``; return them."""
    if not path.parent.is_dir():
        return []
    others = [
        p
        for p in path.parent.iterdir()
        if p.is_dir() and p != path and len(p.name) == HASH_LENGTH and _is_hex(p.name)
    ]
    others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = others[keep:]
    for old in removed:
        shutil.rmtree(old)
    return removed


def _is_hex(name: str) -> bool:
    return all(c in "0123456789abcdef" for c in name)


def markdown_config(root: str | Path):
    """MyST's parser configuration as the book build uses it (the ``_config.yml`` extensions)."""
    import yaml
    from myst_parser.config.main import MdParserConfig

    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf8")) or {}
    extensions = config.get("parse", {}).get("myst_enable_extensions", [])
    return MdParserConfig(enable_extensions=set(extensions))


def is_notebook(path: str | Path) -> bool:
    """Whether ``path`` is a MyST Markdown notebook (the front matter names a kernel)."""
    from myst_nb.core.read import is_myst_markdown_notebook

    path = Path(path)
    return path.suffix == ".md" and is_myst_markdown_notebook(path.read_text(encoding="utf8"))


def read_notebook(path: str | Path, root: str | Path) -> nbformat.NotebookNode:
    """The notebook MyST-NB reads from the chapter at ``path`` (same reader, same options)."""
    from myst_nb.core.read import read_myst_markdown_notebook

    path = Path(path)
    return read_myst_markdown_notebook(
        path.read_text(encoding="utf8"),
        config=markdown_config(root),
        add_source_map=True,
        path=str(path),
    )


def store_executed(
    cache_folder: str | Path,
    notebook: nbformat.NotebookNode,
    outputs: list[list],
    uri: str,
    seconds: float,
):
    """Put ``notebook`` with the outputs of each code cell into the cache; return the record.

    ``outputs[i]`` are the outputs of the i-th code cell, in order. Earlier records of the
    same ``uri`` (older versions of the chapter) are removed.
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    executed = nbformat.from_dict(json.loads(json.dumps(notebook)))
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    if len(code_cells) != len(outputs):
        raise ValueError(f"{len(code_cells)} code cells but outputs for {len(outputs)}")
    for count, (cell, cell_outputs) in enumerate(zip(code_cells, outputs, strict=True), 1):
        cell.execution_count = count
        cell.outputs = [nbformat.from_dict(dict(out)) for out in cell_outputs]
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count
    # Locked: chapters run side by side (make notebooks runs two at once) write one cache.
    with file_lock(Path(cache_folder) / ".tlcourse-write.lock"):
        cache = get_cache(str(cache_folder))
        for record in cache.list_cache_records():
            if record.uri == uri:
                cache.remove_cache(record.pk)
        return cache.cache_notebook_bundle(
            CacheBundleIn(executed, uri, data={"execution_seconds": seconds}),
            check_validity=True,
            overwrite=True,
        )


def cached_record(cache_folder: str | Path, notebook: nbformat.NotebookNode):
    """The cache record MyST-NB would use for ``notebook``, or None."""
    from jupyter_cache import get_cache

    try:
        return get_cache(str(cache_folder)).match_cache_notebook(notebook)
    except KeyError:
        return None

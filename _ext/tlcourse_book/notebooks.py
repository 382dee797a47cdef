"""Notebooks that open on Colab and Binder, and the launch buttons that point at them.

Colab cannot read a MyST ``.md``, and neither service has the course package. So the build
writes every chapter as ``.ipynb`` into ``_build/notebooks/EDITION/chapters/`` with one cell
in front that, on Colab or Binder only, installs the package pinned to the commit the page
was built from (a floating version breaks every hosted notebook when a dependency moves).
The publishing workflow pushes that folder, both editions, to the ``notebooks`` branch, and
:func:`point_launch_buttons` makes each page's Colab and Binder buttons open the notebook of
its own edition there.

``python -m tlcourse_book.notebooks ROOT OUT`` writes the notebooks of the book at ``ROOT``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import yaml

from tlcourse_book.execution import read_notebook

#: The branch the publishing workflow pushes the notebooks to.
NOTEBOOKS_BRANCH = "notebooks"
#: Tag of the first cell, which installs the package on a hosted service.
INSTALL_TAG = "hosted-install"


def book_settings(root: str | Path) -> tuple[str, str]:
    """``(repository URL, edition)`` of the book at ``root``, from its ``_config.yml``."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf8"))
    url = config["repository"]["url"].rstrip("/")
    edition = config.get("sphinx", {}).get("config", {}).get("tlcourse_edition", "teacher")
    return url, edition


def current_commit(root: str | Path) -> str:
    """The commit checked out at ``root``; ``main`` where it is not a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "main"
    return out.stdout.strip()


def install_cell(repository: str, commit: str) -> nbformat.NotebookNode:
    """The first cell: installs the package at ``commit`` on Colab or Binder, else nothing."""
    source = f"""\
# On Colab or Binder the course package is missing: this cell installs it, pinned to the
# commit this notebook was built from, with the pinned PyTorch and TensorFlow. On your own
# machine (`make book` or `make test` set up .venv) it does nothing.
import os
import subprocess
import sys

HOSTED = "google.colab" in sys.modules or "BINDER_SERVICE_HOST" in os.environ
if HOSTED:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "tlcourse @ git+{repository}@{commit}"])
    import torch

    print("Installed tlcourse at commit {commit[:12]}.",
          "A GPU is available." if torch.cuda.is_available() else "No GPU here.",
          "The chapters train on the CPU as the book did (chapter 9 uses a GPU when there is",
          "one), so numbers can differ from the book's in the last digits. If pip asks for",
          "it, restart the session (Colab: Runtime > Restart session) and run this cell again.")
"""
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [INSTALL_TAG]
    return cell


def write_notebooks(root: str | Path, out: str | Path, commit: str | None = None) -> list[Path]:
    """Write every chapter of the book at ``root`` as ``out/EDITION/chapters/NAME.ipynb``."""
    root = Path(root).resolve()
    repository, edition = book_settings(root)
    commit = commit or current_commit(root)
    written = []
    for chapter in sorted((root / "chapters").glob("*.md")):
        notebook = read_notebook(chapter, root)
        notebook.cells.insert(0, install_cell(repository, commit))
        for cell in notebook.cells:  # no build-only source maps in a reader's notebook
            cell.metadata.pop("source_map", None)
        target = Path(out) / edition / "chapters" / f"{chapter.stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.from_dict(notebook), target)
        written.append(target)
    return written


def launch_urls(colab: str, binder: str, repository: str, edition: str, pagename: str):
    """Colab and Binder addresses of ``pagename``'s notebook on the notebooks branch."""
    org, repo = urlsplit(repository).path.strip("/").split("/")[:2]
    path = f"{edition}/{pagename}.ipynb"
    return (
        f"{colab.rstrip('/')}/github/{org}/{repo}/blob/{NOTEBOOKS_BRANCH}/{path}",
        f"{binder.rstrip('/')}/v2/gh/{org}/{repo}/{NOTEBOOKS_BRANCH}?urlpath=tree/{path}",
    )


def point_launch_buttons(app, pagename, templatename, context, doctree) -> None:
    """Make a chapter's Colab and Binder buttons open its notebook on the notebooks branch.

    Runs after sphinx-book-theme's ``add_launch_buttons`` (priority 501), which points them
    at the page's source on the default branch: a ``.md`` that Colab cannot open and a
    notebook without the package on Binder.
    """
    if not pagename.startswith("chapters/"):
        return
    repository = app.config.html_theme_options.get("repository_url", "")
    edition = app.config.tlcourse_edition
    launch = app.config.html_theme_options.get("launch_buttons", {})
    colab, binder = launch_urls(
        launch.get("colab_url", "https://colab.research.google.com"),
        launch.get("binderhub_url", "https://mybinder.org"),
        repository, edition, pagename,
    )  # fmt: skip
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if group.get("label") == "launch-buttons" else []:
            host = urlsplit(button.get("url", "")).netloc
            if host == urlsplit(colab).netloc:
                button["url"] = colab
            elif host == urlsplit(binder).netloc:
                button["url"] = binder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlcourse_book.notebooks")
    parser.add_argument("root", help="the book's root (holds _config.yml and chapters/)")
    parser.add_argument("out", help="folder for EDITION/chapters/*.ipynb")
    args = parser.parse_args(argv)
    try:
        written = write_notebooks(args.root, args.out)
    except (OSError, ValueError, KeyError) as err:
        print(f"notebooks: {err}", file=sys.stderr)
        return 1
    print(f"notebooks: {len(written)} chapters -> {Path(written[0]).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

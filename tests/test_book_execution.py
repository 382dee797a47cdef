"""One execution per chapter: the nbval run fills the cache the book build reads, and the
cache follows the package source and the pins (_ext/tlcourse_book)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_cache import get_cache

from tlcourse_book import REQUIRE_CACHED, environment_cache_path, execution

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

CHAPTER = (
    FRONT_MATTER
    + """
# One chapter

```{code-cell} ipython3
import uuid
from pathlib import Path

source = Path("../src/tlcourse/__init__.py").read_text()
print("package says", source.split("=")[1].strip())
print("run", uuid.uuid4().hex)
```

A deliberate error is shown, not raised:

```{code-cell} ipython3
:tags: [raises-exception]
1 / 0
```

```{code-cell} ipython3
assert "VALUE" in source
6 * 7
```
"""
)


def _make_book(folder: Path, chapter: str = CHAPTER) -> Path:
    (folder / "chapters").mkdir(parents=True)
    (folder / "src" / "tlcourse").mkdir(parents=True)
    (folder / "src" / "tlcourse" / "__init__.py").write_text("VALUE = 1\n")
    pins = '[project]\nname = "tiny"\ndependencies = ["numpy==2.4.6"]\n'
    (folder / "pyproject.toml").write_text(pins)
    (folder / "_config.yml").write_text(
        "title: Tiny\n"
        "only_build_toc_files: true\n"
        "exclude_patterns: [_build, src]\n"
        "execute:\n  execute_notebooks: cache\n  stderr_output: remove\n"
        "parse:\n  myst_enable_extensions: [colon_fence, dollarmath]\n"
        "sphinx:\n"
        f"  local_extensions:\n    tlcourse_book: {ROOT / '_ext'}\n"
        "  config:\n    nb_execution_raise_on_error: true\n"
    )
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: chapters/one\n"
    )
    (folder / "intro.md").write_text("# Tiny book\n")
    (folder / "chapters" / "one.md").write_text(chapter)
    return folder


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_CACHED}
    env["PYTHONPATH"] = str(ROOT / "_ext")
    env.update(extra)
    return env


def _build(book: Path, **env):
    return subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(book), "--builder", "html"],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=300,
    )


def _nbval(book: Path, *extra: str, chapters: tuple[str, ...] = ("one",), **env):
    return subprocess.run(
        [str(BIN / "pytest"), "-p", "tlcourse_book.nbval_cache", "--nbval-lax"]
        # A kernel can take over a minute to start while the other unit tests load both
        # cores (nbval's default 60 s timed out once in CI).
        + ["--nbval-kernel-startup-timeout", "300"]
        + ["--nbval-current-env", "-p", "no:cacheprovider", "--book-root", str(book)]
        + ["--rootdir", str(book), "-q", *extra]
        + [str(book / "chapters" / f"{name}.md") for name in chapters],
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=book,
        timeout=900,
    )


def _page(book: Path) -> str:
    return (book / "_build" / "html" / "chapters" / "one.html").read_text()


def _records(book: Path):
    folder = execution.cache_path(book)
    if not folder.is_dir():
        return []
    return get_cache(str(folder)).list_cache_records()


def _run_id(notebook) -> str:
    return notebook.cells[0].outputs[0]["text"].split("run ")[1].strip()


def test_environment_hash_follows_source_and_pins_only(tmp_path):
    book = _make_book(tmp_path / "book")
    first = execution.environment_hash(book)
    assert first == execution.environment_hash(book)
    (book / "src" / "tlcourse" / "__pycache__").mkdir()
    (book / "src" / "tlcourse" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (book / "chapters" / "notes.txt").write_text("not an input")
    assert execution.environment_hash(book) == first

    (book / "src" / "tlcourse" / "__init__.py").write_text("VALUE = 2\n")
    second = execution.environment_hash(book)
    (book / "src" / "tlcourse" / "new.py").write_text("")
    third = execution.environment_hash(book)
    pyproject = book / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("2.4.6", "2.4.7"))
    fourth = execution.environment_hash(book)
    assert len({first, second, third, fourth}) == 4


def test_the_build_and_the_nbval_run_use_the_same_cache_folder(tmp_path):
    book = _make_book(tmp_path / "book")
    built = environment_cache_path(book, book / "_build" / "html", "")
    assert built == execution.cache_path(book)
    assert built.parent == (book / "_build" / ".jupyter_cache").resolve()


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no package source"):
        execution.environment_hash(tmp_path)


@pytest.mark.parametrize(
    "source, label",
    [
        ("tt.fit(model, X, y)", "PyTorch"),
        ("from torch import nn\nhead = nn.Linear(64, 10)", "PyTorch"),
        ("import keras\nbody = keras.Model(a, b)", "TensorFlow"),
        ("F = tk.extract_features(source_keras, X)", "TensorFlow"),
        ("acc = run_few_shot(tt, tt.build_digit_net, X, y)", "PyTorch"),
        ("curve_keras = learning_curve(tk, F_keras)", "TensorFlow"),
        ("for backend in (tt, tk):\n    run(backend)", "both"),
        ("tt.port_to_keras(source_torch, copy)\ntk.predict(copy, X)", "both"),
        ("attn, stk = np.zeros(3), 1  # the aliases count only as whole names", "neither"),
    ],
)
def test_cells_are_timed_per_framework(source, label):
    from tlcourse_book.nbval_cache import framework_of, split_seconds

    assert framework_of(source) == label
    split = split_seconds([(source, 2.5), ("x = 1", 1.0)])
    assert split[label] == pytest.approx(2.5 + (label == "neither"))
    assert sum(split.values()) == pytest.approx(3.5)


def test_only_the_newest_other_environments_are_kept(tmp_path):
    folders = [tmp_path / f"{n:016x}" for n in range(5)]
    for age, folder in enumerate(folders):
        folder.mkdir()
        os.utime(folder, (1_000_000 + age, 1_000_000 + age))
    (tmp_path / "keep-me").mkdir()
    removed = execution.prune_other_environments(folders[0], keep=2)
    assert sorted(removed) == folders[1:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [folders[0].name, folders[3].name, folders[4].name, "keep-me"]
    )


@pytest.mark.slow
def test_book_reuses_the_nbval_run_and_reruns_after_a_source_change(tmp_path):
    book = _make_book(tmp_path / "book")

    run = _nbval(book)
    assert run.returncode == 0, run.stdout + run.stderr
    line = r"chapters/one\.md ran once in \d+ s \(3 cells; PyTorch 0 s, .* neither \d+ s\), cached"
    assert re.search(line, run.stdout)
    (record,) = _records(book)
    cached = get_cache(str(execution.cache_path(book))).get_cache_bundle(record.pk).nb
    outputs = [cell.outputs for cell in cached.cells]
    assert outputs[0][0]["text"].startswith("package says 1\nrun ")
    assert outputs[1][0]["ename"] == "ZeroDivisionError"  # the deliberate error is kept
    assert outputs[2][0]["data"]["text/plain"] == "42"

    # The book finds the chapter cached: executing it would fail this build.
    built = _build(book, TLCOURSE_REQUIRE_CACHED="1")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "package says 1" in _page(book) and "ZeroDivisionError" in _page(book)
    assert [r.pk for r in _records(book)] == [record.pk]
    assert _run_id(cached) in _page(book)

    # Another nbval run replaces the entry; the page, its source unchanged, shows the new run.
    assert _nbval(book).returncode == 0
    (newer,) = _records(book)
    newer_nb = get_cache(str(execution.cache_path(book))).get_cache_bundle(newer.pk).nb
    assert _run_id(newer_nb) != _run_id(cached)
    built = _build(book, TLCOURSE_REQUIRE_CACHED="1")
    assert built.returncode == 0, built.stdout + built.stderr
    assert _run_id(newer_nb) in _page(book) and _run_id(cached) not in _page(book)

    # A change to the package source: a new cache folder, so the chapter runs again.
    (book / "src" / "tlcourse" / "__init__.py").write_text("VALUE = 2\n")
    refused = _build(book, TLCOURSE_REQUIRE_CACHED="1")
    assert refused.returncode != 0
    assert "executed" in refused.stdout + refused.stderr
    rebuilt = _build(book)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "package says 2" in _page(book) and "package says 1" not in _page(book)

    # And a build right after executes nothing.
    again = _build(book, TLCOURSE_REQUIRE_CACHED="1")
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.slow
def test_two_chapters_side_by_side_each_run_once_on_one_thread_and_are_cached(tmp_path):
    book = _make_book(tmp_path / "book")
    threads = 'import os\nprint("threads", os.environ.get("OMP_NUM_THREADS"))'
    second = FRONT_MATTER + f"# Two\n\n```{{code-cell}} ipython3\n{threads}\n```\n"
    (book / "chapters" / "two.md").write_text(second)
    run = _nbval(book, "-n", "2", "--dist", "loadfile", chapters=("one", "two"))
    assert run.returncode == 0, run.stdout + run.stderr
    for name, cells in (("one", 3), ("two", 1)):  # printed by the controller, once each
        line = rf"chapters/{name}\.md ran once in \d+ s \({cells} cells; .*\), cached"
        assert len(re.findall(line, run.stdout)) == 2, run.stdout  # live, and in the summary
    assert len(_records(book)) == 2
    (two,) = [r for r in _records(book) if r.uri.endswith("two.md")]
    nb = get_cache(str(execution.cache_path(book))).get_cache_bundle(two.pk).nb
    assert nb.cells[-1].outputs[0]["text"] == "threads 1\n"  # the kernel's environment


def test_a_run_with_the_book_cache_off_runs_every_cell_and_stores_nothing(tmp_path):
    book = _make_book(tmp_path / "book")
    run = _nbval(book, TLCOURSE_BOOK_CACHE="0")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    assert "chapters/one.md ran once" in run.stdout
    assert "not cached (TLCOURSE_BOOK_CACHE=0)" in run.stdout
    assert _records(book) == []
    again = _nbval(book)  # the same chapter with the cache on is stored
    assert again.returncode == 0 and len(_records(book)) == 1, again.stdout


@pytest.mark.slow
def test_a_failing_assertion_fails_the_run_and_is_not_cached(tmp_path):
    chapter = CHAPTER.replace('assert "VALUE" in source', 'assert "NO SUCH" in source')
    book = _make_book(tmp_path / "book", chapter)
    run = _nbval(book)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 2 passed" in run.stdout
    assert "not cached: 1 of 3 cells did not pass" in run.stdout
    assert _records(book) == []


@pytest.mark.slow
def test_the_chapter_is_read_as_myst_nb_reads_it(tmp_path):
    """The hash of the notebook the plugin stores is the one the real build looks up."""
    book = _make_book(tmp_path / "book")
    shutil.rmtree(book / "_build", ignore_errors=True)
    built = _build(book)
    assert built.returncode == 0, built.stdout + built.stderr
    (record,) = _records(book)
    notebook = execution.read_notebook(book / "chapters" / "one.md", book)
    assert execution.cached_record(execution.cache_path(book), notebook).pk == record.pk


def test_a_book_root_without_config_is_a_one_line_usage_error(tmp_path):
    run = subprocess.run(
        [str(BIN / "pytest"), "-p", "tlcourse_book.nbval_cache", "--book-root", str(tmp_path)]
        + ["-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert run.returncode == 4  # pytest's usage error
    assert f"--book-root {tmp_path}: no _config.yml there" in run.stderr
    assert "Traceback" not in run.stderr

"""The project's own consistency: pins, set-up, chapters and the import contract."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_requirements():
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return reqs


def test_every_dependency_is_pinned_exactly():
    for req in _pyproject_requirements():
        assert re.match(r"^[A-Za-z0-9_.\-]+==[0-9][^;\s]*(; .+)?$", req), req


def test_environment_yml_has_the_same_pins_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert "-e ." in pip
    assert sorted(r for r in pip if r != "-e .") == sorted(_pyproject_requirements())


def test_python_version_agrees_everywhere():
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^PYTHON_VERSION := (\S+)$", makefile, re.M).group(1)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python={version}" in env["dependencies"]
    major, minor = version.split(".")
    requires = _pyproject()["project"]["requires-python"]
    assert requires == f">={major}.{minor},<{major}.{int(minor) + 1}"
    assert sys.version_info[:2] == (int(major), int(minor))


def test_makefile_installs_extras_that_exist():
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r"^EXTRAS := (\S+)$", makefile, re.M).group(1).split(",")
    assert set(extras) == set(_pyproject()["project"]["optional-dependencies"])


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci and "make test" in ci
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme


_FRAMEWORK_HALVES = ("torch", "keras")


def _framework_free_modules():
    """Every module of the package outside tlcourse.torch and tlcourse.keras, found on disk
    (not listed by hand), so a new module is covered the day it is added."""
    import tlcourse

    package = Path(tlcourse.__file__).parent
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[0] in _FRAMEWORK_HALVES or "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("tlcourse", *parts)))
    return names


def test_framework_free_modules_are_discovered():
    import pkgutil

    import tlcourse

    names = _framework_free_modules()
    top_level = {
        f"tlcourse.{m.name}"
        for m in pkgutil.iter_modules(tlcourse.__path__)
        if m.name not in _FRAMEWORK_HALVES
    }
    assert "tlcourse" in names and "tlcourse.data" in names
    assert top_level <= set(names)
    assert not any(n.startswith(("tlcourse.torch", "tlcourse.keras")) for n in names)


def test_importing_tlcourse_does_not_import_a_framework():
    modules = _framework_free_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    bad = [m for m in ('torch', 'tensorflow', 'keras', 'triton') if m in sys.modules]\n"
        "    assert not bad, (name, bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_make_unit_runs_the_slow_tests_too():
    makefile = (ROOT / "Makefile").read_text()
    unit = re.search(r"^unit: .*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "pytest tests" in unit and "slow" not in unit
    assert "--durations=15" in _pyproject()["tool"]["pytest"]["ini_options"]["addopts"]


def _chapters():
    return sorted((ROOT / "chapters").glob("*.md"))


def test_every_chapter_is_in_the_toc_and_follows_the_house_layout():
    toc = (ROOT / "_toc.yml").read_text()
    assert _chapters()
    for path in _chapters():
        text = path.read_text()
        assert f"chapters/{path.stem}" in toc, path.name
        assert "format_name: myst" in text and "name: python3" in text, path.name
        assert re.search(r"^\(ch-[a-z0-9-]+\)=$", text, re.M), path.name
        assert re.search(r"^## .*PyTorch", text, re.M), path.name
        assert re.search(r"^## .*TensorFlow", text, re.M), path.name
        assert re.search(r"^## Summary$", text, re.M), path.name
        assert re.search(r"^## Exercises$", text, re.M), path.name
        assert "{solution-start}" in text, path.name
        assert re.search(r":tags: \[remove-cell\]\n\n(.*\n)*?.*assert ", text), path.name


def test_book_never_allows_errors():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["allow_errors"] is False
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    for path in _chapters():
        assert "allow_errors" not in path.read_text()


_TRAIN_TORCH = (
    "from tlcourse import data\n"
    "X, y = data.make_synthetic_digits(64, seed=1, use_cache=False)\n"
    "tt.set_seed(0)\n"
    "tt.fit(tt.build_digit_net(width=4), X, y, num_epochs=1, quiet=True)\n"
)


@pytest.mark.slow
def test_pytorch_then_tensorflow_in_one_process():
    # Regression: Triton (loaded lazily by PyTorch) after TensorFlow segfaulted.
    code = "import tlcourse.torch as tt\nimport tlcourse.keras\n" + _TRAIN_TORCH
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.slow
def test_tensorflow_then_pytorch_in_one_process():
    code = "import tensorflow\nimport tlcourse.torch as tt\n" + _TRAIN_TORCH
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], timeout=300, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Triton is disabled" in result.stderr


def test_make_test_executes_each_chapter_once():
    """nbval runs every notebook page and fills the cache; the book must not execute again."""
    makefile = (ROOT / "Makefile").read_text()
    notebooks = re.search(r"^notebooks: .*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "-p tlcourse_book.nbval_cache" in notebooks and "$(RUN_ORDER)" in notebooks
    test = re.search(r"^test: .*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    steps = [line for line in test.splitlines() if "$(MAKE)" in line]
    assert [re.search(r"directory (\w+)\)", s).group(1) for s in steps] == [
        "lint",
        "unit",
        "notebooks",
        "book",
        "site",
    ]
    assert "TLCOURSE_REQUIRE_CACHED=1" in steps[3]
    # Every page that is a notebook is in NOTEBOOKS, so none is left to the book build.
    from tlcourse_book.execution import is_notebook

    pages = sorted(
        p.relative_to(ROOT).as_posix()
        for p in ROOT.glob("**/*.md")
        if "_build" not in p.parts and ".venv" not in p.parts and is_notebook(p)
    )
    listed = re.search(r"^NOTEBOOKS := (.*)$", makefile, re.M).group(1).split()
    assert "$(CHAPTERS)" in listed
    expected = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.md"))
    expected += [p for p in listed if p != "$(CHAPTERS)"]
    assert pages == sorted(expected)


def test_notebooks_start_slowest_first():
    """nbval gets every notebook page exactly once, in the Makefile's slowest-first order."""
    makefile = (ROOT / "Makefile").read_text()
    slowest = re.search(r"^SLOWEST_FIRST := ((?:.*\\\n)*.*)$", makefile, re.M).group(1)
    slowest = slowest.replace("\\", " ").split()
    chapters = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.md"))
    assert sorted(slowest) == chapters  # every chapter is placed, none twice
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "notebooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    command = dry[dry.index("--nbval-lax") :]  # the pytest command line
    pages = [w for w in command.split() if w.endswith(".md")]
    assert pages == slowest + ["appendix/results.md"]
    assert "--no-loadscope-reorder" in command  # else xdist re-sorts them by cell count

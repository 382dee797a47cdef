"""The student edition: the same book with every solution replaced by a stub cell.

Generated from the chapters themselves, never kept as a second copy: each gated solution
(from ``{solution-start} LABEL`` to ``{solution-end}``, prose, code and hidden checks alike)
becomes one code cell tagged ``exercise-stub`` that raises ``NotImplementedError``. The tag
``raises-exception`` lets nbval and MyST-NB run the notebook to its end with the stubs in
place, and ``remove-output`` keeps the traceback off the page.

``python -m tlcourse_book.student DEST`` writes the student book's source tree to ``DEST``
(the Makefile's ``student`` target then runs it under nbval and builds it);
``python -m tlcourse_book.student --check HTML`` fails if a built page still holds a
solution.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

#: Tag of the code cell that stands in for a solution; the only cell of the student
#: edition allowed to raise ``NotImplementedError``.
STUB_TAG = "exercise-stub"
STUB_TAGS = f"[{STUB_TAG}, raises-exception, remove-output]"
TITLE_SUFFIX = " (student edition)"

_SOLUTION = re.compile(
    r"^```\{solution-start\}[ \t]*(?P<label>\S+)[^\n]*\n"  # the opening fence and its label
    r".*?"  # the solution: options, prose, code cells, hidden checks
    r"^```\{solution-end\}[^\n]*\n```[ \t]*(?:\n|\Z)",  # the closing directive
    re.MULTILINE | re.DOTALL,
)
_MARKER = re.compile(r"\{solution-(?:start|end)\}")
_EXERCISE = re.compile(r"^```\{exercise\}", re.MULTILINE)

#: What is copied into the student tree besides the chapters (everything the book reads).
_SKIP = {".git", ".github", ".venv", "_build", "tests", ".ci", ".pytest_cache", ".ruff_cache"}


def stub_cell(label: str) -> str:
    """The code cell that replaces the solution of exercise ``label``."""
    return (
        "```{code-cell} ipython3\n"
        f":tags: {STUB_TAGS}\n"
        "\n"
        f"# Exercise {label}: write your solution here, in as many cells as you like.\n"
        f'raise NotImplementedError("exercise {label} has no solution yet")\n'
        "```\n"
    )


def student_text(text: str) -> tuple[str, list[str]]:
    """A chapter's MyST source with each solution replaced by a stub; and the labels.

    Raises
    ------
    ValueError
        If a ``solution-start`` has no matching ``solution-end`` (or the reverse), or the
        number of solutions differs from the number of exercises.
    """
    labels: list[str] = []

    def replace(match: re.Match) -> str:
        labels.append(match["label"])
        return stub_cell(match["label"])

    student = _SOLUTION.sub(replace, text)
    if _MARKER.search(student):
        line = student[: _MARKER.search(student).start()].count("\n") + 1
        raise ValueError(f"a solution-start or solution-end without its partner near line {line}")
    n_exercises = len(_EXERCISE.findall(text))
    if labels and len(labels) != n_exercises:
        raise ValueError(f"{n_exercises} exercises but {len(labels)} solutions")
    return student, labels


def solution_blocks(text: str) -> list[str]:
    """The text of each solution in a chapter's MyST source, in order."""
    return [match[0] for match in _SOLUTION.finditer(text)]


def write_student_tree(root: str | Path, dest: str | Path) -> dict[str, list[str]]:
    """Copy the book at ``root`` to ``dest`` with every solution replaced by a stub.

    Returns ``{chapter path relative to dest: [exercise labels]}``.
    """
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if dest == root or root in dest.parents and dest.parts[len(root.parts)] not in _SKIP:
        raise ValueError(f"{dest} must be outside the book's sources (for example in _build)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for item in sorted(root.iterdir()):
        if item.name in _SKIP or item.name.endswith(".egg-info"):
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, target)
    stubs = {}
    for chapter in sorted((dest / "chapters").glob("*.md")):
        text, labels = student_text(chapter.read_text(encoding="utf8"))
        chapter.write_text(text, encoding="utf8")
        stubs[chapter.relative_to(dest).as_posix()] = labels
    config = dest / "_config.yml"
    text = config.read_text(encoding="utf8")
    title = re.search(r'^title: "(?P<title>[^"]*)"', text, re.MULTILINE)
    if title is None:
        raise ValueError(f"no quoted title in {config}")
    text = text[: title.end("title")] + TITLE_SUFFIX + text[title.end("title") :]
    if text.count("tlcourse_edition: teacher") != 1:
        raise ValueError(f"{config} does not set tlcourse_edition: teacher once")
    config.write_text(text.replace("tlcourse_edition: teacher", "tlcourse_edition: student"))
    return stubs


def check_html(html: str | Path) -> int:
    """Count the pages built from chapters; raise if one still shows a solution."""
    pages = sorted(Path(html).glob("chapters/*.html"))
    if not pages:
        raise ValueError(f"no chapter pages under {html}")
    for page in pages:
        text = page.read_text(encoding="utf8")
        if 'class="solution' in text or "solution-content" in text:
            raise ValueError(f"{page} still shows a solution")
    return len(pages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlcourse_book.student")
    parser.add_argument("dest", help="folder for the student book's sources, or built HTML")
    parser.add_argument("--root", default=".", help="the book's root (default: .)")
    parser.add_argument("--check", action="store_true", help="check built HTML at DEST")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(f"student edition: {check_html(args.dest)} chapter pages, no solution shown")
        else:
            stubs = write_student_tree(args.root, args.dest)
            n = sum(map(len, stubs.values()))
            print(f"student edition: {n} exercises in {len(stubs)} chapters -> {args.dest}")
    except (OSError, ValueError) as err:
        print(f"student edition: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

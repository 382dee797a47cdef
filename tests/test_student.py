"""The student edition: every solution replaced by a stub, generated from the chapters."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tlcourse_book import student
from tlcourse_book.execution import read_notebook

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))

EXAMPLE = """\
# A chapter

```{code-cell} ipython3
x = 2
```

## Exercises

```{exercise}
:label: ex-one

Square x.
```

```{solution-start} ex-one
:class: dropdown
```

The square:

```{code-cell} ipython3
y = x ** 2
```

```{code-cell} ipython3
:tags: [remove-cell]

assert y == 4
```

Four, as `SQUARE_IS_FOUR` says.

```{solution-end}
```

```{exercise}
:label: ex-two

Cube x.
```

```{solution-start} ex-two
:class: dropdown
```

```{code-cell} ipython3
z = x ** 3
assert z == 8
```

```{solution-end}
```

## References
"""


def test_each_solution_becomes_one_stub_and_everything_else_stays():
    text, labels = student.student_text(EXAMPLE)
    assert labels == ["ex-one", "ex-two"]
    for gone in ("solution-start", "solution-end", "x ** 2", "assert y == 4", "SQUARE_IS_FOUR"):
        assert gone not in text
    for kept in ("x = 2", ":label: ex-one", "Square x.", "Cube x.", "## References"):
        assert kept in text
    assert text.count(student.STUB_TAG) == 2
    assert 'raise NotImplementedError("exercise ex-two has no solution yet")' in text
    # The stub sits where the solution was: after its exercise, before the next one.
    assert text.index("Square x.") < text.index("ex-one has no") < text.index("Cube x.")


def test_a_solution_without_its_end_is_an_error():
    broken = EXAMPLE.replace("```{solution-end}\n```\n\n## References", "## References")
    with pytest.raises(ValueError, match="without its partner"):
        student.student_text(broken)


def test_an_exercise_without_a_solution_is_an_error():
    extra = EXAMPLE.replace("## References", "```{exercise}\n:label: ex-three\n\nMore.\n```\n")
    with pytest.raises(ValueError, match="3 exercises but 2 solutions"):
        student.student_text(extra)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


@pytest.fixture(scope="module")
def student_tree(tmp_path_factory):
    dest = tmp_path_factory.mktemp("student") / "book"
    return dest, student.write_student_tree(ROOT, dest)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_keeps_its_exercises_and_loses_every_solution(student_tree, chapter):
    dest, stubs = student_tree
    teacher = chapter.read_text(encoding="utf8")
    name = chapter.relative_to(ROOT).as_posix()
    text = (dest / name).read_text(encoding="utf8")
    exercises = re.findall(r"^```\{exercise\}\n:label: (\S+)", teacher, re.MULTILINE)
    assert len(exercises) >= 3, f"{name} has {len(exercises)} exercises"
    assert stubs[name] == exercises
    assert "{solution-start}" not in text and "{solution-end}" not in text
    # No line of a solution survives, unless the same line is also outside every solution.
    outside = teacher
    for block in student.solution_blocks(teacher):
        outside = outside.replace(block, "")
    for block in student.solution_blocks(teacher):
        for line in block.splitlines():
            if len(line.strip()) > 25 and line not in outside:
                assert line not in text, (name, line)
    # The code cells are the teacher's outside the solutions, then one stub per exercise,
    # each in the place of its solution.
    teacher_cells = [c.source for c in _code_cells(read_notebook(chapter, ROOT))]
    student_cells = _code_cells(read_notebook(dest / name, dest))
    stub_cells = [c for c in student_cells if student.STUB_TAG in c.metadata.get("tags", [])]
    assert len(stub_cells) == len(exercises)
    blocks = student.solution_blocks(teacher)
    expected = [c for c in teacher_cells if c in outside or not any(c in b for b in blocks)]
    assert [c.source for c in student_cells if c not in stub_cells] == expected
    solution_code = {
        c.source for c in _code_cells(read_notebook(chapter, ROOT)) if c.source not in text
    }
    assert len(solution_code) >= len(exercises)  # every solution had code of its own
    for cell in student_cells:
        raises = "NotImplementedError" in cell.source
        assert raises == (cell in stub_cells), (name, cell.source)


def test_the_student_book_is_titled_and_the_sources_are_untouched(student_tree):
    dest, _ = student_tree
    assert 'title: "Transfer Learning, Tested (student edition)"' in (
        dest / "_config.yml"
    ).read_text(encoding="utf8")
    assert (dest / "src" / "tlcourse" / "__init__.py").is_file()  # for literalinclude
    assert not (dest / "tests").exists()
    assert "solution-start" in CHAPTERS[0].read_text(encoding="utf8")


def test_the_student_tree_goes_outside_the_sources(tmp_path):
    with pytest.raises(ValueError, match="outside the book's sources"):
        student.write_student_tree(ROOT, ROOT / "chapters" / "student")


def test_html_check_finds_a_solution_left_on_a_page(tmp_path):
    (tmp_path / "chapters").mkdir()
    page = tmp_path / "chapters" / "01.html"
    page.write_text('<div class="exercise admonition">Square x.</div>', encoding="utf8")
    assert student.check_html(tmp_path) == 1
    page.write_text('<div class="solution admonition dropdown">y = 4</div>', encoding="utf8")
    with pytest.raises(ValueError, match="still shows a solution"):
        student.check_html(tmp_path)
    with pytest.raises(ValueError, match="no chapter pages"):
        student.check_html(tmp_path / "chapters")


def _small_book(tmp_path: Path, chapter_text: str) -> Path:
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "_config.yml").write_text((ROOT / "_config.yml").read_text(encoding="utf8"))
    front = "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
    front += "  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
    (book / "chapters" / "one.md").write_text(front + chapter_text, encoding="utf8")
    return book


def _nbval(book: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-p", "tlcourse_book.nbval_cache", "--nbval-lax",
               "--nbval-current-env", "-p", "no:cacheprovider", "-q", "--book-root", str(book),
               str(book / "chapters" / "one.md")]  # fmt: skip
    env = {**__import__("os").environ, "TLCOURSE_BOOK_CACHE": "0",
           "PYTHONPATH": str(ROOT / "_ext")}  # fmt: skip
    return subprocess.run(command, cwd=book, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_student_notebook_runs_to_its_end_under_nbval_with_the_stubs(tmp_path):
    text, _ = student.student_text(EXAMPLE)
    book = _small_book(tmp_path, text)
    run = _nbval(book)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout, run.stdout  # x = 2 and the two stubs
    # The tag is what lets a stub raise: without it the same notebook fails.
    untagged = text.replace(", raises-exception", "")
    run = _nbval(_small_book(tmp_path / "untagged", untagged))
    assert run.returncode != 0 and "NotImplementedError" in run.stdout, run.stdout


def test_the_student_tree_is_the_student_edition_for_its_launch_buttons(student_tree):
    dest, _ = student_tree
    config = (dest / "_config.yml").read_text(encoding="utf8")
    assert "tlcourse_edition: student" in config and "tlcourse_edition: teacher" not in config

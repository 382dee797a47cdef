"""Every public function and class names the chapter that teaches it (d2l's "Defined in"),
and that chapter exists and speaks of it."""

import re
from pathlib import Path

import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt

CHAPTERS = {
    re.search(r"^\((ch-[\w-]+)\)=", path.read_text(), re.M).group(1): path.read_text()
    for path in sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.md"))
}
PUBLIC = [(half, name) for half in (tt, tk) for name in half.__all__]


def taught_in(obj) -> str:
    found = re.findall(r"Taught in :ref:`(ch-[\w-]+)`\.", obj.__doc__ or "")
    assert len(found) == 1, f"{obj.__qualname__}: no single 'Taught in :ref:`ch-...`.' line"
    return found[0]


@pytest.mark.parametrize("half, name", PUBLIC, ids=[f"{h.__name__}.{n}" for h, n in PUBLIC])
def test_each_public_name_names_an_existing_chapter_that_mentions_it(half, name):
    label = taught_in(getattr(half, name))
    assert label in CHAPTERS, f"{name}: no chapter has the label {label}"
    mentioned = [lab for lab, text in CHAPTERS.items() if re.search(rf"\b{name}\b", text)]
    # Names the chapters use only through a framework-free loop are mentioned nowhere.
    assert not mentioned or label in mentioned, (name, label, mentioned)


def test_twins_name_the_same_chapter():
    for name in sorted(set(tt.__all__) & set(tk.__all__)):
        assert taught_in(getattr(tt, name)) == taught_in(getattr(tk, name)), name

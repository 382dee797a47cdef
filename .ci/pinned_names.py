"""Print the names of the packages that pyproject.toml pins, one line, space-separated.

The weekly CI run (TLCOURSE_NEWEST=1) upgrades exactly these to their newest releases after
installing the pins, to find a break upstream before a reader does.
"""

import re
import sys
import tomllib
from pathlib import Path


def pinned_names(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return sorted({re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0] for req in requirements})


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "pyproject.toml"
    print(" ".join(pinned_names(Path(sys.argv[1]) if len(sys.argv) > 1 else default)))

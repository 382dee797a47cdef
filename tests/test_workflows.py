"""The GitHub Actions workflows: what they run, and that the linter `make lint` uses bites."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
LINTER = shutil.which("check-jsonschema", path=str(Path(__import__("sys").executable).parent))


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf8"))


def steps(workflow: dict, job: str) -> list[str]:
    return [step.get("run", step.get("uses", "")) for step in workflow["jobs"][job]["steps"]]


def test_ci_runs_the_readmes_test_command_on_push_pull_request_and_weekly():
    workflow = load("test.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) >= {"push", "pull_request", "schedule"}
    assert steps(workflow, "test")[-1] == "bash .ci/run"
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf8")
    assert ci_run.strip().splitlines()[-1] == "make test"
    assert "make test" in (ROOT / "README.md").read_text(encoding="utf8")
    weekly = [s for s in workflow["jobs"]["test"]["steps"] if "TLCOURSE_NEWEST" in s.get("run", "")]
    assert len(weekly) == 1 and weekly[0]["if"] == "github.event_name == 'schedule'"


def test_the_weekly_run_upgrades_exactly_the_pinned_packages():
    spec = importlib.util.spec_from_file_location("pinned_names", ROOT / ".ci" / "pinned_names.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = module.pinned_names(ROOT / "pyproject.toml")
    pins = re.findall(r'^\s*"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*[=<>~]=', (
        ROOT / "pyproject.toml").read_text(encoding="utf8"), re.MULTILINE)  # fmt: skip
    assert set(names) == set(pins) and {"torch", "jupyter-book"} <= set(names)
    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    assert "TLCOURSE_NEWEST" in makefile and ".ci/pinned_names.py" in makefile


def test_publishing_builds_both_editions_from_main():
    workflow = load("publish.yml")
    assert workflow[True]["push"]["branches"] == ["main"]
    build = steps(workflow, "build")
    assert "make test" in build and "make student" in build
    copy = next(step for step in build if "cp -r" in step)
    assert "_build/html" in copy and "_build/student/_build/html site/student" in copy
    assert any(step.startswith("actions/upload-pages-artifact") for step in build)
    assert steps(workflow, "deploy") == ["actions/deploy-pages@v4"]
    assert workflow["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_the_workflow_linter_passes_ours_and_rejects_a_broken_one(tmp_path):
    assert LINTER is not None, "check-jsonschema (pinned in the test extra) is not installed"
    ours = subprocess.run([LINTER, "--builtin-schema", "vendor.github-workflows",
                           *map(str, sorted(WORKFLOWS.glob("*.yml")))],
                          capture_output=True, text=True)  # fmt: skip
    assert ours.returncode == 0, ours.stdout + ours.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: make test\n")
    bad = subprocess.run([LINTER, "--builtin-schema", "vendor.github-workflows", str(broken)],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "runs-on" in bad.stdout + bad.stderr

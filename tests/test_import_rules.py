"""The layers' import rules, read from the import statements of every module with ``ast``.

- The library (``imaging_lib``) never imports ``widgets``.
- Widgets never import the dashboard launcher (``imaging_lib.dashboard``).
- No inner module imports the face (``__init__.py``) of a package it lives in:
  ``from imaging_lib import X`` or ``from .. import X`` is fine only when ``X`` is a module
  of the package (``_version``, ``settings``...), never a name the face binds.
- Library modules do not print; the command line (``imaging_lib/cli.py``, ``cli_models.py``) does.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("imaging_lib", "widgets")
PRINTS = {"imaging_lib/cli.py", "imaging_lib/cli_models.py"}
"""The library modules that may print."""


@dataclass(frozen=True)
class Import:
    """One imported module, or one name imported from a module, at a line of a file."""

    path: str
    line: int
    module: str
    name: str | None = None  # ``from module import name``


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(path: Path) -> list[Import]:
    """Every import of a file, relative ones made absolute."""
    relative = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(relative, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(path).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found += [Import(relative, node.lineno, base, alias.name) for alias in node.names]
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _is_module(package: str, name: str) -> bool:
    folder = ROOT.joinpath(*package.split("."))
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _imported_modules(found: Import) -> list[str]:
    """The modules an import loads: the module, and the submodule a ``from`` names, if it is one."""
    if found.name is not None and _is_module(found.module, found.name):
        return [found.module, f"{found.module}.{found.name}"]
    return [found.module]


def test_the_rules_see_relative_and_absolute_imports():
    by_name = {(i.module, i.name) for i in _imports(ROOT / "imaging_lib" / "jobs" / "batch.py")}
    assert ("imaging_lib.store", "layout") in by_name and ("imaging_lib.jobs.runner", "run_tasks") in by_name
    assert any(i.module == "imaging_lib.limits" for i in _imports(ROOT / "widgets" / "upload_panel.py"))


def _imports_of(importer: str, imported: str) -> list[str]:
    """Where modules of package ``importer`` import (a module of) package ``imported``."""
    return [
        f"{i.path}:{i.line} imports {module}"
        for path in _sources(importer)
        for i in _imports(path)
        for module in _imported_modules(i)
        if _within(module, imported)
    ]


def test_the_library_never_imports_widgets():
    assert _imports_of("imaging_lib", "widgets") == []


def test_widgets_never_import_the_dashboard_launcher():
    assert _imports_of("widgets", "imaging_lib.dashboard") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_inner_module_imports_the_face_of_a_package_it_lives_in(package):
    found = [
        f"{i.path}:{i.line} imports {i.name or 'the package'!r} from the face of {i.module}"
        for path in _sources(package)
        for i in _imports(path)
        if _within(_module_name(path), i.module)
        and _module_name(path) != i.module  # a package's face may import its own modules
        and (i.name is None or not _is_module(i.module, i.name))
    ]
    assert found == []


def _prints(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


def test_library_modules_do_not_print():
    printing = {
        path.relative_to(ROOT).as_posix(): lines for path in _sources("imaging_lib") if (lines := _prints(path))
    }
    assert set(printing) >= PRINTS  # the rule sees the command line's prints
    assert set(printing) - PRINTS == set(), printing

"""Make the tests' helpers (``tests/support``) importable as ``support`` from a benchmark.

Registers the folder as a package without putting ``tests/`` on ``sys.path``, where
``tests/imaging_lib`` and ``tests/widgets`` could shadow the real packages; the same
way ``tests/conftest.py`` does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parents[1] / "tests" / "support"


def register_support_package() -> None:
    """Import ``tests/support`` as the top-level package ``support`` (once)."""
    if "support" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "support", SUPPORT / "__init__.py", submodule_search_locations=[str(SUPPORT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["support"] = module
    spec.loader.exec_module(module)

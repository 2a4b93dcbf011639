"""Export a study's results as standard DICOM: to a folder, or to a DICOMweb archive with STOW-RS.

:func:`export_study` gathers what the store holds for a study (mask records, result
records with their LIME heat maps), makes the DICOM objects the formats ask for and
writes them to ``out`` or sends them to ``to``:

* ``seg``: one DICOM SEG per saved mask (:mod:`imaging_lib.interop.seg`);
* ``sr``: one TID 1500 measurement report for the study (:mod:`imaging_lib.interop.sr`),
  whose mask groups reference the SEGs by their UIDs (stable across exports, see
  :func:`imaging_lib.interop.provenance.export_uid`);
* ``pmap``: per prediction, its heat map as a Parametric Map, or as a Secondary Capture
  when the explained slice is not an acquired image (:mod:`imaging_lib.interop.heatmap`).

With ``with_sources=True`` the de-identified images the objects reference are sent or
written too, so an archive that did not have them (a research archive) resolves every
reference. Objects are sent source images first, SR last, one STOW-RS request each.

A record that cannot be exported (an empty mask, a NIfTI study without images) is
listed in :attr:`ExportSummary.skipped` and the others go on. The only thing written to
the store is the export record (``records/exports/<study>/<export_id>.json``), last and
only once every object reached its destination: a failed export leaves no record, and
exporting again sends the same instances under the same UIDs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImagingError, MissingRecord, NothingToExport
from ..store import layout, records
from ..store.catalog import Catalog
from .heatmap import build_heatmap, heatmap_kind
from .seg import build_segmentation
from .sources import SourceSeries, source_series_for
from .sr import MaskMeasurements, PredictionFinding, build_measurement_report

__all__ = ["FORMATS", "ExportSummary", "ExportedObject", "check_formats", "export_study", "study_objects"]

FORMATS = ("seg", "sr", "pmap")
"""What can be exported, and the default: all three."""

_SEND_ORDER = {"source": 0, "seg": 1, "pmap": 2, "sc": 2, "sr": 3}


@dataclass(frozen=True)
class ExportedObject:
    """One DICOM object of an export: what it is, what it was made from, and its bytes."""

    kind: str
    dataset: Any
    data: bytes
    derived_from: str

    @property
    def sop_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def filename(self) -> str:
        """``<kind>-<SOP Instance UID>.dcm``."""
        return f"{self.kind}-{self.sop_uid}.dcm"

    def entry(self) -> dict[str, Any]:
        """What the export record keeps of it."""
        return {
            "kind": self.kind,
            "sop_class_uid": str(self.dataset.SOPClassUID),
            "series_uid": str(self.dataset.SeriesInstanceUID),
            "sop_uid": self.sop_uid,
            "derived_from": self.derived_from,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "size": len(self.data),
        }


@dataclass
class ExportSummary:
    """What one :func:`export_study` did.

    Attributes
    ----------
    study_uid : str
    destination : dict
        ``{"kind": "folder", "path": ...}`` or ``{"kind": "dicomweb", "url": ...}`` (no credentials).
    objects : list of dict
        :meth:`ExportedObject.entry` of every object written or sent.
    skipped : list of dict
        What was asked for but not made, with ``reason`` (and ``record`` when one record failed).
    record_key : str
        The export record.
    files : list of str
        Paths written (folder exports).
    """

    study_uid: str
    destination: dict[str, str]
    objects: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    record_key: str = ""
    files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = self.destination.get("url") or self.destination.get("path")
        counts: dict[str, int] = {}
        for entry in self.objects:
            counts[entry["kind"]] = counts.get(entry["kind"], 0) + 1
        made = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) or "nothing"
        lines = [f"study {self.study_uid}: {made} -> {where}"]
        lines += [f"  skipped {s.get('format') or s.get('record')}: {s['reason']}" for s in self.skipped]
        return "\n".join(lines)


def check_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``"seg,sr"`` or ``["seg", "sr"]`` to a tuple of known formats.

    Raises
    ------
    ValueError
        If a format is unknown or none is given.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = tuple(dict.fromkeys(name.strip().lower() for name in names if name.strip()))
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        raise ValueError(f"export formats are {', '.join(FORMATS)}; got {', '.join(unknown) or 'none'}")
    return chosen


def _read_study(store: Any, study_uid: str) -> dict[str, Any]:
    try:
        return records.read_record(store, layout.study_record_key(study_uid))
    except MissingRecord:
        raise MissingRecord(study_uid, f"no such study in {store.url}") from None


def _encode(kind: str, dataset: Any, derived_from: str) -> ExportedObject:
    from ..io.dicom_dataset import dataset_to_bytes

    return ExportedObject(kind, dataset, dataset_to_bytes(dataset), derived_from)


def _failed(key: str, error: ImagingError) -> dict[str, Any]:
    return {"record": key, "error": type(error).__name__, "reason": error.reason}


@dataclass
class _Gathered:
    masks: list[MaskMeasurements] = field(default_factory=list)
    predictions: list[PredictionFinding] = field(default_factory=list)
    objects: list[ExportedObject] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, SourceSeries] = field(default_factory=dict)


def _gather_masks(store: Any, study: Mapping[str, Any], formats: Sequence[str], found: _Gathered) -> None:
    mask_records = sorted(Catalog(store).records("segmentation_record", study_uid=study["study_uid"]).items())
    for number, (key, record) in enumerate(mask_records, start=1):
        try:
            mask = store.read_volume(record["mask_key"])
            source = source_series_for(store, study, mask, record["mask_key"])
            segmentation = build_segmentation(source, mask, record, record_key=key, instance_number=number)
        except ImagingError as exc:
            found.skipped.append(_failed(key, exc))
            continue
        found.sources[source.series_uid] = source
        found.masks.append(MaskMeasurements(key, record, segmentation, source))
        if "seg" in formats:
            found.objects.append(_encode("seg", segmentation, key))


def _gather_predictions(store: Any, study: Mapping[str, Any], formats: Sequence[str], found: _Gathered) -> None:
    result_records = sorted(Catalog(store).records("result_record", study_uid=study["study_uid"]).items())
    for key, record in result_records:
        try:
            heat_key = record.get("explanation_key")
            heatmap = store.read_volume(heat_key) if heat_key and store.exists(heat_key) else None
            image = store.read_volume(record.get("volume_key") or study["volume_key"])
            source = source_series_for(store, study, heatmap if heatmap is not None else image, key)
            found.sources[source.series_uid] = source
            found.predictions.append(PredictionFinding(key, record, source))
            if "pmap" in formats and heatmap is not None:
                explanation = record.get("explanation") or {}
                window = _window(study, source.series_uid)
                dataset = build_heatmap(source, heatmap, record, record_key=key, image=image, window=window)
                found.objects.append(_encode(heatmap_kind(explanation), dataset, str(heat_key)))
        except ImagingError as exc:
            found.skipped.append(_failed(key, exc))


def _window(study: Mapping[str, Any], series_uid: str) -> tuple[float, float] | None:
    for entry in study.get("series", []):
        if entry.get("series_uid") == series_uid and entry.get("window_center") is not None:
            return float(entry["window_center"]), float(entry.get("window_width") or 0.0)
    return None


def _source_objects(store: Any, sources: Iterable[SourceSeries]) -> list[ExportedObject]:
    from ..io.dicom_dataset import parse_dicom

    objects = []
    for source in sources:
        for key, data in store.read_many(source.keys).items():
            objects.append(ExportedObject("source", parse_dicom(data, key), data, key))
    return objects


def study_objects(
    store: Any, study_uid: str, formats: str | Iterable[str] = FORMATS, *, with_sources: bool = False
) -> tuple[list[ExportedObject], list[dict[str, Any]]]:
    """Make the DICOM objects of a study's results, in the order they are sent.

    Parameters
    ----------
    store : Store
    study_uid : str
    formats : str or iterable of str
        Some of :data:`FORMATS`.
    with_sources : bool
        Add the de-identified source images the objects reference.

    Returns
    -------
    (list of ExportedObject, list of dict)
        The objects, and what was skipped and why.

    Raises
    ------
    MissingRecord
        If the study is not in the store.
    NothingToExport
        If the study has no mask and no prediction, or none of them could be exported.
    ValueError
        If a format is unknown.
    """
    chosen = check_formats(formats)
    study = _read_study(store, study_uid)
    found = _Gathered()
    if {"seg", "sr"} & set(chosen):
        _gather_masks(store, study, chosen, found)
    if {"sr", "pmap"} & set(chosen):
        _gather_predictions(store, study, chosen, found)
    if "sr" in chosen and (found.masks or found.predictions):
        found.objects.append(
            _encode("sr", build_measurement_report(study_uid, found.masks, found.predictions), "study")
        )
    for name, what in (("seg", found.masks), ("sr", found.masks or found.predictions)):
        if name in chosen and not what:
            found.skipped.append({"format": name, "reason": "no saved mask" if name == "seg" else "nothing to report"})
    if "pmap" in chosen and not any(o.kind in ("pmap", "sc") for o in found.objects):
        found.skipped.append({"format": "pmap", "reason": "no stored LIME heat map"})
    if not found.objects:
        reasons = "; ".join(str(s["reason"]) for s in found.skipped)
        raise NothingToExport(study_uid, f"nothing to export as {','.join(chosen)} ({reasons})")
    if with_sources:
        found.objects.extend(_source_objects(store, found.sources.values()))
    return sorted(found.objects, key=lambda o: _SEND_ORDER[o.kind]), found.skipped


def _write_folder(objects: Sequence[ExportedObject], out: str | os.PathLike[str]) -> list[str]:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in objects:
        target = folder / item.filename
        temporary = folder / f".tmp-{uuid.uuid4().hex}-{item.filename}"
        try:
            temporary.write_bytes(item.data)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        written.append(str(target))
    return written


def _send(objects: Sequence[ExportedObject], archive: Any, progress: bool) -> None:
    from ..progress_bar import progress_bar

    with progress_bar(total=len(objects), desc="STOW-RS", unit="object", disable=not progress) as bar:
        for item in objects:
            archive.store(item.dataset)
            bar.update(1)


def export_study(
    store: Any,
    study_uid: str,
    formats: str | Iterable[str] = FORMATS,
    *,
    out: str | os.PathLike[str] | None = None,
    to: str | None = None,
    with_sources: bool = False,
    archive_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> ExportSummary:
    """Export a study's masks, measurements and heat maps as DICOM to a folder or an archive.

    Parameters
    ----------
    store : Store
    study_uid : str
    formats : str or iterable of str
        Some of ``seg``, ``sr``, ``pmap`` (default all).
    out : path, optional
        Folder to write ``<kind>-<SOP Instance UID>.dcm`` files into (each written atomically).
    to : str, optional
        Archive address ``dicomweb+http(s)://host:port/path`` (STOW-RS); credentials from
        the environment or a keyring (:mod:`imaging_lib.interop.dicomweb`).
    with_sources : bool
        Also send (or write) the de-identified source images the objects reference.
    archive_options : mapping, optional
        Keyword arguments of :class:`~imaging_lib.interop.dicomweb.DicomwebArchive`
        (``timeout``, ``attempts``, ``backoff``, ``allow_insecure``).
    progress : bool
        Show a progress bar while sending.

    Returns
    -------
    ExportSummary

    Raises
    ------
    ValueError
        If not exactly one of ``out`` and ``to`` is given, a format is unknown, or the
        archive address is invalid.
    MissingRecord
        If the study is not in the store.
    NothingToExport
        If there is nothing of the formats asked for.
    ArchiveError
        If the archive is down, slow, refuses or answers badly (after retries); no export
        record is written.
    """
    from .dicomweb import DicomwebArchive

    if (out is None) == (to is None):
        raise ValueError("give exactly one destination: out=<folder> or to=<dicomweb+http(s)://...>")
    chosen = check_formats(formats)
    archive = DicomwebArchive(to, **dict(archive_options or {})) if to is not None else None
    folder = os.path.abspath(out) if out is not None else ""
    with archive or contextlib.nullcontext():
        objects, skipped = study_objects(store, study_uid, chosen, with_sources=with_sources)
        summary = ExportSummary(
            study_uid,
            {"kind": "dicomweb", "url": archive.url} if archive else {"kind": "folder", "path": folder},
            [item.entry() for item in objects],
            skipped,
        )
        if archive is not None:
            _send(objects, archive, progress)
        else:
            summary.files = _write_folder(objects, folder)
    export_id = f"export-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    summary.record_key = layout.export_record_key(study_uid, export_id)
    record = records.export_record(
        study_uid,
        export_id=export_id,
        destination=summary.destination,
        objects=summary.objects,
        skipped=summary.skipped,
        parameters={"formats": list(chosen), "with_sources": with_sources},
    )
    store.write_json(summary.record_key, record)
    return summary

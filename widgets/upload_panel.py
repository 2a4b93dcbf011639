"""UploadPanel: drop studies on the dashboard; they are de-identified, stored and analysed.

Dropped DICOM files, folders (dropped whole or zipped) and NIfTI volumes go to
:func:`imaging_lib.ingest` as in-memory uploads: DICOM is de-identified before anything
is stored, bad files are quarantined with the reason. The panel then shows what was
ingested, skipped and quarantined and why (:func:`summary_html`) and, unless told not
to, starts a prediction batch on the uploaded studies and follows it live.

With an archive (``archive=`` or ``$IMAGING_DICOMWEB_URL``) the panel also has an
archive search (:class:`~widgets.archive_search.ArchiveSearch`): patient ID, dates and
modality; the matching studies are listed with checkboxes, the ticked ones ingested
with live progress, then summarised and analysed like a drop.

Only the files' names chosen by the uploader and the de-identified study UIDs are shown;
no DICOM header value is.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets

from imaging_lib import settings
from imaging_lib.errors import ImagingError
from imaging_lib.identity import can, require
from imaging_lib.limits import UPLOAD_LIMIT_BYTES

from .access import gate
from .archive_search import ArchiveSearch
from .batch_launcher import BatchLauncher
from .file_drop import FileDrop, Upload

__all__ = ["UploadPanel", "limit_text", "summary_html"]


def limit_text(limit_bytes: int = UPLOAD_LIMIT_BYTES) -> str:
    """The sentence that states the upload limit on the page."""
    return (
        f"Upload limit: {limit_bytes / (1 << 30):.0f} GiB per drop (all files together), enough for a "
        'thin-slice CT series. Larger studies: run "imaging-lab ingest" on their folder or gs:// URL.'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css_class: str) -> str:
    head = "".join(f"<th style='text-align:left;padding-right:1em'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding-right:1em'>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_html(summary: Any) -> str:
    """HTML of an :class:`imaging_lib.ingestion.IngestSummary`: studies stored, files skipped and refused.

    Ingested and skipped files are counted per de-identified study (no file names);
    quarantined files are listed by the name they were uploaded under, with the error
    type and reason, so the uploader can act on them.
    """
    parts = [
        f"<p class='upload-counts'>Ingested <b>{len(summary.ingested)}</b> file(s), skipped "
        f"<b>{len(summary.skipped)}</b>, quarantined <b>{len(summary.quarantined)}</b>.</p>"
    ]
    if summary.ingested:
        per_study = Counter((entry["study_uid"], entry["kind"]) for entry in summary.ingested)
        rows = [(study_uid, kind, count) for (study_uid, kind), count in sorted(per_study.items())]
        parts.append(
            "<h4>Ingested</h4>" + _table(["study (de-identified UID)", "kind", "files"], rows, "upload-ingested")
        )
    if summary.skipped:
        per_reason = Counter(  # files left out on purpose (hidden, unsafe zip members) belong to no study: "-"
            (entry["study_uid"] or "-", entry.get("reason") or "already stored") for entry in summary.skipped
        )
        rows = [(study_uid, reason, count) for (study_uid, reason), count in sorted(per_reason.items())]
        parts.append("<h4>Skipped</h4>" + _table(["study (de-identified UID)", "why", "files"], rows, "upload-skipped"))
    if summary.quarantined:
        rows = [(entry["source"], entry["error"], entry["reason"]) for entry in summary.quarantined]
        parts.append("<h4>Quarantined</h4>" + _table(["file", "error", "why"], rows, "upload-quarantined"))
    if getattr(summary, "failed", None):
        rows = [(entry["source"], entry["error"], entry["reason"]) for entry in summary.failed]
        parts.append(
            "<h4>Archive series not retrieved</h4>" + _table(["series", "error", "why"], rows, "upload-failed")
        )
    return "".join(parts)


class UploadPanel(ipywidgets.VBox):
    """Drop zone, ingest summary and the live job of the uploaded studies.

    Parameters
    ----------
    store : imaging_lib.store.Store
        Where uploads are stored.
    model_uri : str, optional
        Model of the batch started after an upload; default the store's default model.
    client : distributed.Client, optional
        Where the batch runs; default :func:`imaging_lib.jobs.get_client` (created at
        the first upload, not on page load).
    params : mapping, optional
        Pipeline parameters of the batch (see :data:`imaging_lib.jobs.batch.DEFAULT_PARAMS`).
    analyse : bool
        Initial state of the "analyse after upload" box.
    archive : DicomwebArchive or str, optional
        A DICOMweb archive to search and ingest from; default ``$IMAGING_DICOMWEB_URL``
        (no archive search when neither is set).

    Attributes
    ----------
    summary : IngestSummary or None
        The last upload's summary.
    job : imaging_lib.jobs.Job or None
        The last batch started.
    """

    def __init__(
        self,
        store: Any,
        *,
        model_uri: str | None = None,
        client: Any = None,
        params: Mapping[str, Any] | None = None,
        analyse: bool = True,
        archive: Any = None,
    ) -> None:
        self.store = store
        self.launcher = BatchLauncher(store, model_uri=model_uri, client=client, params=params)
        self.summary: Any = None
        self.job: Any = None
        self.drop = gate(FileDrop(max_bytes=UPLOAD_LIMIT_BYTES), "upload")
        self.analyse = gate(
            ipywidgets.Checkbox(value=analyse, description="Analyse the uploaded studies", indent=False), "run_batch"
        )
        self.limit = ipywidgets.HTML(f"<p class='upload-limit'>{html.escape(limit_text())}</p>")
        self.result = ipywidgets.HTML()
        self.job_area = ipywidgets.VBox()
        archive = archive or settings.read(settings.DICOMWEB_URL)
        self.archive_search: ArchiveSearch | None = None
        searches: list[ipywidgets.Widget] = []
        if archive:
            try:
                self.archive_search = ArchiveSearch(store, archive, on_ingested=self.show_summary)
                searches.append(self.archive_search)
            except (ImagingError, ValueError) as exc:  # a bad address or credentials setting: said, not a crash
                reason = exc.reason if isinstance(exc, ImagingError) else str(exc)
                message = f"<p class='archive-error'>Archive search unavailable: {html.escape(reason)}</p>"
                searches.append(ipywidgets.HTML(message))
        super().__init__([self.limit, self.drop, *searches, self.analyse, self.result, self.job_area])
        self.drop.on_files(self.upload)

    def upload(self, files: list[Upload]) -> Any:
        """Ingest ``files`` (``(name, bytes)`` pairs), show the summary, start the batch.

        Returns
        -------
        IngestSummary
        """
        from imaging_lib.ingestion.batch import ingest

        require("upload")
        self.drop.busy = True
        self.drop.status = f"De-identifying and storing {len(files)} file(s)…"
        try:
            self.summary = ingest(files, self.store, progress=False)
        finally:
            self.drop.busy = False
        self.drop.status = f"Done: {len(self.summary.studies)} stud{'y' if len(self.summary.studies) == 1 else 'ies'}."
        self.show_summary(self.summary)
        return self.summary

    def show_summary(self, summary: Any) -> None:
        """Show an ingest's summary (a drop's or an archive's) and start the batch on its studies."""
        self.summary = summary
        self.result.value = summary_html(summary)
        if self.analyse.value and summary.studies and can("run_batch"):
            self.start_batch(summary.studies)

    def start_batch(self, study_uids: Sequence[str]) -> Any:
        """Start the prediction batch on ``study_uids`` and follow it below the summary."""
        self.job = self.launcher.start(study_uids, self.job_area, title="Analysis")
        return self.job

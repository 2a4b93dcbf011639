"""ArchiveSearch: find studies in a DICOMweb archive, tick the ones to ingest, follow the ingest live.

The user gives a patient ID, a date range and a modality; :meth:`ArchiveSearch.search`
asks the archive (QIDO-RS, :func:`imaging_lib.ingestion.archive_query.find_studies`) and
lists the matching studies with a checkbox each. The list shows only what the store will
hold once a study is ingested (:func:`~imaging_lib.ingestion.archive_query.list_studies`):
the de-identified study UID, the patient pseudonym, the shifted date, modalities, counts,
and how many of its series were ingested before. Original UIDs stay in the kernel.
:meth:`ArchiveSearch.ingest_selected` ingests the ticked studies series by series
(:func:`imaging_lib.ingest` with ``query={"study": [...]}``: the same de-identification as
an upload; series ingested before are skipped), moving a progress bar as instances arrive.

Errors (archive down, credentials refused, nothing matched) are shown by their type and
reason, which never hold the archive's own text, a UID or the patient ID.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Any

import ipywidgets

from imaging_lib.errors import ImagingError
from imaging_lib.identity import require

from .access import gate

__all__ = ["ArchiveSearch", "listing_label"]

MODALITIES = ("", "CT", "MR", "PT", "US", "CR", "DX", "MG", "NM", "XA")


def listing_label(listing: Any) -> str:
    """One study's line in the list: de-identified UID, pseudonym, shifted date, modalities, counts."""
    done = f", {listing.ingested_series} ingested before" if listing.ingested_series else ""
    return (
        f"{listing.study_date or 'no date'} · {listing.patient_pseudonym} · {'/'.join(listing.modalities) or '?'} · "
        f"{listing.series} series, {listing.instances} instances{done} · {listing.reference}"
    )


class ArchiveSearch(ipywidgets.VBox):
    """Search form, matching studies with checkboxes, and a live progress bar of their ingest.

    Parameters
    ----------
    store : imaging_lib.store.Store
        Where ingested studies go.
    archive : DicomwebArchive or str
        The archive (``dicomweb+http(s)://...``; credentials from the environment or a keyring).
    secret : bytes or str, optional
        De-identification key; default the user's (:func:`imaging_lib.deid.key.load_key`).
    on_ingested : callable, optional
        Called with the :class:`~imaging_lib.ingestion.summary.IngestSummary` of each ingest.

    Attributes
    ----------
    studies : list of ArchiveStudy
        What the last search found (original UIDs: kept in the kernel, never shown).
    summary : IngestSummary or None
        The last ingest's summary.
    """

    def __init__(
        self,
        store: Any,
        archive: Any,
        *,
        secret: bytes | str | None = None,
        on_ingested: Callable[[Any], None] | None = None,
    ) -> None:
        from imaging_lib.interop.dicomweb import DicomwebArchive

        self.store = store
        self.archive = archive if isinstance(archive, DicomwebArchive) else DicomwebArchive(archive)
        self.secret = secret
        self.on_ingested = on_ingested
        self.studies: list[Any] = []
        self.summary: Any = None
        self.modality_value = ""
        self.patient = ipywidgets.Text(description="Patient ID", placeholder="exact ID")
        self.since = ipywidgets.DatePicker(description="From")
        self.until = ipywidgets.DatePicker(description="To")
        self.modality = ipywidgets.Dropdown(options=MODALITIES, value="", description="Modality")
        self.search_button = ipywidgets.Button(description="Search the archive", icon="search")
        self.search_button.on_click(lambda _: self.search())
        self.matches = ipywidgets.VBox()
        self.ingest_button = ipywidgets.Button(description="Ingest selected", disabled=True, button_style="primary")
        self.ingest_button.on_click(lambda _: self.ingest_selected())
        self.progress = ipywidgets.IntProgress(value=0, min=0, max=1, description="Ingest", layout={"display": "none"})
        self.status = ipywidgets.HTML()
        title = ipywidgets.HTML(f"<h4>Archive search</h4><p class='archive-url'>{html.escape(self.archive.url)}</p>")
        form = ipywidgets.HBox([self.patient, self.modality])
        dates = ipywidgets.HBox([self.since, self.until, self.search_button])
        super().__init__([title, form, dates, self.matches, self.ingest_button, self.progress, self.status])
        for widget, name in (
            (self.patient, "archive-patient"),
            (self.search_button, "archive-search-button"),
            (self.matches, "archive-matches"),
            (self.ingest_button, "archive-ingest-button"),
            (self.progress, "archive-progress"),
        ):
            widget.add_class(name)
        self.add_class("archive-search")
        gate(self, "upload")

    def __repr__(self) -> str:
        return f"ArchiveSearch({self.archive.url!r}, {len(self.studies)} studies listed)"

    @property
    def checkboxes(self) -> list[ipywidgets.Checkbox]:
        """One per listed study, in the order of :attr:`studies`."""
        return list(self.matches.children)

    def _query(self) -> dict[str, Any]:
        def day(value: Any) -> dt.date | None:
            return value if isinstance(value, dt.date) else None

        return {
            "patient": self.patient.value.strip(),
            "modality": self.modality.value,
            "since": day(self.since.value),
            "until": day(self.until.value),
        }

    def _show_error(self, exc: Exception) -> None:
        kind = type(exc).__name__
        reason = exc.reason if isinstance(exc, ImagingError) else str(exc)
        self.status.value = f"<p class='archive-error'><b>{html.escape(kind)}</b>: {html.escape(reason)}</p>"

    def search(self) -> list[Any]:
        """Ask the archive for the studies of the form's query; list them with a checkbox each.

        Returns
        -------
        list of StudyListing
            What is shown (empty after an error, which is shown instead).
        """
        from imaging_lib.deid.key import load_key
        from imaging_lib.ingestion.archive_query import ArchiveQuery, find_studies, list_studies

        require("upload")
        self.studies, self.matches.children = [], ()
        self.ingest_button.disabled = True
        self.status.value = "<p>Searching…</p>"
        try:
            query = ArchiveQuery.from_mapping(self._query())
            self.studies = find_studies(self.archive, query)
            listings = list_studies(self.studies, load_key(self.secret).secret, self.store)
        except (ImagingError, ValueError) as exc:
            self._show_error(exc)
            return []
        self.modality_value = query.modality
        self.matches.children = tuple(
            ipywidgets.Checkbox(value=False, description=listing_label(listing), indent=False, layout={"width": "auto"})
            for listing in listings
        )
        for box in self.checkboxes:
            box.observe(lambda _: self._selection_changed(), "value")
        count = len(listings)
        self.status.value = f"<p class='archive-found'>{count} stud{'y' if count == 1 else 'ies'} found.</p>"
        return listings

    def _selection_changed(self) -> None:
        self.ingest_button.disabled = not any(box.value for box in self.checkboxes)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = max(0, min(done, self.progress.max))
        self.progress.description = f"{done}/{total}"

    def ingest_selected(self) -> Any:
        """Ingest the ticked studies (series ingested before are skipped), moving the bar as instances arrive.

        Returns
        -------
        IngestSummary or None
            None when nothing is ticked or the archive fails before any series (shown).
        """
        from imaging_lib.ingestion.archive_query import selection_query
        from imaging_lib.ingestion.batch import ingest

        require("upload")
        chosen = [study for study, box in zip(self.studies, self.checkboxes, strict=True) if box.value]
        if not chosen:
            return None
        self.ingest_button.disabled = self.search_button.disabled = True
        self.progress.layout.display = None
        self.progress.value, self.progress.max = 0, 1
        self.status.value = (
            f"<p>Retrieving and de-identifying {len(chosen)} stud{'y' if len(chosen) == 1 else 'ies'}…</p>"
        )
        try:
            self.summary = ingest(
                self.archive,
                self.store,
                query=selection_query(chosen, self.modality_value),
                secret=self.secret,
                progress=False,
                on_progress=self._on_progress,
            )
        except (ImagingError, ValueError) as exc:
            self._show_error(exc)
            return None
        finally:
            self.search_button.disabled = False
            self._selection_changed()
        failed = len(self.summary.failed)
        self.status.value = (
            f"<p class='archive-done'>Done: {len(self.summary.ingested)} instance(s) stored, "
            f"{failed} series failed.</p>"
        )
        if self.on_ingested is not None:
            self.on_ingested(self.summary)
        return self.summary

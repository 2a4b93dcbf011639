"""CatalogPanel: the study browser of the dashboards.

A sortable, filterable table of the store's studies (date, modality, description,
prediction and the model that made it, probability, reviewed label, review status, job
status; the prediction shown is the store's default model's when it has one), with a filter on the review status
("needs review"...); selecting a study opens it in a :class:`~widgets.papaya.PapayaViewer`
with its LIME heat map, saved segmentations and latest label mask as overlays, on the
most suspicious slice. Beside the viewer: the review (:class:`~widgets.review_panel.ReviewPanel`:
accept or reject the prediction, label the study and the current slice, mark a mask
reviewed, the label history), the prediction with its provenance, the quantification of
its saved masks, and downloads of its reports (HTML, PDF), of the de-identified volume,
heat map and masks. Clicking in the viewer segments from the clicked voxel
(:class:`~widgets.segment_panel.SegmentPanel`), saving the mask.

The table is built by pure functions over the catalog's DataFrames
(:func:`study_table`, :func:`prediction_html`, :func:`quantification_table`); the
widget only reads the store and shows.
"""

from __future__ import annotations

import html
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets
import pandas as pd

from imaging_lib.handout import on_hand_out
from imaging_lib.store import records, review
from imaging_lib.store.catalog import Catalog, job_status_by_study, latest_per_study
from imaging_lib.store.labels import latest_label

from .download_button import DownloadButton
from .export_buttons import ExportButtons
from .record_table import RecordTable, filter_records
from .review_panel import LABEL_OVERLAY, ReviewPanel

__all__ = [
    "HEATMAP_OVERLAY",
    "LABEL_OVERLAY",
    "STUDY_COLUMNS",
    "CatalogPanel",
    "StudyDetail",
    "prediction_html",
    "quantification_table",
    "study_table",
]

STUDY_COLUMNS = (
    {"name": "study_date", "label": "Date"},
    {"name": "modality", "label": "Modality"},
    {"name": "description", "label": "Description"},
    {"name": "prediction", "label": "Prediction"},
    {"name": "probability", "label": "Probability", "format": "percent"},
    {"name": "model_id", "label": "Model"},
    {"name": "study_label", "label": "Label"},
    {"name": "review_status", "label": "Review"},
    {"name": "job_status", "label": "Job status"},
    {"name": "patient_pseudonym", "label": "Patient (pseudonym)"},
)
#: Name of the heat map overlay in the viewer.
HEATMAP_OVERLAY = "LIME heat map"
#: Fraction of the heat map's peak below which it is transparent: only the regions that
#: pushed the prediction most are coloured, the rest of the scan stays readable.
HEATMAP_FLOOR = 0.25
# Region growing for clicks on real scans: with ITK's defaults (2.5 std, no smoothing) most
# clicks in papaya's brain MR leak past the 1000 mL guard; 1 std after 1 mm smoothing keeps
# a click to the structure under it (measured: 190-480 mL regions for five of six seeds).
CLICK_SEGMENT_PARAMS = {"tolerance": 1.0, "smoothing_sigma_mm": 1.0}
ALL = "All"
NOT_RUN = "not run"
QUANTITIES = ("volume_ml", "voxel_count", "intensity_mean", "intensity_std", "intensity_min", "intensity_max")


def study_table(
    studies: pd.DataFrame,
    results: pd.DataFrame,
    job_records: Iterable[Mapping[str, Any]],
    model_id: str | None = None,
) -> pd.DataFrame:
    """Join studies with their prediction and job status: the rows of the study browser.

    Parameters
    ----------
    studies, results : pandas.DataFrame
        ``Catalog.studies()``, ``Catalog.results()``.
    job_records : iterable of mapping
        Job records (``Catalog.job_records()``).
    model_id : str, optional
        The store's default model: its prediction is shown where it has one, else the
        study's latest (the ``model_id`` column says which).

    Returns
    -------
    pandas.DataFrame
        One row per study: ``study_uid``, the :data:`STUDY_COLUMNS` and ``volume_key``.
    """
    columns = ["study_uid", "volume_key", *(column["name"] for column in STUDY_COLUMNS)]
    if studies.empty:
        return pd.DataFrame(columns=columns)
    latest = latest_per_study(results)
    if model_id is not None and "model_id" in results:
        preferred = latest_per_study(results[results["model_id"] == model_id])
        latest = pd.concat([latest[~latest.index.isin(preferred.index)], preferred])
    table = studies.copy()
    table["study_date"] = pd.to_datetime(table["study_date"], errors="coerce").dt.strftime("%Y-%m-%d")
    table["prediction"] = table["study_uid"].map(latest["label"])
    table["probability"] = table["study_uid"].map(latest["probability"])
    table["model_id"] = table["study_uid"].map(latest["model_id"]) if "model_id" in latest else None
    status = job_status_by_study(job_records)
    has_result = table["prediction"].notna()
    table["job_status"] = [
        status.get(uid, "done" if result else NOT_RUN) for uid, result in zip(table["study_uid"], has_result)
    ]
    for column in columns:
        if column not in table:
            table[column] = None
    return table[columns].reset_index(drop=True)


def prediction_html(result: Mapping[str, Any] | None) -> str:
    """HTML of a prediction with its provenance (model, checksum, library version, time, parameters)."""
    if not result:
        return "<div class='study-prediction'><i>No prediction yet: start a batch in the job monitor.</i></div>"
    result = records.normalise("result_record", result)
    provenance = result.get("provenance") or {}
    params = provenance.get("parameters") or {}
    rows = [
        ("Prediction", f"<b class='study-label'>{html.escape(str(result['label']))}</b>"),
        ("Probability", f"{100 * float(result['probability']):.1f} %"),
        ("Most suspicious slice", str(result.get("most_suspicious_slice", "–"))),
        ("Model", html.escape(str(result.get("model_id", "–")))),
        ("Decision rule", html.escape(_rule_text(result))),
        ("Model checksum", f"<code>{html.escape(str(result.get('model_checksum', ''))[:16])}…</code>"),
        ("Library version", html.escape(str(provenance.get("library_version", "–")))),
        ("Computed", html.escape(str(provenance.get("created_at", "–")))),
        ("Parameters", html.escape(", ".join(f"{name}={value}" for name, value in sorted(params.items())))),
    ]
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{name}</th><td>{value}</td></tr>" for name, value in rows
    )
    return f"<table class='study-prediction'>{body}</table>"


def _rule_text(result: Mapping[str, Any]) -> str:
    rule = result.get("decision") or {}
    threshold = float(result.get("threshold", rule.get("threshold", 0.5)))
    if rule.get("aggregate") == "top_k_mean":
        return f"mean of the {rule.get('k')} most suspicious slices ≥ {threshold:.3f}"
    return f"most suspicious slice ≥ {threshold:.3f}"


def quantification_table(segmentations: pd.DataFrame) -> pd.DataFrame:
    """The saved masks of a study and their main numbers, one row per mask.

    Parameters
    ----------
    segmentations : pandas.DataFrame
        ``Catalog.segmentations()`` rows of one study (``quantification.*`` columns).
    """
    columns = {f"quantification.{name}": name for name in QUANTITIES}
    table = segmentations.reindex(columns=["seg_id", *columns]).rename(columns=columns)
    return table.reset_index(drop=True)


class StudyDetail(ipywidgets.VBox):
    """One study: viewer with heat map and masks, prediction, quantification, downloads.

    Parameters
    ----------
    store : imaging_lib.store.Store
    study : mapping
        The study's catalog row (``study_uid``, ``volume_key``...).
    result : mapping, optional
        Its latest result record.
    segmentations : pandas.DataFrame
        Its segmentation records.
    report_keys : list of str
        Its report keys in the store.
    client : distributed.Client, optional
        Where clicks are segmented (see :class:`~widgets.segment_panel.SegmentPanel`).
    user : str, optional
        Who reviews (see :class:`~widgets.review_panel.ReviewPanel`).
    on_review : callable, optional
        Called with each label version the review saves.
    """

    def __init__(
        self,
        store: Any,
        study: Mapping[str, Any],
        result: Mapping[str, Any] | None,
        segmentations: pd.DataFrame,
        report_keys: list[str],
        client: Any = None,
        *,
        user: str | None = None,
        on_review: Any = None,
    ) -> None:
        from .papaya import PapayaViewer
        from .segment_panel import SegmentPanel

        self.study_uid = str(study["study_uid"])
        volume = store.read_volume(study["volume_key"])
        self.viewer = PapayaViewer(volume, layout=ipywidgets.Layout(width="100%"))  # as wide as the column
        self.heatmap_key = result.get("explanation_key") if result else None
        if self.heatmap_key and store.exists(self.heatmap_key):
            heatmap = store.read_volume(self.heatmap_key)
            peak = float(heatmap.array.max())
            if peak > 0:
                self.viewer.add_overlay(
                    heatmap,
                    lut="Overlay (Positives)",
                    min=HEATMAP_FLOOR * peak,
                    max=peak,
                    alpha=0.6,
                    name=HEATMAP_OVERLAY,
                )
        for record in segmentations.to_dict("records"):
            self.viewer.add_overlay(
                store.read_volume(record["mask_key"]), lut="Green Overlay", alpha=0.5, name=f"saved {record['seg_id']}"
            )
        label = latest_label(store, self.study_uid)
        if label and label.get("mask"):
            self.viewer.add_overlay(
                store.read_volume(label["mask"]["key"]), lut="Blue Overlay", alpha=0.5, name=LABEL_OVERLAY
            )
        self.viewer.fill_params = dict(CLICK_SEGMENT_PARAMS)  # the edit mode's fill grows as clicks do
        if result:
            shape = volume.array.shape
            self.viewer.goto((shape[0] // 2, shape[1] // 2, int(result["most_suspicious_slice"])))
        self.segmenter = SegmentPanel(
            self.viewer, volume, client, store=store, study_uid=self.study_uid, params=CLICK_SEGMENT_PARAMS
        )
        numbers = quantification_table(segmentations)
        quantification = (
            numbers.to_html(
                index=False, float_format=lambda value: f"{value:.2f}", classes="study-quantification", border=0
            )
            if not numbers.empty
            else "<i>No saved segmentation: click in the image to segment.</i>"
        )
        self.downloads = [
            DownloadButton(store, study["volume_key"], "Volume (de-identified NIfTI)", f"{self.study_uid}.nii.gz"),
            *(
                [DownloadButton(store, self.heatmap_key, "LIME heat map (NIfTI)", f"{self.study_uid}_lime.nii.gz")]
                if self.heatmap_key
                else []
            ),
            *(
                DownloadButton(store, record["mask_key"], f"Mask {record['seg_id']}", f"{record['seg_id']}.nii.gz")
                for record in segmentations.to_dict("records")
            ),
            *(DownloadButton(store, key, f"Report {posixpath.basename(key)}") for key in report_keys),
        ]
        self.export = ExportButtons(store, self.study_uid)
        self.review = ReviewPanel(
            store,
            self.study_uid,
            viewer=self.viewer,
            masks={f"saved {r['seg_id']}": r["mask_key"] for r in segmentations.to_dict("records")},
            user=user,
            on_saved=on_review,
        )
        title = ipywidgets.HTML(f"<h3 class='study-title'>Study {html.escape(self.study_uid)}</h3>")
        side = ipywidgets.VBox(
            [
                self.review,
                ipywidgets.HTML("<h4>Prediction</h4>" + prediction_html(result)),
                ipywidgets.HTML("<h4>Saved segmentations</h4>" + quantification),
                ipywidgets.HTML("<h4>Reports and downloads</h4>"),
                *self.downloads,
                ipywidgets.HTML("<h4>DICOM (archive and download)</h4>"),
                self.export,
            ],
            layout=ipywidgets.Layout(padding="0 1em", flex="0 1 auto", max_width="40%"),
        )
        self.segmenter.layout = ipywidgets.Layout(flex="1 1 0", min_width="420px")  # the viewer takes what is left
        super().__init__([title, ipywidgets.HBox([self.segmenter, side])])


class CatalogPanel(ipywidgets.VBox):
    """The study browser: filterable catalog table; the selected study opens below it.

    Parameters
    ----------
    store : imaging_lib.store.Store
        The store whose catalog is shown.
    client : distributed.Client, optional
        Where clicks in the viewer are segmented; default :func:`imaging_lib.jobs.get_client`
        at the first click (no cluster is made on page load).
    user : str, optional
        Who reviews: the dashboard's user (default :func:`imaging_lib.store.records.current_user`).
    """

    def __init__(self, store: Any, *, client: Any = None, user: str | None = None) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.client = client
        self.user = user
        self.modality = ipywidgets.Dropdown(description="Modality", options=[ALL], value=ALL)
        self.prediction = ipywidgets.Dropdown(description="Prediction", options=[ALL], value=ALL)
        self.review_status = ipywidgets.Dropdown(
            description="Review", options=[ALL, *review.REVIEW_STATUSES], value=ALL
        )
        self.search = ipywidgets.Text(placeholder="search any column", continuous_update=True)
        self.refresh_button = ipywidgets.Button(description="Refresh", icon="refresh")
        self.count = ipywidgets.HTML()
        self.table = RecordTable(
            STUDY_COLUMNS,
            key="study_uid",
            sort_by="study_date",
            ascending=False,
            empty_message="No studies match. Upload studies or run `imaging-lab ingest`.",
        )
        self.detail = ipywidgets.VBox()
        self.studies = pd.DataFrame()
        self.results = pd.DataFrame()
        self.segmentations = pd.DataFrame()
        self.all_rows = pd.DataFrame()
        self.default_model_id: str | None = None
        filters = ipywidgets.HBox(
            [self.modality, self.prediction, self.review_status, self.search, self.refresh_button, self.count],
            layout=ipywidgets.Layout(flex_flow="row wrap"),
        )
        super().__init__([filters, self.table, self.detail])
        for control in (self.modality, self.prediction, self.review_status, self.search):
            control.observe(self._apply_filters, names="value")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.table.observe(self._on_select, names="selected")
        self.refresh()
        on_hand_out(self.refresh)  # rendered ahead of its visitor (a pooled kernel): show the store as it is now

    def refresh(self) -> None:
        """Re-read the catalog from the store and redraw the table (keeping filters)."""
        self.studies = self.catalog.studies()
        self.results = self.catalog.results()
        self.segmentations = self.catalog.segmentations()
        from imaging_lib.models.registry import default_model

        self.default_model_id = default_model(self.store, self.catalog).model_id
        self.all_rows = study_table(
            self.studies, self.results, self.catalog.job_records("batch"), self.default_model_id
        )
        self._set_options(self.modality, self.all_rows["modality"])
        self._set_options(self.prediction, self.all_rows["prediction"])
        self._apply_filters()

    @staticmethod
    def _set_options(dropdown: ipywidgets.Dropdown, values: pd.Series) -> None:
        options = [ALL, *sorted({str(value) for value in values.dropna() if str(value)})]
        current = dropdown.value if dropdown.value in options else ALL
        dropdown.options = options
        dropdown.value = current

    def _apply_filters(self, _change: Any = None) -> None:
        equals = {
            "modality": None if self.modality.value == ALL else self.modality.value,
            "prediction": None if self.prediction.value == ALL else self.prediction.value,
            "review_status": None if self.review_status.value == ALL else self.review_status.value,
        }
        shown = filter_records(self.all_rows, equals, self.search.value)
        self.table.set_records(shown)
        self.count.value = f"{len(shown)} of {len(self.all_rows)} studies"

    def _on_select(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.open_study(change["new"])

    def open_study(self, study_uid: str) -> StudyDetail:
        """Show one study below the table (what selecting its row does).

        Raises
        ------
        KeyError
            If the study is not in the catalog.
        """
        rows = self.all_rows[self.all_rows["study_uid"] == study_uid]
        if rows.empty:
            raise KeyError(study_uid)
        study = rows.iloc[0].to_dict()
        result = self.catalog.latest_result(study_uid, self.default_model_id) or self.catalog.latest_result(study_uid)
        segmentations = (
            self.segmentations[self.segmentations["study_uid"] == study_uid]
            if not self.segmentations.empty
            else pd.DataFrame(columns=["seg_id", "mask_key"])
        )
        reports = [key for key in self.catalog.report_files(study_uid) if key.endswith((".html", ".pdf"))]
        detail = StudyDetail(
            self.store, study, result, segmentations, reports, self.client,
            user=self.user, on_review=lambda _record: self.refresh(),
        )  # fmt: skip
        self.detail.children = [detail]
        return detail

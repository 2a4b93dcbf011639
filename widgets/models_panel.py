"""ModelsPanel: the Models page of the dashboards.

Three sections, all read from the store, so trainings started anywhere (a notebook, the
CLI, another dashboard) show up:

* **Running trainings**: each running training job followed live with
  :class:`~widgets.training_progress.TrainingProgress` (loss and validation AUC curves),
  with a button to cancel it (``researcher`` role);
* **Models**: the registry (:func:`imaging_lib.models.registry.models_table`) with held-out
  metrics, the default marked; selecting a model shows its card, and a button makes it the
  store's default (``admin`` role);
* **Compare**: two models' ROC curves side by side on the same held-out studies
  (:func:`imaging_lib.training.compare.compare_models`).

Buttons a role may not use are hidden (:func:`widgets.access.gate`), and
the library refuses the action anyway (:func:`imaging_lib.identity.require`),
so a forged click changes nothing. A background thread refreshes the page every ``poll``
seconds while it is shown; no Dask client is made by this page.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets
import pandas as pd

from imaging_lib.store.catalog import Catalog

from .access import gate
from .line_chart import LineChart, series
from .record_table import RecordTable

__all__ = ["MODEL_COLUMNS", "ModelsPanel", "card_html", "roc_series"]

MODEL_COLUMNS = (
    {"name": "default_mark", "label": "Default"},
    {"name": "model_id", "label": "Model"},
    {"name": "created_at", "label": "Registered"},
    {"name": "created_by", "label": "By"},
    {"name": "validation_slice_auc", "label": "Val AUC", "format": "number"},
    {"name": "test_slice_auc", "label": "Held-out AUC", "format": "number"},
    {"name": "study_threshold", "label": "Threshold", "format": "number"},
    {"name": "study_sensitivity", "label": "Sensitivity", "format": "percent"},
    {"name": "study_specificity", "label": "Specificity", "format": "percent"},
    {"name": "source", "label": "Trained in"},
)


def card_html(card: str) -> str:
    """A model card (Markdown from the store) as HTML, with any HTML in it escaped."""
    import mistune

    return str(mistune.create_markdown(escape=True, plugins=["table"])(card))


def roc_series(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines of one model's ROC chart: slice-level and study-level curves."""
    lines = []
    for level, plural, colour in (("slice", "slices", "#2563eb"), ("study", "studies", "#dc2626")):
        roc = result.get(f"{level}_roc") or {}
        auc = result.get(f"{level}_auc")
        name = f"{plural}, AUC {auc:.3f}" if auc is not None else f"{plural} (one class only)"
        lines.append(series(name, roc.get("fpr") or [], roc.get("tpr") or [], color=colour))
    return lines


def _rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = table.copy()
    rows["default_mark"] = ["✓" if flag else "" for flag in rows["default"]]
    rows["created_at"] = rows["created_at"].str.slice(0, 19).str.replace("T", " ")
    return rows


class ModelsPanel(ipywidgets.VBox):
    """Running trainings, the model registry with promote, and a side-by-side ROC comparison.

    Parameters
    ----------
    store : imaging_lib.store.Store
    poll : float
        Seconds between refreshes while something runs.
    """

    def __init__(self, store: Any, *, poll: float = 2.0) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.poll = poll
        self.running = ipywidgets.VBox()
        self.progress: dict[str, Any] = {}
        self.table = RecordTable(
            MODEL_COLUMNS, key="model_id", sort_by="created_at", ascending=False, empty_message="No model registered."
        )
        self.promote_button = ipywidgets.Button(description="Make default", icon="star", button_style="warning")
        gate(self.promote_button, "promote")
        self.promote_button.disabled = True
        self.status = ipywidgets.HTML()
        self.card = ipywidgets.HTML()
        self.model_a = ipywidgets.Dropdown(description="Model A")
        self.model_b = ipywidgets.Dropdown(description="Model B")
        self.compare_button = ipywidgets.Button(description="Compare on held-out studies", icon="line-chart")
        self.comparison_note = ipywidgets.HTML()
        self.roc_a = LineChart(title="Model A", x_label="false positive rate", y_label="true positive rate")
        self.roc_b = LineChart(title="Model B", x_label="false positive rate", y_label="true positive rate")
        for chart in (self.roc_a, self.roc_b):
            chart.diagonal = True
            chart.x_min, chart.x_max, chart.y_min, chart.y_max = 0.0, 1.0, 0.0, 1.0
            chart.empty_message = "Choose two models and compare."
        super().__init__(
            [
                ipywidgets.HTML("<h3>Running trainings</h3>"),
                self.running,
                ipywidgets.HTML("<h3>Models</h3>"),
                self.table,
                ipywidgets.HBox([self.promote_button, self.status]),
                self.card,
                ipywidgets.HTML("<h3>Compare two models</h3>"),
                ipywidgets.HBox([self.model_a, self.model_b, self.compare_button]),
                self.comparison_note,
                ipywidgets.HBox([self.roc_a, self.roc_b]),
            ]
        )
        self.add_class("imaging-models-panel")
        self.table.observe(self._on_select, names="selected")
        self.promote_button.on_click(lambda _button: self.promote_selected())
        self.compare_button.on_click(lambda _button: self.compare())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_forever, name="models-panel", daemon=True)
        self.refresh()
        self._thread.start()

    # ------------------------------------------------------------------ reading
    def refresh(self) -> None:
        """Re-read the running trainings and the registry from the store."""
        from imaging_lib.models.registry import models_table

        self._show_running()
        table = models_table(self.store, self.catalog)
        self.table.set_records(_rows(table))
        options = list(table["model_id"])
        for dropdown, index in ((self.model_a, 0), (self.model_b, 1)):
            current = dropdown.value if dropdown.value in options else None
            dropdown.options = options
            dropdown.value = current or (options[min(index, len(options) - 1)] if options else None)

    def _show_running(self) -> None:
        from imaging_lib.jobs import JobView

        from .training_progress import TrainingProgress

        jobs = self.catalog.jobs()
        running = (
            [] if jobs.empty else list(jobs[(jobs["kind"] == "training") & (jobs["status"] == "running")]["job_id"])
        )
        for job_id in running:
            if job_id not in self.progress:
                self.progress[job_id] = (
                    TrainingProgress(JobView(self.store, job_id), poll=1.0),
                    self._cancel_button(job_id),
                )
        shown = [ipywidgets.VBox([progress, button]) for job_id, (progress, button) in self.progress.items()]
        self.running.children = shown or [ipywidgets.HTML("<i>No training is running.</i>")]

    def _cancel_button(self, job_id: str) -> ipywidgets.Button:
        button = ipywidgets.Button(description="Cancel training", icon="stop", button_style="danger")
        gate(button, "train")
        button.on_click(lambda _button: self.cancel(job_id))
        return button

    def _refresh_forever(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.refresh()
            except OSError:  # a store hiccup: next tick
                continue

    def stop(self) -> None:
        """Stop refreshing in the background (and the trainings' own refreshes)."""
        self._stop.set()
        for progress, _button in self.progress.values():
            progress.stop()

    # ------------------------------------------------------------------ actions
    def _on_select(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.show_model(change["new"])

    def show_model(self, model_id: str) -> None:
        """Show a model's card below the table (what selecting its row does)."""
        from imaging_lib.models.registry import read_model_record

        record = read_model_record(self.store, model_id)
        self.card.value = f"<div class='model-card'>{card_html(str(record.get('card') or ''))}</div>"
        self.promote_button.disabled = False
        self.status.value = ""

    def promote_selected(self) -> dict[str, Any] | None:
        """Make the selected model the store's default (refused without the admin role)."""
        from imaging_lib.errors import ImagingError
        from imaging_lib.models.registry import promote

        if not self.table.selected:
            return None
        try:
            record = promote(self.store, self.table.selected, comment="Models page")
        except ImagingError as exc:
            self.status.value = f"<span class='models-error'>{html.escape(str(exc))}</span>"
            return None
        self.status.value = f"<b>{html.escape(record['model_id'])}</b> is now the default model."
        self.refresh()
        return record

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Ask every trial of a training job to stop (refused without the researcher role)."""
        from imaging_lib.errors import ImagingError
        from imaging_lib.jobs import cancel_training

        try:
            return cancel_training(self.store, job_id, reason="cancelled on the Models page")
        except ImagingError as exc:
            self.status.value = f"<span class='models-error'>{html.escape(str(exc))}</span>"
            return None

    def compare(self) -> dict[str, Any] | None:
        """Draw models A and B's ROC curves side by side on the same held-out studies."""
        from imaging_lib.errors import ImagingError
        from imaging_lib.training.compare import compare_models

        chosen = [self.model_a.value, self.model_b.value]
        if None in chosen:
            return None
        self.comparison_note.value = "<i>Predicting the held-out studies…</i>"
        try:
            result = compare_models(self.store, chosen)
        except ImagingError as exc:
            self.comparison_note.value = f"<span class='models-error'>{html.escape(str(exc))}</span>"
            return None
        for chart, model_id in zip((self.roc_a, self.roc_b), chosen, strict=True):
            found = result["models"][model_id]
            chart.title = f"{model_id} (threshold {found['threshold']:.3f})"
            chart.set_series(roc_series(found))
        self.comparison_note.value = html.escape(f"{len(result['studies'])} studies: {result['note']}.") + "".join(
            f"<br><b>{html.escape(model_id)}</b>: sensitivity {_percent(found['sensitivity'])}, "
            f"specificity {_percent(found['specificity'])} at its own threshold"
            for model_id, found in result["models"].items()
        )
        return result


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"

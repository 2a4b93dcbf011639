"""TrainingProgress: a training job followed live, with its loss and validation AUC curves.

``TrainingProgress(job)`` shows, for every trial of a training job, its status, epoch,
latest loss and validation AUC, best epoch and registered model, and two live plots
(:class:`~widgets.line_chart.LineChart`): the training and validation loss, and the
validation AUC, one line per trial. It follows anything with a ``snapshot()`` returning a
job record: the :class:`~imaging_lib.jobs.TrainingJob` in the notebook that started it,
or a :class:`~imaging_lib.jobs.JobView` of the store from any other process (the Models
page). A background thread refreshes it until the job has ended.

The rows and curves are pure functions of the job record (:func:`trial_rows`,
:func:`curves`); the widget only reads and shows.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets

from .job_progress import FollowedRecord, JobSource
from .line_chart import LineChart, series

__all__ = ["TrainingProgress", "curves", "trial_rows"]


def _trials(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(((record.get("metrics") or {}).get("trials")) or {})


def trial_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trial of a training job record: status, epochs, latest loss and AUC, best, model, error."""
    rows = []
    for trial, entry in sorted(_trials(record).items()):
        epochs = entry.get("epochs") or []
        last = epochs[-1] if epochs else {}
        error = entry.get("error") or {}
        note = f"{error.get('error_type')}: {error.get('error')}" if error.get("error") else entry.get("stopped")
        rows.append(
            {
                "trial": trial,
                "status": entry.get("status", "pending"),
                "epoch": f"{len(epochs)} / {(entry.get('parameters') or {}).get('epochs', '?')}",
                "loss": last.get("loss"),
                "val_auc": last.get("val_auc"),
                "best_epoch": entry.get("best_epoch"),
                "model_id": entry.get("model_id"),
                "note": note,
            }
        )
    return rows


def curves(record: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """The lines of one plot: ``"loss"`` (training solid, validation dashed) or ``"val_auc"``, per trial."""
    lines = []
    for trial, entry in sorted(_trials(record).items()):
        epochs = entry.get("epochs") or []
        x = [e["epoch"] for e in epochs]
        if metric == "loss":
            lines.append(series(f"{trial} train", x, [e.get("loss") for e in epochs]))
            lines.append(series(f"{trial} validation", x, [e.get("val_loss") for e in epochs], dash=True))
        else:
            lines.append(series(trial, x, [e.get(metric) for e in epochs]))
    palette = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4b5563")
    per_trial = 2 if metric == "loss" else 1
    for index, line in enumerate(lines):
        line["color"] = palette[(index // per_trial) % len(palette)]
    return lines


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else escape(str(value))


def _table_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<i>No trial yet.</i>"
    head = "".join(
        f"<th style='text-align:left;padding-right:1em'>{name}</th>"
        for name in ("trial", "status", "epoch", "loss", "val AUC", "best epoch", "model", "note")
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='padding-right:1em' data-column='{key}'>{_fmt(row[key])}</td>"
            for key in ("trial", "status", "epoch", "loss", "val_auc", "best_epoch", "model_id", "note")
        )
        + "</tr>"
        for row in rows
    )
    return f"<table class='training-trials'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class TrainingProgress(FollowedRecord):
    """Live view of a training job: a table of trials and loss / AUC curves.

    Parameters
    ----------
    source : TrainingJob or JobView
        Anything with ``snapshot() -> dict`` (a training job record).
    poll : float
        Seconds between refreshes.
    follow : bool
        Start the background refresh now; if False, call :meth:`refresh` yourself.
    """

    def __init__(self, source: JobSource, *, poll: float = 1.0, follow: bool = True) -> None:
        self.source = source
        self.poll = poll
        self.header = ipywidgets.HTML()
        self.table = ipywidgets.HTML()
        self.loss_chart = LineChart(title="Loss", x_label="epoch", y_label="cross-entropy", x_min=1, y_min=0)
        self.auc_chart = LineChart(
            title="Validation AUC", x_label="epoch", y_label="slice ROC AUC", x_min=1, y_min=0, y_max=1
        )
        for chart in (self.loss_chart, self.auc_chart):
            chart.empty_message = "Waiting for the first epoch…"
        self.errors = ipywidgets.HTML()
        charts = ipywidgets.HBox([self.loss_chart, self.auc_chart])
        super().__init__([self.header, self.table, charts, self.errors])
        self.add_class("imaging-training-progress")
        self._start_following(follow, "training-progress")

    def refresh(self) -> dict[str, Any]:
        """Read the job record once and show it; return the record."""
        record = self.source.snapshot()
        link = record.get("dashboard_link")
        dashboard = f' &middot; <a href="{escape(link)}" target="_blank">Dask dashboard</a>' if link else ""
        self.header.value = (
            f"<b>Training {escape(str(record.get('job_id')))}</b> &middot; "
            f"<span class='job-status'>{escape(str(record.get('status')))}</span>{dashboard}"
        )
        self.table.value = _table_html(trial_rows(record))
        epochs = [e["epoch"] for entry in _trials(record).values() for e in entry.get("epochs") or []]
        longest = max(
            [int((entry.get("parameters") or {}).get("epochs", 1)) for entry in _trials(record).values()] or [1]
        )
        for chart in (self.loss_chart, self.auc_chart):
            chart.x_max = float(max([longest, *epochs]))
        self.loss_chart.set_series(curves(record, "loss"))
        self.auc_chart.set_series(curves(record, "val_auc"))
        errors = record.get("errors") or []
        self.errors.value = "".join(
            f"<p class='training-error'><code>{escape(e['error_type'])}</code> {escape(e['item'])}: "
            f"{escape(e['error'])}</p>"
            for e in errors
        )
        self.record = record
        return record

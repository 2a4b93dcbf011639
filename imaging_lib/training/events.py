"""Where a trial's numbers go each epoch: JSON metrics and a checkpoint in the store, TensorBoard, the job.

* :class:`TrialLog` writes ``training/<job>/<trial>/metrics.json`` (always), TensorBoard
  event files beside it when the ``tensorboard`` extra is installed (written locally,
  uploaded whole to the store after each epoch, so ``gs://`` stores get them too), and
  tells the job's driver through a Dask worker event (:func:`.control.metrics_topic`), so the job
  record shows live loss and validation AUC.
* :func:`save_checkpoint` and :func:`latest_checkpoint` keep one checkpoint per trial in the
  store (weights, optimiser, best weights, history and random states), written atomically
  every epoch; the older one is removed once the new one is in place. Checkpoints load
  with ``torch.load(weights_only=True)``: tensors and plain values, never code.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingRecord
from ..store import layout, model_records
from .control import metrics_topic

__all__ = ["TrialLog", "latest_checkpoint", "save_checkpoint", "tensorboard_writer"]

logger = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def tensorboard_writer(log_dir: str) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir``, or None when ``tensorboard`` is not installed."""
    try:
        import tensorboard  # noqa: F401  (the extra; torch's writer needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=log_dir)


class TrialLog:
    """The per-epoch outputs of one trial.

    Parameters
    ----------
    store : Store
    job_id, trial_id : str
    parameters : mapping
        The trial's parameters (kept in the metrics).
    """

    def __init__(self, store: Any, job_id: str, trial_id: str, parameters: Mapping[str, Any]) -> None:
        self.store, self.job_id, self.trial_id = store, job_id, trial_id
        self.parameters = dict(parameters)
        self._folder: str | None = None
        self.tensorboard: Any = None

    def metrics(self) -> dict[str, Any] | None:
        """The trial's metrics as last written, or None."""
        try:
            found = self.store.read_json(layout.trial_metrics_key(self.job_id, self.trial_id))
        except MissingRecord:
            return None
        return found if isinstance(found, dict) else None

    def write(self, status: str, state: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """Write the metrics (``state``: ``epochs``, ``best_epoch``, ``resumed_from``) with ``status``; return them."""
        record = model_records.trial_metrics(
            self.job_id,
            self.trial_id,
            status=status,
            parameters=self.parameters,
            epochs=state["epochs"],
            best_epoch=state["best_epoch"],
            resumed_from=state["resumed_from"],
            **extra,
        )
        self.store.write_json(layout.trial_metrics_key(self.job_id, self.trial_id), record)
        self._tell({"trial_id": self.trial_id, "status": status, **{k: record[k] for k in _TOLD}})
        return record

    def epoch(self, entry: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        """Record one finished epoch everywhere (after its checkpoint is stored)."""
        if self._folder is None:  # the first epoch of this run: event files only for trials that train
            self._folder = tempfile.mkdtemp(prefix="imaging-tensorboard-")
            self.tensorboard = tensorboard_writer(self._folder)
        if self.tensorboard is not None:
            for name in ("loss", "val_loss", "val_auc"):
                if entry.get(name) is not None:
                    self.tensorboard.add_scalar(f"{self.trial_id}/{name}", entry[name], entry["epoch"])
            self.tensorboard.flush()
            self._upload_events()
        self.write("running", state)

    def _upload_events(self) -> None:
        for path in Path(str(self._folder)).glob("events.out.tfevents.*"):
            key = layout.tensorboard_key(self.job_id, self.trial_id, _UNSAFE.sub("_", path.name))
            self.store.write_bytes(key, path.read_bytes())

    def _tell(self, payload: Mapping[str, Any]) -> None:
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not on a Dask worker: the metrics file is enough
            return
        worker.log_event(metrics_topic(self.job_id), dict(payload))

    def close(self) -> None:
        """Flush TensorBoard and remove the local event folder."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self._upload_events()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


_TOLD = ("epochs", "best_epoch", "resumed_from", "stopped", "model_id", "error")


def save_checkpoint(store: Any, job_id: str, trial_id: str, epoch: int, state: Mapping[str, Any]) -> str:
    """Store ``state`` as the trial's checkpoint after ``epoch`` and remove older ones; return its key."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    key = layout.checkpoint_key(job_id, trial_id, epoch)
    store.write_bytes(key, buffer.getvalue())
    for old in store.list(layout.trial_prefix(job_id, trial_id)):
        parsed = layout.parse(old)
        if parsed is not None and parsed.kind == "checkpoint" and old != key:
            store.delete(old)
    return key


def latest_checkpoint(store: Any, job_id: str, trial_id: str) -> dict[str, Any] | None:
    """The trial's newest readable checkpoint (tensors and plain values only), or None.

    A checkpoint that does not load (cut short, or not written by a trial) is skipped with
    a warning, and the one before it is used.
    """
    keys = sorted(
        key
        for key in store.list(layout.trial_prefix(job_id, trial_id))
        if (parsed := layout.parse(key)) is not None and parsed.kind == "checkpoint"
    )
    for key in reversed(keys):
        try:
            state = torch.load(io.BytesIO(store.read_bytes(key)), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a damaged or foreign file
            logger.warning("skipping checkpoint %s: %s", key, exc)
            continue
        if isinstance(state, dict) and isinstance(state.get("epoch"), int):
            return state
    return None

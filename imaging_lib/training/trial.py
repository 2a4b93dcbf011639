"""One training trial, start to registered model: the function a Dask task runs.

:func:`run_trial` trains a registered architecture on the reviewed labels of a store:

1. it checks the training set and loads the slices, split by patient (:mod:`.data`);
2. it resumes from the trial's last checkpoint if one is in the store (its worker died);
3. each epoch: the training slices in a seeded order, flipped or turned, and, for the
   demo, some lesion-free ones given a synthetic lesion; then the validation loss and slice
   AUC; then a checkpoint, the JSON metrics, TensorBoard, and a message to the job;
4. it stops early when the validation AUC has not improved for ``patience`` epochs, or when
   the job is cancelled (:mod:`.control`), and fails with
   :class:`~imaging_lib.errors.TrainingDiverged` as soon as the loss is not finite;
5. it keeps the best epoch's weights, chooses the study threshold on the validation
   studies, measures the held-out studies (:mod:`.evaluate`) and registers the model
   (:func:`imaging_lib.models.registry.register_model`).

Everything the trial writes is keyed by job and trial, so a task that Dask runs again after
its worker died resumes instead of starting over, and its model (same weights, same id) is
registered once. A trial that already finished returns its result without training.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ImagingError, TrainingDiverged
from ..models.builders import builder
from ..models.spec import ModelSpec
from ..store import layout
from .control import cancellation
from .data import TrainingData, load_training_data
from .evaluate import positive_probabilities, to_model_batch
from .events import TrialLog, latest_checkpoint, save_checkpoint
from .params import TrainingParams

__all__ = ["CANCEL_CHECK_BATCHES", "run_trial"]

CANCEL_CHECK_BATCHES = 25
"""Batches between two looks for a cancellation within an epoch."""
CLASS_NAMES = ("no_lesion", "lesion")


@dataclass
class _Progress:
    """What a checkpoint carries besides tensors."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_auc: float | None = None
    resumed_from: list[int] = field(default_factory=list)
    stopped: str | None = None

    def as_state(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "resumed_from": self.resumed_from,
        }


class _Stop(Exception):
    """Raised inside an epoch when the job was cancelled."""


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _build(params: TrainingParams, store: Any) -> nn.Module:
    module = builder(params.architecture, f"training {params.name}")(**params.architecture_params)
    if params.parent_model:
        from ..models.registry import load_registered_model

        parent = load_registered_model(store, params.parent_model)
        module.load_state_dict(parent.module.state_dict(), strict=True)
    return module


def _augment(
    images: np.ndarray, targets: np.ndarray, rng: np.random.Generator, params: TrainingParams
) -> tuple[np.ndarray, np.ndarray]:
    """A training batch: random flips and quarter turns, and synthetic lesions in some lesion-free slices."""
    from ..models.training import anatomy_mask, insert_lesion

    images, targets = images.copy(), targets.copy()
    square = images.shape[1] == images.shape[2]
    for n in range(len(images)):
        if params.synthetic_lesions > 0 and targets[n] == 0 and rng.random() < params.synthetic_lesions:
            anatomy = anatomy_mask(images[n])
            if anatomy.any():
                images[n], _ = insert_lesion(images[n], anatomy, rng)
                targets[n] = 1
        if params.augment:
            turned = np.rot90(images[n], int(rng.integers(4)) if square else 2 * int(rng.integers(2)))
            images[n] = turned[:, ::-1] if rng.random() < 0.5 else turned
    return images, targets


def _train_epoch(
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    data: TrainingData,
    rng: np.random.Generator,
    params: TrainingParams,
    where: str,
    stop_requested: Callable[[], bool],
) -> float:
    images, targets = data.labelled("train")
    order = rng.permutation(len(targets))
    module.train()
    device = _device()
    total = 0.0
    for batch, start in enumerate(range(0, len(order), params.batch_size)):
        if batch and batch % CANCEL_CHECK_BATCHES == 0 and stop_requested():
            raise _Stop
        rows = order[start : start + params.batch_size]
        x, y = _augment(images[rows], targets[rows], rng, params)
        loss = nn.functional.cross_entropy(module(to_model_batch(x, device)), torch.from_numpy(y).to(device))
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                where,
                f"the loss became {float(loss.detach())} in batch {batch + 1}: lower the learning rate "
                f"({params.learning_rate}) or check the inputs",
            )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(rows)
    return total / max(len(order), 1)


def _validate(module: nn.Module, data: TrainingData) -> tuple[float, float | None]:
    from ..models.decision import roc_auc

    images, targets = data.labelled("validation")
    probabilities = np.clip(positive_probabilities(module, images, device=_device()), 1e-7, 1 - 1e-7)
    loss = -np.mean(np.where(targets == 1, np.log(probabilities), np.log(1 - probabilities)))
    return float(loss), roc_auc(probabilities, targets)


def _copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in module.state_dict().items()}


def _resume(
    store: Any, job_id: str, trial_id: str, module: nn.Module, optimiser: torch.optim.Optimizer
) -> tuple[_Progress, dict[str, torch.Tensor] | None, np.random.Generator | None]:
    state = latest_checkpoint(store, job_id, trial_id)
    if state is None:
        return _Progress(), None, None
    module.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    saved = json.loads(state["progress"])
    progress = _Progress(**saved)
    progress.resumed_from.append(int(state["epoch"]))
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    return progress, state["best_model"], rng


def _checkpoint(
    store: Any,
    job_id: str,
    trial_id: str,
    epoch: int,
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    best: dict[str, torch.Tensor],
    progress: _Progress,
    rng: np.random.Generator,
) -> None:
    state = {
        "epoch": epoch,
        "model": _copy(module),
        "optimizer": optimiser.state_dict(),
        "best_model": best,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "progress": json.dumps(progress.__dict__),
    }
    save_checkpoint(store, job_id, trial_id, epoch, state)


def _spec(params: TrainingParams) -> ModelSpec:
    return ModelSpec(
        name=params.name,
        format="state_dict",
        weights=layout.MODEL_WEIGHTS_FILE,
        input_size=params.input_size,
        channels=3,
        class_names=CLASS_NAMES,
        positive_class="lesion",
        sha256="0" * 64,  # replaced by the stored weights' hash when registered
        preprocessing=dict(params.preprocessing),
        architecture=params.architecture,
        architecture_params=dict(params.architecture_params),
        batch_size=25,
    )


def _register(
    store: Any,
    job_id: str,
    trial_id: str,
    params: TrainingParams,
    module: nn.Module,
    data: TrainingData,
    progress: _Progress,
    created_by: str | None,
) -> dict[str, Any]:
    from dataclasses import replace

    from ..models.registry import register_model
    from .evaluate import evaluate
    from .lineage import code_version

    rule, metrics, roc = evaluate(module, data, params.decision_k, _device())
    metrics = {**metrics, "best_epoch": progress.best_epoch, "best_validation_auc": progress.best_auc}
    buffer = io.BytesIO()
    torch.save({name: value.contiguous() for name, value in _copy(module).items()}, buffer)
    spec = replace(_spec(params), metrics=metrics, decision=rule.to_dict())
    lineage = {
        "source": "training",
        "manifest_sha256": data.manifest_sha256,
        "parent_model": params.parent_model,
        "training_parameters": params.to_dict(),
        "code_version": code_version(),
    }
    training = {"job_id": job_id, "trial_id": trial_id, **progress.as_state(), "stopped": progress.stopped}
    summary = {**data.summary(), "synthetic_lesions": params.synthetic_lesions}
    return register_model(
        store,
        spec,
        buffer.getvalue(),
        metrics=metrics,
        lineage=lineage,
        roc=roc,
        data=summary,
        training=training,
        created_by=created_by,
    )


def run_trial(
    trial_id: str,
    *,
    store: Any,
    job_id: str,
    trials: Mapping[str, Mapping[str, Any]],
    manifest: Mapping[str, Any],
    created_by: str | None = None,
    on_epoch: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and register one trial of a training job (see the module's description).

    Parameters
    ----------
    trial_id : str
        The trial (``trial-00``...): the task's item.
    store : Store
    job_id : str
        The training job; with ``trial_id`` it keys the checkpoints and metrics.
    trials : mapping
        Trial id -> :meth:`TrainingParams.to_dict` of every trial of the job.
    manifest : mapping
        The training manifest the job was started with (one for every trial).
    created_by : str, optional
        Who started the job (recorded on the model).
    on_epoch : callable, optional
        Called with each epoch's metrics after its checkpoint is stored.

    Returns
    -------
    dict
        ``trial_id``, ``status`` (``finished`` or ``cancelled``), ``model_id``, ``epochs_run``,
        ``best_epoch``, ``best_val_auc``, ``stopped``, ``resumed_from``.

    Raises
    ------
    InvalidTrainingSet
        The labels cannot train a model (see :func:`imaging_lib.training.data.check_training_set`).
    TrainingDiverged
        The loss became NaN or infinite.
    """
    params = TrainingParams.from_mapping(trials[trial_id])
    log = TrialLog(store, job_id, trial_id, params.to_dict())
    previous = log.metrics()
    if previous is not None and previous.get("status") == "finished":
        log.close()
        return _summary(trial_id, previous)
    progress = _Progress()
    try:
        record = _train(trial_id, store, job_id, params, manifest, created_by, log, progress, on_epoch)
    except ImagingError as exc:  # bad labels, a NaN loss, an unloadable parent model: said in the metrics too
        log.write("failed", progress.as_state(), error={"error_type": type(exc).__name__, "error": str(exc)})
        raise
    finally:
        log.close()
    return _summary(trial_id, record)


def _train(
    trial_id: str,
    store: Any,
    job_id: str,
    params: TrainingParams,
    manifest: Mapping[str, Any],
    created_by: str | None,
    log: TrialLog,
    progress: _Progress,
    on_epoch: Callable[[Mapping[str, Any]], None] | None,
) -> dict[str, Any]:
    where = f"{job_id}/{trial_id}"

    def stop_requested() -> bool:
        found = cancellation(store, job_id)
        if found is not None:
            who = (found.get("provenance") or {}).get("created_by", "someone")
            progress.stopped = f"cancelled by {who}" + (f": {found['reason']}" if found.get("reason") else "")
        return found is not None

    if stop_requested():
        return log.write("cancelled", progress.as_state(), stopped=progress.stopped)
    data = load_training_data(store, manifest, params)
    torch.manual_seed(params.seed)
    module = _build(params, store).to(_device())
    optimiser = torch.optim.Adam(module.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    resumed, best, rng = _resume(store, job_id, trial_id, module, optimiser)
    progress.__dict__.update(resumed.__dict__)
    rng = rng or np.random.default_rng(params.seed)
    best = best if best is not None else _copy(module)
    first = len(progress.epochs) + 1
    for epoch in range(first, params.epochs + 1):
        if progress.stopped or stop_requested():
            break
        started = time.perf_counter()
        try:
            loss = _train_epoch(module, optimiser, data, rng, params, where, stop_requested)
        except _Stop:
            break
        val_loss, val_auc = _validate(module, data)
        entry = {
            "epoch": epoch,
            "loss": round(loss, 6),
            "val_loss": round(val_loss, 6),
            "val_auc": None if val_auc is None else round(val_auc, 6),
            "seconds": round(time.perf_counter() - started, 3),
        }
        progress.epochs.append(entry)
        if val_auc is not None and (progress.best_auc is None or val_auc > progress.best_auc + params.min_delta):
            progress.best_epoch, progress.best_auc, best = epoch, val_auc, _copy(module)
        if params.patience and epoch - (progress.best_epoch or 0) >= params.patience:
            progress.stopped = f"early stopping: no validation AUC gain for {params.patience} epochs"
        _checkpoint(store, job_id, trial_id, epoch, module, optimiser, best, progress, rng)
        log.epoch(entry, progress.as_state())
        if on_epoch is not None:
            on_epoch(entry)
    if progress.stopped and progress.stopped.startswith("cancelled"):
        return log.write("cancelled", progress.as_state(), stopped=progress.stopped)
    module.load_state_dict(best)
    model = _register(store, job_id, trial_id, params, module, data, progress, created_by)
    return log.write("finished", progress.as_state(), stopped=progress.stopped, model_id=model["model_id"])


def _summary(trial_id: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    epochs = metrics.get("epochs") or []
    best: dict[str, Any] = next((e for e in epochs if e["epoch"] == metrics.get("best_epoch")), {})
    return {
        "trial_id": trial_id,
        "status": metrics["status"],
        "model_id": metrics.get("model_id"),
        "epochs_run": len(epochs),
        "best_epoch": metrics.get("best_epoch"),
        "best_val_auc": best.get("val_auc"),
        "stopped": metrics.get("stopped"),
        "resumed_from": list(metrics.get("resumed_from") or []),
    }

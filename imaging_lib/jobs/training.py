"""Training as a Dask job: one trial per task, live loss and validation AUC in the job record.

:func:`run_training` takes the store's training manifest (``Catalog.training_set()``, the
reviewed labels) and one :class:`~imaging_lib.training.TrainingParams` or a sweep of them
(:func:`~imaging_lib.training.grid`, :func:`~imaging_lib.training.random_search`), and runs
:func:`~imaging_lib.training.run_trial` once per trial through the generic runner
(:mod:`imaging_lib.jobs.runner`), so trials of a sweep run in parallel across workers. When
any worker declares a ``GPU`` resource (``dask worker --resources GPU=1``) every trial asks
for one.

The job record (``records/jobs/<job_id>.json``, kind ``training``) gains ``metrics.trials``:
per trial its status, parameters, every epoch's loss and validation AUC (sent by the
trials as Dask worker events, so they appear while the trial runs), its best epoch and
the model it registered. A dashboard follows it with :class:`~imaging_lib.jobs.JobView`
like any job; :func:`cancel_training` stops it from any process.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..identity import Identity, require
from ..training.control import metrics_topic, request_cancel
from ..training.params import TrainingParams, trial_ids
from .cluster import get_client
from .runner import TRANSIENT_ERRORS, Job

if TYPE_CHECKING:
    from distributed import Client

    from ..store.objects import Store

__all__ = ["TrainingJob", "cancel_training", "follow_training", "gpu_resources", "run_training"]

logger = logging.getLogger(__name__)


def gpu_resources(client: Client) -> dict[str, float] | None:
    """``{"GPU": 1}`` when a worker of ``client`` declares a GPU resource, else None (CPU everywhere)."""
    workers = (client.scheduler_info(n_workers=-1).get("workers") or {}).values()
    return {"GPU": 1} if any((w.get("resources") or {}).get("GPU", 0) >= 1 for w in workers) else None


class TrainingJob(Job):
    """A :class:`~imaging_lib.jobs.Job` of training trials whose record carries each trial's live metrics.

    Attributes
    ----------
    trials : dict
        Trial id -> parameters (:meth:`TrainingParams.to_dict`).
    resources : dict or None
        The Dask resources each trial asks for (``{"GPU": 1}``), or None.
    """

    def __init__(
        self,
        job_id: str,
        trials: Mapping[str, Mapping[str, Any]],
        store: Store,
        client: Client,
        meta: Mapping[str, Any],
        resources: dict[str, float] | None,
        created_by: str | None = None,
    ) -> None:
        super().__init__(job_id, "training", list(trials), store, client, meta, created_by=created_by)
        self.trials = {trial: dict(params) for trial, params in trials.items()}
        self.resources = resources
        self._live: dict[str, dict[str, Any]] = {trial: {"status": "pending"} for trial in trials}

    def _start(self, *args: Any) -> None:
        import dask

        self.client.subscribe_topic(metrics_topic(self.job_id), self._on_metrics)
        with dask.annotate(**({"resources": self.resources} if self.resources else {})):
            super()._start(*args)

    def _on_metrics(self, event: tuple[float, Mapping[str, Any]]) -> None:
        payload = dict(event[1])
        trial = str(payload.pop("trial_id", ""))
        with self._lock:
            if trial in self._live:
                self._live[trial].update(payload)
        self._wake.set()

    def _follow(self) -> None:
        super()._follow()
        try:
            self.client.unsubscribe_topic(metrics_topic(self.job_id))
        except Exception:  # the client may be closing; nothing left to hear
            logger.debug("could not unsubscribe from the metrics of %s", self.job_id, exc_info=True)

    def trial_metrics(self) -> dict[str, dict[str, Any]]:
        """Each trial's status, parameters, epochs so far, best epoch, model id or error."""
        items, _ = self._state()
        with self._lock:
            live = {trial: dict(values) for trial, values in self._live.items()}
        out = {}
        for trial, params in self.trials.items():
            entry = {"status": "pending", "epochs": [], **live.get(trial, {}), "parameters": params}
            item = items.get(trial, {})
            if item.get("state") == "running" and entry["status"] == "pending":
                entry["status"] = "running"
            if trial in self.results:
                entry.update(self.results[trial])
            if item.get("state") == "failed":
                entry.update(status="failed", error={"error_type": item.get("error_type"), "error": item.get("error")})
            entry["epochs"] = sorted(
                {e["epoch"]: e for e in entry.get("epochs") or []}.values(), key=lambda e: e["epoch"]
            )
            out[trial] = entry
        return out

    def snapshot(self) -> dict[str, Any]:
        """The job record, with ``metrics.trials`` (see :meth:`trial_metrics`) and the best trial."""
        record = super().snapshot()
        trials = self.trial_metrics()
        finished = [(t, e) for t, e in trials.items() if e.get("model_id") and e.get("best_val_auc") is not None]
        best = max(finished, key=lambda item: item[1]["best_val_auc"], default=(None, None))[0]
        record["metrics"] = {"trials": trials, "best_trial": best}
        return record


def run_training(
    store: Store,
    params: TrainingParams | Mapping[str, Any] | Sequence[TrainingParams] | None = None,
    *,
    client: Client | None = None,
    manifest: Mapping[str, Any] | None = None,
    identity: Identity | None = None,
    retries: int = 1,
) -> TrainingJob:
    """Start training on Dask: one task per trial; return the running job.

    Parameters
    ----------
    store : Store
        Its reviewed labels are the data; checkpoints, metrics, models and the job record go there.
    params : TrainingParams, mapping, or sequence of TrainingParams, optional
        One trial, or the trials of a sweep (:func:`~imaging_lib.training.grid`,
        :func:`~imaging_lib.training.random_search`). Default: one trial of the defaults.
    client : distributed.Client, optional
        Default :func:`get_client()`.
    manifest : mapping, optional
        The training manifest; default ``Catalog(store).training_set()`` now. Every trial
        uses this one, so the trials are trained and compared on the same labels.
    identity : imaging_lib.identity.Identity, optional
        Who trains (recorded on the models); default :func:`~imaging_lib.identity.current_identity`.
    retries : int
        Retries of a trial after a transient error (it resumes from its checkpoint).

    Returns
    -------
    TrainingJob

    Raises
    ------
    PermissionDenied
        If the user may not ``train`` (``researcher`` or ``admin`` role).
    InvalidModelSpec
        If a trial names an architecture no builder has.
    ValueError
        If a parameter is invalid.
    """
    from ..models.builders import builder
    from ..store.catalog import Catalog
    from ..training.trial import run_trial

    who = require("train", identity).name
    if params is None or isinstance(params, (TrainingParams, Mapping)):
        chosen = [params if isinstance(params, TrainingParams) else TrainingParams.from_mapping(params)]
    else:
        chosen = list(params)
    for trial in chosen:  # an unknown architecture is said here, not by every task
        builder(trial.architecture, f"training {trial.name}")
    trials = dict(zip(trial_ids(len(chosen)), (p.to_dict() for p in chosen), strict=True))
    manifest = dict(manifest) if manifest is not None else Catalog(store).training_set()
    client = client or get_client()
    job_id = f"training-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    meta = {
        "store": store.url,
        "manifest_sha256": manifest.get("manifest_sha256"),
        "studies": manifest.get("studies"),
        "class_counts": manifest.get("class_counts"),
        "trials": len(trials),
    }
    task = functools.partial(run_trial, store=store, job_id=job_id, trials=trials, manifest=manifest, created_by=who)
    job = TrainingJob(job_id, trials, store, client, meta, gpu_resources(client), created_by=who)
    job._start(task, retries, TRANSIENT_ERRORS, 0.5)
    return job


def cancel_training(store: Store, job_id: str, *, identity: Identity | None = None, reason: str = "") -> dict[str, Any]:
    """Stop every trial of a training job, from any process (see :func:`imaging_lib.training.request_cancel`)."""
    return request_cancel(store, job_id, identity=identity, reason=reason)


def follow_training(job: TrainingJob, *, file: TextIO | None = None, poll: float = 0.5) -> TrainingJob:
    """Show a tqdm bar of the epochs of every trial, with the latest loss and validation AUC, until the job ends.

    Parameters
    ----------
    job : TrainingJob
    file : text stream, optional
        Where the bar is drawn; default stderr.
    poll : float
        Seconds between updates.

    Returns
    -------
    TrainingJob
        The ended job.
    """
    from ..progress_bar import progress_bar

    total = sum(int(params["epochs"]) for params in job.trials.values())
    with progress_bar(total=total, unit="epoch", file=file, desc=job.job_id) as bar:
        while True:
            ended = job.finished
            trials = job.trial_metrics()
            bar.n = sum(len(entry["epochs"]) for entry in trials.values())
            done = [e for entry in trials.values() for e in entry["epochs"]]
            last: dict[str, Any] = max(done, key=lambda e: e["epoch"]) if done else {}
            bar.set_postfix(loss=last.get("loss"), val_auc=last.get("val_auc"), refresh=False)
            bar.update(0)
            if ended:
                return job
            try:
                job.wait(poll)
            except TimeoutError:
                continue

"""Long work on Dask: the client, a generic per-item runner with a live job record, and the batch.

:func:`get_client` gives the cluster (:mod:`~imaging_lib.jobs.cluster`), :func:`run_tasks`
runs one task per item and keeps its :class:`Job` record current
(:mod:`~imaging_lib.jobs.runner`), :class:`JobView` and :func:`follow_with_progress_bar`
follow a job (:mod:`~imaging_lib.jobs.progress`), :func:`run_batch` predicts and explains
studies (:mod:`~imaging_lib.jobs.batch`), and :func:`run_training` trains models, one
trial per task (:mod:`~imaging_lib.jobs.training`).
"""

from .batch import (
    DEFAULT_PARAMS,
    model_identity,
    pipeline_params,
    process_study,
    resolve_study_uids,
    run_batch,
    studies_with_result,
)
from .cluster import SCHEDULER_ENV, get_client, start_local_cluster
from .progress import ITEM_STATES, JobView, follow_with_progress_bar
from .runner import TRANSIENT_ERRORS, Job, run_tasks
from .training import TrainingJob, cancel_training, follow_training, run_training

__all__ = [
    "DEFAULT_PARAMS",
    "ITEM_STATES",
    "SCHEDULER_ENV",
    "TRANSIENT_ERRORS",
    "Job",
    "JobView",
    "TrainingJob",
    "cancel_training",
    "follow_training",
    "follow_with_progress_bar",
    "get_client",
    "model_identity",
    "pipeline_params",
    "process_study",
    "resolve_study_uids",
    "run_batch",
    "run_tasks",
    "run_training",
    "start_local_cluster",
    "studies_with_result",
]

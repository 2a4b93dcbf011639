"""Run a report for a study or a cohort and store it as notebook, HTML and PDF; many of them on Dask.

:func:`run_report` checks the parameters against the template and the store *before* a
kernel starts (:mod:`~imaging_lib.reports.parameters`), executes the notebook with
Papermill in a fresh kernel and exports HTML without code cells
(:mod:`~imaging_lib.reports.notebook`), prints that HTML to PDF with headless Chromium
(:mod:`~imaging_lib.reports.pdf`, no LaTeX), and only then writes the files under
``reports/<study_uid | cohort>/`` in the store, each file atomically, and the report record
last. A failure in checking, executing or exporting leaves nothing in the store. The
report kernel opens the store from its URL, so a ``gs://`` store needs its credentials in
the environment (not in the URL).

:func:`run_reports` and :func:`run_cohort_report` run the same function as Dask tasks through
:func:`imaging_lib.jobs.run_tasks`, so reports get the pipeline jobs' progress, failure records
and resume.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import layout, records
from .notebook import execute_notebook, notebook_to_html
from .parameters import COHORT, FORMATS, TEMPLATES, check_formats, check_parameters, resolve_template
from .pdf import html_to_pdf, start_pdf_printer

if TYPE_CHECKING:
    from distributed import Client

    from ..jobs.runner import Job
    from ..store.objects import Store

__all__ = ["cohort_report_task", "run_cohort_report", "run_report", "run_reports", "study_report_task"]


def run_report(
    template: str | os.PathLike[str],
    params: Mapping[str, Any],
    store: Store,
    *,
    formats: Iterable[str] = FORMATS,
) -> dict[str, Any]:
    """Execute a report notebook and store it with its HTML and PDF exports.

    Parameters
    ----------
    template : str or os.PathLike
        ``"study"``, ``"cohort"`` or the path of a template notebook.
    params : Mapping[str, Any]
        The template's parameters; ``store_url`` is filled from ``store``.
    store : Store
        Where the report reads its data and is written (a local folder or ``gs://``).
    formats : Iterable[str]
        Exports to store next to the executed notebook: any of ``"html"``, ``"pdf"``.

    Returns
    -------
    dict[str, Any]
        ``template``, ``study_uid`` (or ``"cohort"``), ``parameters``, ``keys`` (format ->
        store key, always including ``"ipynb"``), ``timings`` (seconds of ``kernel_start``,
        ``execution``, ``export``), ``created_at`` and ``library_version``.

    Raises
    ------
    ReportFailed
        If the parameters are wrong, a cell fails, or an export fails. Nothing is stored.
    imaging_lib.errors.MissingRecord
        If the study does not exist. Nothing is stored.
    """
    import time

    import nbformat

    wanted = check_formats(formats)
    template_path = resolve_template(template)
    parameters = check_parameters(template_path, params, store)
    subject = str(parameters.get("study_uid") or COHORT)
    report_name = template_path.stem

    if "pdf" in wanted:
        start_pdf_printer()  # the browser starts while the kernel runs the notebook
    with tempfile.TemporaryDirectory(prefix="imaging-report-") as tmp:
        workdir = Path(tmp)
        executed, timings = execute_notebook(template_path, parameters, workdir)
        export_start = time.perf_counter()
        documents = {"ipynb": nbformat.writes(executed).encode("utf-8")}
        if wanted:
            html = notebook_to_html(executed, title=f"{report_name} {subject}")
            if "html" in wanted:
                documents["html"] = html.encode("utf-8")
            if "pdf" in wanted:
                documents["pdf"] = html_to_pdf(html, workdir)
        timings["export"] = time.perf_counter() - export_start

    keys = {fmt: layout.report_key(subject, report_name, fmt) for fmt in documents}
    store.write_many({keys[fmt]: data for fmt, data in documents.items()})
    record = records.report_record(subject, template=report_name, keys=keys, parameters=parameters, timings=timings)
    store.write_json(layout.report_record_key(subject, report_name), record)  # last: its files are all there
    return record


def study_report_task(
    study_uid: str, *, store_url: str, model_id: str = "", formats: Sequence[str] = FORMATS
) -> dict[str, Any]:
    """Make one study's report; the picklable task :func:`run_reports` runs on a worker.

    Parameters
    ----------
    study_uid : str
        The study.
    store_url : str
        The store (opened on the worker).
    model_id : str
        Whose prediction to show; empty for the most recent one.
    formats : Sequence[str]
        Exports to store (see :func:`run_report`).

    Returns
    -------
    dict[str, Any]
        What :func:`run_report` returns.
    """
    from ..store.objects import Store

    return run_report("study", {"study_uid": study_uid, "model_id": model_id}, Store(store_url), formats=formats)


def cohort_report_task(
    subject: str, *, store_url: str, filters: Mapping[str, str], formats: Sequence[str] = FORMATS
) -> dict[str, Any]:
    """Make the cohort report; the picklable task :func:`run_cohort_report` runs on a worker.

    Parameters
    ----------
    subject : str
        The job item, :data:`COHORT` (also the template's name).
    store_url : str
        The store (opened on the worker).
    filters : Mapping[str, str]
        Cohort template parameters (``modality``, ``model_id``).
    formats : Sequence[str]
        Exports to store (see :func:`run_report`).

    Returns
    -------
    dict[str, Any]
        What :func:`run_report` returns.
    """
    from ..store.objects import Store

    return run_report(subject, dict(filters), Store(store_url), formats=formats)


def _reported(store: Store, subjects: Sequence[str], report_name: str, formats: Sequence[str]) -> set[str]:
    """The subjects whose report record lists the report in every requested format."""
    from ..store.catalog import Catalog

    wanted = {"ipynb", *formats}
    reports = Catalog(store).records("report_record")
    return {
        record["study_uid"]
        for record in reports.values()
        if record.get("template") == report_name and wanted <= set(record.get("keys") or {})
    } & set(subjects)


def run_reports(
    study_uids: Sequence[str] | str,
    store: Store,
    *,
    model_id: str = "",
    formats: Sequence[str] = FORMATS,
    client: Client | None = None,
    retries: int = 1,
    resume: bool = False,
) -> Job:
    """Make study reports on Dask, one task per study, as a ``report`` job.

    Progress, per-study failures (a missing study fails with ``MissingRecord`` in the job
    record, and nothing is written for it) and the job record work as for
    :func:`imaging_lib.jobs.run_batch`.

    Parameters
    ----------
    study_uids : sequence of str or ``"all"``
        The studies; ``"all"`` is every study in the store.
    store : Store
        Where the studies are and the reports go (a local folder or ``gs://``).
    model_id : str
        Whose prediction to show; empty for each study's most recent one.
    formats : Sequence[str]
        Exports to store next to the executed notebook.
    client : distributed.Client, optional
        Default :func:`imaging_lib.jobs.get_client`.
    retries : int
        Retries of a report after a transient error.
    resume : bool
        Skip studies whose report exists already in every requested format. Off by
        default: a report shows the latest results, so it is usually remade on purpose.

    Returns
    -------
    imaging_lib.jobs.Job
    """
    from ..jobs.batch import resolve_study_uids
    from ..jobs.runner import run_tasks

    study_uids = resolve_study_uids(study_uids, store)
    formats = check_formats(formats)
    report_name = Path(TEMPLATES["study"]).stem
    done = _reported(store, study_uids, report_name, formats) if resume else set()
    task = partial(study_report_task, store_url=store.url, model_id=model_id, formats=formats)
    meta = {"template": report_name, "model_id": model_id, "formats": list(formats), "store": store.url}
    return run_tasks("report", study_uids, task, store, client=client, retries=retries, skipped=done, meta=meta)


def run_cohort_report(
    store: Store,
    *,
    modality: str = "",
    model_id: str = "",
    formats: Sequence[str] = FORMATS,
    client: Client | None = None,
    retries: int = 1,
) -> Job:
    """Make the cohort report on Dask as a one-item ``report`` job.

    Parameters
    ----------
    store : Store
        Where the catalog is and the report goes.
    modality : str
        Only studies of this modality; empty for all.
    model_id : str
        Only predictions of this model; empty for all.
    formats : Sequence[str]
        Exports to store next to the executed notebook.
    client : distributed.Client, optional
        Default :func:`imaging_lib.jobs.get_client`.
    retries : int
        Retries after a transient error.

    Returns
    -------
    imaging_lib.jobs.Job
    """
    from ..jobs.runner import run_tasks

    filters = {"modality": modality, "model_id": model_id}
    formats = check_formats(formats)
    task = partial(cohort_report_task, store_url=store.url, filters=filters, formats=formats)
    meta = {"template": Path(TEMPLATES[COHORT]).stem, **filters, "formats": list(formats), "store": store.url}
    return run_tasks("report", [COHORT], task, store, client=client, retries=retries, meta=meta)

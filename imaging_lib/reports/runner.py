"""Reports: run a Papermill report notebook for a study or a cohort and store it as notebook, HTML and PDF.

A report is a parameterised notebook shipped in ``imaging_lib/reports/templates/``
(``study_report.ipynb``, ``cohort_report.ipynb``). :func:`run_report` checks the parameters against the template's
``parameters`` cell and that the study exists *before* a kernel starts, executes the notebook
with Papermill in a fresh kernel of this environment, exports HTML without code cells (figures
embedded as PNG data URIs, no external scripts, so it renders offline), prints that HTML to PDF
with headless Chromium (:mod:`imaging_lib.reports.pdf`, no LaTeX), and only then writes the files under
``reports/<study_uid | cohort>/`` in the store, each file atomically. A failure in checking,
executing or exporting leaves nothing in the store. The report kernel opens the store from its
URL, so a ``gs://`` store needs its credentials in the environment (not in the URL).

:func:`run_reports` and :func:`run_cohort_report` run the same function as Dask tasks through
:func:`imaging_lib.jobs.run_tasks`, so reports get the pipeline jobs' progress, failure records
and resume.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependency, MissingRecord, ReportFailed
from ..store import layout, records
from .pdf import html_to_pdf, start_pdf_printer

if TYPE_CHECKING:
    import nbconvert
    import nbformat
    from distributed import Client

    from ..jobs.runner import Job
    from ..store.objects import Store

__all__ = [
    "COHORT",
    "FORMATS",
    "HIDDEN_CELL_TAG",
    "TEMPLATES",
    "TEMPLATES_DIR",
    "check_formats",
    "check_parameters",
    "cohort_report_task",
    "execute_notebook",
    "notebook_to_html",
    "resolve_template",
    "run_cohort_report",
    "run_report",
    "run_reports",
    "study_report_task",
]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
"""Where the report templates live (package data, so a wheel install has them)."""

TEMPLATES = {"study": "study_report.ipynb", "cohort": "cohort_report.ipynb"}
"""Short template names accepted by :func:`run_report`."""

FORMATS = ("html", "pdf")
"""Exports :func:`run_report` can store next to the executed notebook."""

COHORT = "cohort"
"""Subject of reports that are not about one study: ``reports/cohort/...``."""

HIDDEN_CELL_TAG = "hide-in-report"
"""Cells with this tag run and stay in the stored notebook but are left out of the HTML and PDF."""

KERNEL_NAME = "python3"
KERNEL_START_TIMEOUT_S = 120

# nbconvert's "lab" HTML without its CDN scripts (require.js, MathJax, mermaid): the report
# is read offline and printed by a browser that must not reach the network. A4 pages.
_OFFLINE_HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
@page { size: A4; margin: 12mm; }
body.jp-Notebook { padding: 0 8px; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
.jp-OutputArea-output table, .jp-OutputArea-output img { break-inside: avoid; }
h1, h2, h3 { break-after: avoid; }
</style>
{%- endblock extra_css -%}
"""


def resolve_template(template: str | os.PathLike[str]) -> Path:
    """Return the notebook file of a report template.

    Parameters
    ----------
    template : str or os.PathLike
        ``"study"`` or ``"cohort"`` (see :data:`TEMPLATES`), or the path of an ``.ipynb``.

    Returns
    -------
    pathlib.Path
        The template notebook.

    Raises
    ------
    ReportFailed
        If no such template exists.
    """
    name = os.fspath(template)
    path = TEMPLATES_DIR / TEMPLATES[name] if name in TEMPLATES else Path(name)
    if path.suffix != ".ipynb" or not path.is_file():
        known = ", ".join(TEMPLATES)
        raise ReportFailed(name, f"no such report template (known names: {known}, or a path to an .ipynb)")
    return path


def _declared_parameters(template_path: Path) -> dict[str, str]:
    """Map each parameter of the template's ``parameters`` cell to its default's source text."""
    from papermill import inspect_notebook

    declared = inspect_notebook(str(template_path))
    if not declared:
        raise ReportFailed(template_path.name, "the template has no cell tagged 'parameters'")
    return {name: spec["default"] for name, spec in declared.items()}


def check_parameters(template_path: Path, params: Mapping[str, Any], store: Store) -> dict[str, Any]:
    """Validate report parameters before any kernel starts and return the full set to inject.

    ``store_url`` is filled from ``store``. Parameters whose default in the template is ``None``
    are required. A ``study_uid`` must name a study with a catalog record in ``store``, and
    a ``model_id`` given with it a stored prediction of that model for the study.

    Parameters
    ----------
    template_path : pathlib.Path
        The template notebook (see :func:`resolve_template`).
    params : Mapping[str, Any]
        Parameters given by the caller.
    store : Store
        The store the report reads from and is written to.

    Returns
    -------
    dict[str, Any]
        ``params`` with ``store_url`` set.

    Raises
    ------
    ReportFailed
        If a parameter is unknown to the template, a required one is missing, ``store_url``
        names another store, or the store lives in memory (the kernel is another process).
    imaging_lib.errors.MissingRecord
        If ``study_uid`` names no study in the store, or the study has no prediction of
        ``model_id``.
    """
    name = template_path.name
    declared = _declared_parameters(template_path)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ReportFailed(name, f"unknown parameter(s) {unknown}; the template declares {sorted(declared)}")
    if params.get("store_url", store.url) != store.url:
        raise ReportFailed(name, f"store_url {params['store_url']!r} is not the store {store.url!r}")
    if store.url.startswith("memory://"):
        raise ReportFailed(store.url, "a report kernel runs in its own process and cannot read a memory:// store")
    full = dict(params)
    if "store_url" in declared:
        full["store_url"] = store.url
    missing = sorted(p for p, default in declared.items() if default == "None" and full.get(p) in (None, ""))
    if missing:
        raise ReportFailed(name, f"missing required parameter(s) {missing}")
    if "study_uid" in declared:
        study_uid = str(full["study_uid"])
        _require_record(layout.study_record_key, (study_uid,), f"no study {study_uid!r}", store)
        if full.get("model_id"):
            model_id = str(full["model_id"])
            what = f"no prediction of model {model_id!r} for study {study_uid!r}"
            _require_record(layout.result_record_key, (study_uid, model_id), what, store)
    return full


def _require_record(make_key: Callable[..., str], parts: Sequence[str], what: str, store: Store) -> None:
    """Raise :class:`~imaging_lib.errors.MissingRecord` unless ``make_key(*parts)`` is in the store."""
    try:
        key = make_key(*parts)
        exists = store.exists(key)
    except ValueError as exc:  # the store refuses keys with "..", "//" and the like
        raise ReportFailed("/".join(parts), f"not a valid identifier: {exc}") from None
    if not exists:
        raise MissingRecord(key, f"{what} in the store {store.url}")


def _papermill_time(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _execution_timings(executed: nbformat.NotebookNode) -> dict[str, float]:
    """Split Papermill's timestamps into kernel start (incl. set-up) and cell execution seconds."""
    started = _papermill_time(executed.metadata.papermill.start_time)
    ended = _papermill_time(executed.metadata.papermill.end_time)
    cell_starts = [
        _papermill_time(cell.metadata.papermill.start_time)
        for cell in executed.cells
        if cell.metadata.get("papermill", {}).get("start_time")
    ]
    first_cell = min(cell_starts, default=ended)
    return {
        "kernel_start": (first_cell - started).total_seconds(),
        "execution": (ended - first_cell).total_seconds(),
    }


def _check_kernel_is_this_python() -> None:
    """Make sure the ``python3`` kernel spec runs this interpreter (so the kernel sees this venv)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        executable = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv[0]
    except NoSuchKernel as exc:
        raise MissingDependency(
            KERNEL_NAME, "no Jupyter kernel spec; run `python -m ipykernel install --sys-prefix`"
        ) from exc
    # jupyter_client swaps a bare "python" for sys.executable when it launches the kernel
    if executable in {"python", "python3"}:
        return
    if not (os.path.exists(executable) and os.path.samefile(executable, sys.executable)):
        raise MissingDependency(
            KERNEL_NAME,
            f"kernel spec runs {executable}, not this environment's {sys.executable}; "
            "run `python -m ipykernel install --sys-prefix`",
        )


def execute_notebook(
    template_path: Path, parameters: Mapping[str, Any], workdir: Path
) -> tuple[nbformat.NotebookNode, dict[str, float]]:
    """Execute a template with Papermill in a fresh kernel of this environment.

    Parameters
    ----------
    template_path : pathlib.Path
        The template notebook.
    parameters : Mapping[str, Any]
        Parameters to inject (already checked by :func:`check_parameters`).
    workdir : pathlib.Path
        A private folder for the executed notebook.

    Returns
    -------
    tuple[nbformat.NotebookNode, dict[str, float]]
        The executed notebook and its ``kernel_start`` and ``execution`` seconds.

    Raises
    ------
    ReportFailed
        If a cell raises or the kernel dies; the message names the cell and the error.
    MissingDependency
        If the ``python3`` kernel spec does not run this interpreter.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _check_kernel_is_this_python()
    output = workdir / template_path.name
    try:
        executed = papermill.execute_notebook(
            str(template_path),
            str(output),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            request_save_on_cell_execute=False,
            start_timeout=KERNEL_START_TIMEOUT_S,
        )
    except PapermillExecutionError as exc:
        raise ReportFailed(f"{template_path.name} (cell {exc.exec_count})", f"{exc.ename}: {exc.evalue}") from None
    except RuntimeError as exc:  # nbclient's DeadKernelError and kernel start time-outs
        raise ReportFailed(template_path.name, f"the kernel failed: {exc}") from exc
    return executed, _execution_timings(executed)


def notebook_to_html(notebook: nbformat.NotebookNode, title: str) -> str:
    """Render an executed notebook as self-contained HTML without code cells.

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        The executed notebook.
    title : str
        The page title.

    Returns
    -------
    str
        HTML with figures embedded as PNG data URIs and no external scripts; cells tagged
        :data:`HIDDEN_CELL_TAG` (machine-readable summaries) are left out.
    """
    body, _ = _html_exporter().from_notebook_node(notebook, resources={"metadata": {"name": title}})
    return body


_EXPORTERS = threading.local()


def _html_exporter() -> nbconvert.HTMLExporter:
    """This thread's report HTML exporter, made once: its templates are compiled on first use."""
    if hasattr(_EXPORTERS, "html"):
        return _EXPORTERS.html
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        template_name="lab",
        template_file="imaging_report.html.j2",
        extra_loaders=[DictLoader({"imaging_report.html.j2": _OFFLINE_HTML_TEMPLATE})],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={HIDDEN_CELL_TAG}), enabled=True)
    _EXPORTERS.html = exporter
    return exporter


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """Return the requested exports without duplicates, in order.

    Parameters
    ----------
    formats : Iterable[str]
        Any of :data:`FORMATS`.

    Returns
    -------
    tuple[str, ...]

    Raises
    ------
    ReportFailed
        If a format is not one of :data:`FORMATS`.
    """
    wanted = tuple(dict.fromkeys(formats))
    bad = sorted(set(wanted) - set(FORMATS))
    if bad:
        raise ReportFailed(",".join(wanted), f"unknown report format(s) {bad}; choose from {list(FORMATS)}")
    return wanted


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

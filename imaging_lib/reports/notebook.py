"""Execute a report notebook in a fresh kernel of this environment and export it as offline HTML.

:func:`execute_notebook` runs a template with Papermill in the ``python3`` kernel, which
must run this interpreter (so the kernel sees this environment's packages and the store's
credentials). :func:`notebook_to_html` renders the executed notebook without code cells,
figures embedded as PNG data URIs and no external scripts, so it renders offline and a
browser prints it to PDF without the network (:mod:`imaging_lib.reports.pdf`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependency, ReportFailed

if TYPE_CHECKING:
    import nbconvert
    import nbformat

__all__ = ["HIDDEN_CELL_TAG", "KERNEL_NAME", "execute_notebook", "notebook_to_html"]

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
    from jupyter_client.manager import AsyncKernelManager
    from papermill.exceptions import PapermillExecutionError

    _check_kernel_is_this_python()
    output = workdir / template_path.name
    # IPC sockets in the private work folder rather than loopback TCP, which other local users reach
    kernel = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc", connection_file=str(workdir / "kernel.json"))
    try:
        executed = papermill.execute_notebook(
            str(template_path),
            str(output),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            km=kernel,
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

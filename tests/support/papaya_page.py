"""Drive a PapayaViewer on a page: evaluate in its view, find its canvas and slice, run a notebook.

Shared by the viewer's browser tests and benchmarks. ``viewer_js`` evaluates an
expression with ``view`` bound to the widget view (``el.imagingPapaya``, see
``widgets/js/papaya_view.js``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LOAD_TIMEOUT_MS", "main_canvas", "on_main_slice", "run_all_cells", "viewer_js"]

LOAD_TIMEOUT_MS = 120_000


def viewer_js(page: Any, selector: str, expression: str, argument: Any = None) -> Any:
    """Evaluate ``expression`` with ``view`` bound to the widget view of ``selector``."""
    return page.evaluate(
        f"([selector, arg]) => {{ const view = document.querySelector(selector).imagingPapaya; return {expression}; }}",
        [selector, argument],
    )


def main_canvas(page: Any, selector: str) -> Any:
    return page.locator(f"{selector} canvas").first


def on_main_slice(page: Any, selector: str, ijk: Any) -> tuple[int, int, int]:
    """``ijk`` with its out-of-plane index replaced by the slice the main (axial) view shows.

    A click on the main view moves the two in-plane indices only; which voxel axis is
    out of plane depends on how Papaya reoriented the volume.
    """
    current = viewer_js(page, selector, "view.currentVoxel().ijk")
    axis = viewer_js(page, selector, "view.viewer.volume.header.orientation.orientation.toUpperCase().indexOf('Z')")
    target = [int(v) for v in ijk]
    target[axis] = int(current[axis])
    return tuple(target)


def run_all_cells(page: Any) -> None:
    """Run every cell of the notebook open in JupyterLab or Notebook 7 once its kernel is up."""
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
        timeout=LOAD_TIMEOUT_MS,
    )
    page.evaluate(
        "async () => { const panel = window.jupyterapp.shell.currentWidget;"
        " await panel.sessionContext.ready;"
        " await window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
    )

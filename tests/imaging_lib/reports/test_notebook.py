"""A template runs in a fresh kernel of this environment, and exports to offline HTML without code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from imaging_lib.reports.notebook import HIDDEN_CELL_TAG, execute_notebook, notebook_to_html

pytestmark = pytest.mark.slow

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def test_report_kernel_runs_this_environment(tmp_path):
    template = tmp_path / "which_python.ipynb"
    notebook = new_notebook(
        cells=[
            new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
            new_code_cell("import sys; print(sys.executable)"),
        ],
        metadata=KERNELSPEC,
    )
    nbformat.write(notebook, template)
    executed, timings = execute_notebook(template, {"n": 2}, tmp_path)
    printed = executed.cells[-1].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()
    assert timings["kernel_start"] > 0 and timings["execution"] > 0
    assert json.loads(json.dumps(timings)) == timings


def test_a_report_kernel_talks_over_ipc_and_prints_no_transport_warning(tmp_path, capfd):
    template = tmp_path / "transport.ipynb"
    cell = "from ipykernel.connect import get_connection_info; print(get_connection_info(unpack=True)['transport'])"
    nbformat.write(new_notebook(cells=[new_code_cell(cell)], metadata=KERNELSPEC), template)
    workdir = tmp_path / "work"
    workdir.mkdir()
    executed, _timings = execute_notebook(template, {}, workdir)
    assert executed.cells[-1].outputs[0]["text"].strip() == "ipc"
    assert "without encryption" not in capfd.readouterr().err  # the kernel writes to this process's stderr


def test_html_has_outputs_but_no_code_no_hidden_cells_and_no_external_scripts():
    shown = new_code_cell(
        "print('the code itself')",
        execution_count=1,
        outputs=[new_output("stream", name="stdout", text="visible result 42\n")],
    )
    hidden = new_code_cell(
        "summary = 1",
        execution_count=2,
        metadata={"tags": [HIDDEN_CELL_TAG]},
        outputs=[new_output("stream", name="stdout", text="machine summary 17\n")],
    )
    notebook = new_notebook(cells=[new_markdown_cell("# Study report"), shown, hidden], metadata=KERNELSPEC)
    html = notebook_to_html(notebook, title="report of a study")
    assert "<title>report of a study</title>" in html
    assert "Study report" in html and "visible result 42" in html
    assert "the code itself" not in html and "machine summary 17" not in html
    assert "<script src=" not in html and "@page { size: A4" in html

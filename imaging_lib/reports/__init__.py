"""Reports: Papermill runs of the shipped templates for a study or a cohort, stored as notebook, HTML and PDF.

:mod:`~imaging_lib.reports.parameters` finds the templates (package data) and checks a
call's parameters, :mod:`~imaging_lib.reports.notebook` executes a template and exports
HTML, :mod:`~imaging_lib.reports.pdf` prints PDF, and :mod:`~imaging_lib.reports.runner`
runs and stores one report or many on Dask.
"""

from .notebook import HIDDEN_CELL_TAG, execute_notebook, notebook_to_html
from .parameters import COHORT, FORMATS, TEMPLATES, TEMPLATES_DIR, check_formats, check_parameters, resolve_template
from .pdf import html_to_pdf
from .runner import cohort_report_task, run_cohort_report, run_report, run_reports, study_report_task

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
    "html_to_pdf",
    "notebook_to_html",
    "resolve_template",
    "run_cohort_report",
    "run_report",
    "run_reports",
    "study_report_task",
]

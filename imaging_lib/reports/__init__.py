"""Reports: Papermill runs of the shipped templates for a study or a cohort, stored as notebook, HTML and PDF."""

from .pdf import html_to_pdf
from .runner import (
    COHORT,
    FORMATS,
    HIDDEN_CELL_TAG,
    TEMPLATES,
    TEMPLATES_DIR,
    check_formats,
    check_parameters,
    cohort_report_task,
    execute_notebook,
    notebook_to_html,
    resolve_template,
    run_cohort_report,
    run_report,
    run_reports,
    study_report_task,
)

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

"""Ingest: files in; de-identified DICOM, NIfTI volumes and catalog records out."""

from .batch import IngestSummary, ingest, project_secret

__all__ = ["IngestSummary", "ingest", "project_secret"]

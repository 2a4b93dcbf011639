"""Ingest: files in; de-identified DICOM, NIfTI volumes and catalog records out."""

from .batch import IngestSummary, ingest

__all__ = ["IngestSummary", "ingest"]

"""Results as standard DICOM, and DICOMweb archives.

* :func:`export_study` (:mod:`~imaging_lib.interop.export`): a study's saved masks as DICOM
  SEG, its measurements and prediction as a TID 1500 SR, its LIME heat map as a Parametric
  Map (or a Secondary Capture), written to a folder or sent to an archive with STOW-RS.
* :class:`DicomwebArchive` (:mod:`~imaging_lib.interop.dicomweb`): an archive's address,
  credentials, retries and typed errors.

The builders (:mod:`~imaging_lib.interop.seg`, :mod:`~imaging_lib.interop.sr`,
:mod:`~imaging_lib.interop.heatmap`) use highdicom and start only from the de-identified
images the store keeps (:mod:`~imaging_lib.interop.sources`).
"""

from __future__ import annotations

from .dicomweb import DicomwebArchive
from .export import FORMATS, ExportSummary, export_study

__all__ = ["FORMATS", "DicomwebArchive", "ExportSummary", "export_study"]

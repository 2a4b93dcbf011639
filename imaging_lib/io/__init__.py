"""Readers and writers of image files: DICOM series and NIfTI volumes."""

from .dicom import read_dicom_folder, read_dicom_header, read_dicom_series
from .nifti import nifti_from_bytes, nifti_to_bytes, read_nifti, write_nifti

__all__ = [
    "nifti_from_bytes",
    "nifti_to_bytes",
    "read_dicom_folder",
    "read_dicom_header",
    "read_dicom_series",
    "read_nifti",
    "write_nifti",
]

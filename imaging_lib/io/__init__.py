"""Readers and writers of image files: DICOM series and NIfTI volumes."""

from .dicom import read_dicom_folder, read_dicom_header, read_dicom_series
from .nifti import nifti_from_bytes, nifti_to_bytes, read_nifti, write_nifti
from .pydicom_messages import withhold_values

withhold_values()  # pydicom would quote invalid values of the original files: they may be PHI

__all__ = [
    "nifti_from_bytes",
    "nifti_to_bytes",
    "read_dicom_folder",
    "read_dicom_header",
    "read_dicom_series",
    "read_nifti",
    "write_nifti",
]

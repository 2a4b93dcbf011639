"""De-identification of DICOM: the PS3.15 Annex E table, keyed pseudonyms, shifted dates.

:func:`deidentify` is the one entry point; :mod:`imaging_lib.deid.profile` holds the
standard's table and :mod:`imaging_lib.deid.deidentify` applies it.
"""

from .deidentify import (
    DATE_SHIFT_DAYS,
    IMPLEMENTATION_CLASS_UID,
    PROFILE_CODES,
    Pseudonymizer,
    check_secret,
    deidentify,
)

__all__ = [
    "DATE_SHIFT_DAYS",
    "IMPLEMENTATION_CLASS_UID",
    "PROFILE_CODES",
    "Pseudonymizer",
    "check_secret",
    "deidentify",
]

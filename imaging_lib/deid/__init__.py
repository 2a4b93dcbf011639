"""De-identification of DICOM: an allowlist under the PS3.15 Annex E table, keyed pseudonyms, shifted dates.

:func:`deidentify` is the one entry point. :mod:`~imaging_lib.deid.keep_list` names every
attribute that may survive and why; :mod:`~imaging_lib.deid.profile` loads the
standard's table (package data); :mod:`~imaging_lib.deid.values` parses dates, times and
values strictly; :mod:`~imaging_lib.deid.deidentify` applies them;
:mod:`~imaging_lib.deid.conformance` writes the conformance table in ``docs/``.
"""

from .deidentify import (
    DATE_SHIFT_DAYS,
    IMPLEMENTATION_CLASS_UID,
    PROFILE_CODES,
    Pseudonymizer,
    check_secret,
    deidentify,
    deidentify_attributes,
)

__all__ = [
    "DATE_SHIFT_DAYS",
    "IMPLEMENTATION_CLASS_UID",
    "PROFILE_CODES",
    "Pseudonymizer",
    "check_secret",
    "deidentify",
    "deidentify_attributes",
]

"""Keep pydicom's validation messages from quoting DICOM values: in an original file they may be PHI.

pydicom warns, and logs on its ``pydicom`` logger, when it decodes a value that breaks its
VR's rules: ``Invalid value for VR DT: '20240317 Smith^John MRN12345'.``. The reader and
ingest's checks decode attributes of the original, not yet de-identified file, so such a
message would carry a name or an ID into a notebook, a log file or a dashboard's server
log. :func:`withhold_values` keeps the message and drops the value: the warning is
replaced by one without it, and the log record is rewritten.
"""

from __future__ import annotations

import logging
import re
import warnings

__all__ = ["WITHHELD", "withhold_values"]

_INVALID_VALUE = re.compile(r"^(Invalid value for VR [A-Z]{2})\b.*", re.S)
WITHHELD = "(value withheld: it may identify a patient)"
"""What stands in a message for the value pydicom quoted."""


class _WithholdValues(logging.Filter):
    """Rewrite pydicom's "Invalid value for VR XX: <value>" log records without the value."""

    def filter(self, record: logging.LogRecord) -> bool:
        match = _INVALID_VALUE.match(record.getMessage())
        if match:
            record.msg, record.args = f"{match.group(1)} {WITHHELD}", ()
        return True


_FILTER = _WithholdValues()


def withhold_values() -> None:
    """Install the filters on pydicom's logger and on its warnings (idempotent).

    pydicom's "Invalid value for VR" warnings are ignored, and its log records rewritten
    without the value, so the fact that a value was invalid is still logged.
    """
    logger = logging.getLogger("pydicom")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    warnings.filterwarnings("ignore", message=r"Invalid value for VR [A-Z]{2}\b", category=UserWarning)

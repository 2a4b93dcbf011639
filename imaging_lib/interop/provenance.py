"""What every exported DICOM object says about itself: who made it, its UIDs, and that it holds no identity.

* :data:`EQUIPMENT`: the manufacturer, model and version highdicom writes into the
  General Equipment module (this library and its version).
* :func:`export_uid`: UIDs are ``2.25.<integer>`` from a hash of what the object is made
  of (its kind, study, source record and the library version), so exporting the same
  result twice gives the same SOP Instance UID: an archive receiving it again holds one
  instance, not two, and an SR can reference a SEG before or without sending it again.
* :func:`local_code`: concepts no standard vocabulary has (a model's class names) are
  coded in the private scheme :data:`LOCAL_SCHEME` (``99IMGLAB``), which every object
  using it declares (:func:`local_coding_scheme`).
* :func:`mark_deidentified`: exported objects are built only from de-identified images
  (:mod:`imaging_lib.interop.sources` refuses others) and carry over their
  ``PatientIdentityRemoved``, ``DeidentificationMethod`` (plus a line saying the object
  was derived from de-identified data), ``DeidentificationMethodCodeSequence`` and
  ``LongitudinalTemporalInformationModified``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import warnings
from collections.abc import Iterator
from typing import Any

from .._version import __version__

__all__ = [
    "EQUIPMENT",
    "LOCAL_SCHEME",
    "SERIES_NUMBERS",
    "export_uid",
    "local_code",
    "local_coding_scheme",
    "mark_deidentified",
    "quiet_highdicom",
]

EQUIPMENT: dict[str, Any] = {
    "manufacturer": "imaging-lab",
    "manufacturer_model_name": "imaging_lib",
    "software_versions": __version__,
    "device_serial_number": "imaging-lab",
}
"""General Equipment of every exported object: this library is the device."""

SERIES_NUMBERS = {"seg": 9101, "sr": 9102, "pmap": 9103, "sc": 9104}
"""Series Number of each kind of exported series (high, to stay clear of the scanner's)."""

LOCAL_SCHEME = "99IMGLAB"
"""Private coding scheme designator of this library's own concepts (``99`` marks a private scheme)."""

_DERIVED = "Derived by imaging-lab from de-identified images"


def export_uid(*parts: str) -> str:
    """A UID made from ``parts`` and the library version: the same parts always give the same UID.

    Parameters
    ----------
    *parts : str
        What the object is, e.g. ``("seg", study_uid, record_key, "instance")``.

    Returns
    -------
    str
        ``2.25.<integer>`` (at most 64 characters).
    """
    digest = hashlib.sha256("\x00".join(["imaging-lab export", __version__, *parts]).encode("utf-8")).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def local_code(value: str, meaning: str) -> Any:
    """A concept of :data:`LOCAL_SCHEME`, e.g. a model's class name."""
    import highdicom as hd

    return hd.sr.CodedConcept(value=str(value)[:64], scheme_designator=LOCAL_SCHEME, meaning=str(meaning)[:64])


def local_coding_scheme() -> Any:
    """The Coding Scheme Identification item that declares :data:`LOCAL_SCHEME`."""
    from highdicom.coding_schemes import CodingSchemeIdentificationItem

    return CodingSchemeIdentificationItem(
        designator=LOCAL_SCHEME, name="imaging-lab local concepts", responsible_organization="imaging-lab"
    )


@contextlib.contextmanager
def quiet_highdicom() -> Iterator[None]:
    """Silence highdicom's warning that a pseudonym (``ANON-...``) is a one-part person name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        yield


def mark_deidentified(dataset: Any, source_image: Any) -> Any:
    """Copy the source image's de-identification attributes onto ``dataset`` and say it is derived.

    Parameters
    ----------
    dataset : pydicom.Dataset
        An exported object.
    source_image : pydicom.Dataset
        A de-identified image it was made from.

    Returns
    -------
    pydicom.Dataset
        ``dataset``, changed in place.
    """
    dataset.PatientIdentityRemoved = "YES"
    methods = source_image.get("DeidentificationMethod") or []
    methods = [methods] if isinstance(methods, str) else [str(m) for m in methods]
    dataset.DeidentificationMethod = [*[m for m in methods if m != _DERIVED], _DERIVED]
    if "DeidentificationMethodCodeSequence" in source_image:
        dataset.DeidentificationMethodCodeSequence = copy.deepcopy(source_image.DeidentificationMethodCodeSequence)
    if "LongitudinalTemporalInformationModified" in source_image:
        dataset.LongitudinalTemporalInformationModified = source_image.LongitudinalTemporalInformationModified
    return dataset

"""Typed errors raised by the library.

Every failure the library reports about an input is one of these classes. Each message
names the offending source (a path, a store key, a model URI) and the reason, so that a
batch can record it and a person can act on it without a traceback from inside pydicom,
nibabel or torch.
"""

from __future__ import annotations

import os

__all__ = [
    "ImageTooLarge",
    "ImagingError",
    "InconsistentSeries",
    "InsecureServing",
    "InvalidGeometry",
    "InvalidInput",
    "InvalidLabel",
    "InvalidModelOutput",
    "InvalidModelSpec",
    "InvalidSeed",
    "InvalidTrainingSet",
    "KeyExists",
    "MaskGeometryMismatch",
    "MissingDependency",
    "ModelChecksumMismatch",
    "ModelError",
    "ModelNotFound",
    "NotAllowed",
    "RegionTooLarge",
    "ReportFailed",
    "SampleDataMissing",
    "StaleLabelVersion",
    "TrainingDiverged",
    "TrainingError",
    "UnreadableImage",
    "UnsupportedImage",
]


class ImagingError(Exception):
    """Base class of every error the library raises about its inputs.

    Parameters
    ----------
    source : str or os.PathLike
        What failed: a file path, a store key or a URI.
    reason : str
        Why it failed, in words a user can act on.
    """

    def __init__(self, source: str | os.PathLike[str], reason: str) -> None:
        self.source = os.fspath(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):  # keep the two arguments through pickling (Dask ships errors)
        return (type(self), (self.source, self.reason))


class UnreadableImage(ImagingError):
    """The file is empty, truncated, or not in the format its name or caller claims."""


class UnsupportedImage(ImagingError):
    """The file is valid but holds something the library cannot turn into a volume.

    Examples: DICOM without pixel data (RT plans, structured reports), or a compressed
    transfer syntax whose decoder is not installed.
    """


class InconsistentSeries(ImagingError):
    """Files that should form one series disagree (mixed series, sizes or orientations)."""


class ImageTooLarge(ImagingError):
    """The header declares more pixel data than the configured size limit allows."""


class InvalidGeometry(ImagingError):
    """The affine is not finite or is singular, so voxels have no place in the world."""


class InvalidSeed(ImagingError):
    """A segmentation seed lies outside the volume or on a voxel without a finite value."""


class RegionTooLarge(ImagingError):
    """A grown region exceeds the maximum volume allowed (it most likely leaked)."""


class MissingDependency(ImagingError):
    """An optional package is needed for this input; the message names it."""


class SampleDataMissing(ImagingError):
    """The package that ships the sample data is not installed; the message names it."""


class ReportFailed(ImagingError):
    """A report could not be produced: bad parameters, a failing notebook cell, or its export."""


class InsecureServing(ImagingError):
    """A server would be reachable from other machines without strong enough authentication (a short token)."""


class MissingRecord(ImagingError, KeyError):
    """A store key (record, volume, DICOM file) does not exist.

    Also a :class:`KeyError`, so ``except KeyError`` and mapping-style code keep working.
    """

    def __str__(self) -> str:  # KeyError would print the repr of the arguments
        return f"{self.source}: {self.reason}"


class UnreadableRecord(ImagingError):
    """A stored JSON record exists but cannot be parsed."""


class KeyExists(ImagingError, FileExistsError):
    """A write that must create a new object found its key taken (another writer was first)."""


class InvalidLabel(ImagingError):
    """A label version is refused: an unknown label or version, a slice outside the study, a bad voxel diff."""


class MaskGeometryMismatch(InvalidLabel, InvalidGeometry):
    """A label mask's shape or affine differs from its study's volume, or its values are not 0-255 integers."""


class StaleLabelVersion(ImagingError):
    """A label version was saved on a parent that is no longer the study's latest version.

    Someone else saved first. The edit is not lost: it is stored as a branch
    (:attr:`branch`), listed in the study's history, and can be adopted with
    :func:`imaging_lib.store.labels.revert` once its author has looked at :attr:`latest`.

    Parameters
    ----------
    study_uid : str
        The study.
    parent : str or None
        The version the edit was made on.
    latest : str or None
        The study's latest version now.
    branch : str
        The version under which the edit was kept.
    """

    def __init__(self, study_uid: str, parent: str | None, latest: str | None, branch: str) -> None:
        self.study_uid, self.parent, self.latest, self.branch = study_uid, parent, latest, branch
        super().__init__(
            study_uid,
            f"edit made on version {parent or '(none)'} but the latest version is now {latest}: "
            f"someone saved first; your edit is kept as branch {branch}",
        )

    def __reduce__(self):  # keep the four arguments through pickling
        return (type(self), (self.study_uid, self.parent, self.latest, self.branch))


class BurnedInAnnotation(ImagingError):
    """The image's pixels may hold text (burned-in annotation) and it was refused.

    Either it declares ``BurnedInAnnotation = YES``, or it is an ultrasound, secondary
    capture, "other" or photograph (US, SC, OT, XC) that does not declare ``NO``. Text in
    the pixels may identify the patient; header de-identification cannot remove it.
    Ingest quarantines such images unless the caller opts in.
    """


class InvalidInput(ImagingError):
    """An array given to preprocessing, a model or an explainer has the wrong shape or NaN/inf."""


class ModelError(ImagingError):
    """Base class of the errors about a model named by URI (its file, spec or outputs)."""


class ModelNotFound(ModelError):
    """No model file or spec exists at the URI."""


class ModelChecksumMismatch(ModelError):
    """The model file's SHA-256 differs from the checksum its spec (or the caller) expects."""


class InvalidModelSpec(ModelError):
    """The model spec is missing fields, or the weights do not fit the architecture it names."""


class InvalidModelOutput(ModelError):
    """The model returned the wrong number of classes, the wrong shape, or NaN/inf."""


class NotAllowed(ImagingError):
    """The user's role does not allow the action (promoting a model needs ``admin``; training, ``researcher``)."""


class TrainingError(ImagingError):
    """Base class of the errors a training trial records in its job record."""


class InvalidTrainingSet(TrainingError):
    """The reviewed labels cannot train a model: none, one class only, a label naming a missing study or volume."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; the trial stops and registers nothing."""

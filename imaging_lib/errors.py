"""Typed errors raised by the library.

Every failure the library reports about an input is one of these classes. Each message
names the offending source (a path, a store key, a model URI) and the reason, so that a
batch can record it and a person can act on it without a traceback from inside pydicom,
nibabel or torch.
"""

from __future__ import annotations

import os

__all__ = [
    "ArchiveError",
    "ArchiveRefused",
    "ArchiveResponseInvalid",
    "ArchiveServerError",
    "ArchiveUnauthorized",
    "ArchiveUnavailable",
    "BurnedInAnnotation",
    "ClusterUnavailable",
    "ImageTooLarge",
    "ImagingError",
    "InconsistentSeries",
    "InsecureConnection",
    "InsecureServing",
    "InvalidGeometry",
    "InvalidInput",
    "InvalidLabel",
    "InvalidModelOutput",
    "InvalidModelSpec",
    "InvalidSeed",
    "InvalidTrainingSet",
    "KeyExists",
    "KeyFileUnsafe",
    "KeyInStore",
    "KeyMismatch",
    "MaskGeometryMismatch",
    "MissingDependency",
    "MissingRecord",
    "ModelChecksumMismatch",
    "ModelError",
    "ModelNotFound",
    "NothingMatched",
    "NothingToExport",
    "PermissionDenied",
    "QueryTooBroad",
    "RegionTooLarge",
    "ReportFailed",
    "SampleDataMissing",
    "SignInExpired",
    "StaleLabelVersion",
    "TrainingDiverged",
    "TrainingError",
    "UnexpectedFailure",
    "UnreadableImage",
    "UnreadableRecord",
    "UnsafeArchive",
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

    def __reduce__(self) -> tuple[type[ImagingError], tuple[str, str]]:  # Dask ships errors: keep both arguments
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
    """The header declares more pixel data than the configured size limit allows.

    Also raised when compressed data (a gzip or deflate stream, an RLE or JPEG frame)
    would decompress to more than its header declares or a limit allows: the bytes are
    checked as they arrive, so the refusal costs no more memory than the limit.
    """


class UnsafeArchive(ImagingError):
    """A zip archive is nested too deep, holds too many members, or declares too many bytes.

    See :data:`imaging_lib.limits.MAX_ZIP_DEPTH`, :data:`~imaging_lib.limits.MAX_ZIP_MEMBERS`
    and :data:`~imaging_lib.limits.MAX_ZIP_INFLATED_BYTES`. Nothing of it is inflated.
    """


class UnexpectedFailure(ImagingError):
    """A reader or the de-identifier failed in a way the library has no typed error for.

    This is a bug to report (the reason names the exception). Ingest records the file as
    quarantined with this error and goes on with the batch.
    """


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


class KeyFileUnsafe(ImagingError):
    """The de-identification key file may be read by others, is not a regular file, or is too short."""


class KeyMismatch(ImagingError):
    """The store was de-identified with another key: its key fingerprint differs.

    Ingesting with a second key would give the same patients a second set of pseudonyms
    and UIDs, so nothing is written.
    """


class KeyInStore(ImagingError):
    """The store holds a de-identification key (``config/deid_secret``, from older versions).

    Whoever can read the store could re-identify patients with it. It must be moved out of
    the store (``imaging-lab key move-out-of-store``) before the store is used again.
    """


class InsecureServing(ImagingError):
    """A server would be reachable from other machines without strong enough authentication (a short token)."""


class PermissionDenied(ImagingError):
    """The acting user's roles do not allow the action (the source names the user).

    Raised by :func:`imaging_lib.identity.require`, before anything is written.
    """


class SignInExpired(ImagingError):
    """A JupyterHub token was refused (expired, revoked, or never issued): sign in again."""


class ClusterUnavailable(ImagingError):
    """The Dask cluster of the chosen profile cannot be reached or refused to start one."""


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


class NothingToExport(ImagingError):
    """A study has nothing of what an export asked for (no saved mask, no prediction)."""


class InsecureConnection(ImagingError):
    """Credentials would travel unencrypted: ``http://`` to a host other than this machine."""


class ArchiveError(ImagingError):
    """Talking to a DICOMweb archive failed.

    The source is the archive's address without credentials or query; ``status`` is the
    HTTP status of the last answer, when there was one.
    """

    def __init__(self, source: str | os.PathLike[str], reason: str, status: int | None = None) -> None:
        super().__init__(source, reason)
        self.status = status

    def __reduce__(self):
        return (type(self), (self.source, self.reason, self.status))


class ArchiveUnavailable(ArchiveError):
    """The archive cannot be reached, or did not answer in time, after every retry."""


class ArchiveRefused(ArchiveError):
    """The archive answered 4xx, or its STOW-RS answer lists instances it did not store."""


class ArchiveUnauthorized(ArchiveRefused):
    """The archive answered 401 or 403: credentials missing, wrong or without the right."""


class ArchiveServerError(ArchiveError):
    """The archive answered 5xx on every attempt."""


class ArchiveResponseInvalid(ArchiveError):
    """The archive's answer is truncated or malformed (a multipart body cut short...)."""


class TrainingError(ImagingError):
    """Base class of the errors a training trial records in its job record."""


class InvalidTrainingSet(TrainingError):
    """The reviewed labels cannot train a model: none, one class only, a label naming a missing study or volume."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; the trial stops and registers nothing."""


class NothingMatched(ImagingError):
    """An archive query matched no study (or no series of the modality asked for)."""


class QueryTooBroad(ImagingError):
    """An archive query matched more studies or series than one ingest takes: narrow it."""

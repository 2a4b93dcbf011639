"""Every typed error is exported and survives pickling with its source and reason (Dask ships errors)."""

from __future__ import annotations

import inspect
import pickle

import cloudpickle
import pytest

from imaging_lib import errors

ERROR_CLASSES = sorted(
    (cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.ImagingError)),
    key=lambda cls: cls.__name__,
)


def test_every_error_class_is_exported():
    assert len(ERROR_CLASSES) > 10
    assert sorted(errors.__all__) == [cls.__name__ for cls in ERROR_CLASSES]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_an_error_survives_pickling_with_its_source_and_reason(cls, dumps):
    if cls is errors.StaleLabelVersion:  # the one error built from its parts, not a reason
        error = cls("2.25.1", "v000001", "v000002", "v000002-branch-1a2b3c4d")
    else:
        error = cls("records/studies/2.25.1.json", "not valid JSON (line 1)")
    copy = pickle.loads(dumps(error))
    assert type(copy) is cls and vars(copy) == vars(error)
    assert (copy.source, copy.reason) == (error.source, error.reason) and error.reason
    assert str(copy) == str(error) == f"{error.source}: {error.reason}"
    assert isinstance(copy, errors.ImagingError)


def test_a_missing_record_is_also_a_key_error_that_reads_well():
    error = errors.MissingRecord("records/jobs/x.json", "no such job")
    assert isinstance(error, KeyError)
    with pytest.raises(KeyError, match="^records/jobs/x.json: no such job$"):
        raise pickle.loads(pickle.dumps(error))

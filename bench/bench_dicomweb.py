"""Ingest of one series from a DICOMweb archive (Orthanc) against ingest of the same files from a folder.

A real Orthanc with its DICOMweb plugin (the tests' ``support.orthanc``) is started on
127.0.0.1 and given one series of ``--instances`` slices (papaya's brain MR slices,
re-instanced into one regular stack with ``support.archive_series``); the same files are
written to a folder. In one run, alternating, best of ``--repeats``:

* **archive**: ``ingest("dicomweb+http://...", query={"patient": ...})``: QIDO-RS, WADO-RS
  streamed a part at a time, de-identified, stored, the volume read back and written;
* **files**: ``ingest(folder)``: the same de-identification and store from the files;
* **plain retrieve**: dicomweb-client's ``retrieve_series`` of the series into memory
  (pydicom data sets, nothing de-identified or stored): the network and parsing alone.

Then, in a fresh process each after a warm-up ingest, the growth of peak RSS
(``ru_maxrss``) while the archive ingest runs, and while the file ingest runs, against
the size of the series' files (``dicomweb_peak_rss_vs_files_ratio``: what streaming
from the archive adds to the memory of an ingest).

Ends with ``dicomweb_ingest_ratio``: archive ingest time / plain retrieve time, the
issue's measure (target at most 1.5; de-identifying, storing and writing the volume are
most of it). ``dicomweb_vs_files_ratio`` (archive ingest / ingest of the same files from a
folder: what fetching from an archive adds, 1 would be free) is printed before it.

Usage: ``python bench/bench_dicomweb.py [--instances N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support_package import register_support_package

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.store.objects import Store

SECRET = "benchmark-secret-0123456789abcdef"
PATIENT = "BENCH-DICOMWEB"


def timed(action: Callable[[Path], Any], root: Path) -> float:
    """Seconds ``action`` takes with a fresh folder (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        start = time.perf_counter()
        action(folder)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(folder)


def peak_rss_child(source: str, patient: str, root: Path) -> None:
    """In a fresh process: warm up, then ingest the archive series (or the folder); print the growth of peak RSS."""
    import psutil

    ingest(sample_data.pydicom_file("MR_small.dcm"), Store(root / "warm"), secret=SECRET, progress=False)
    before = psutil.Process().memory_info().rss
    query = {"patient": patient} if source.startswith("dicomweb+") else None
    summary = ingest(source, Store(root / "store"), query=query, secret=SECRET, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(len(summary.ingested), peak - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-rss-child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_rss_child:
        url, patient, folder = args.peak_rss_child
        peak_rss_child(url, patient, Path(folder))
        return

    register_support_package()
    from dicomweb_client import DICOMwebClient
    from requests import Session

    from support.archive_series import reinstanced, uids_of, upload
    from support.orthanc import start_orthanc

    root = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    orthanc = start_orthanc()
    try:
        os.environ["IMAGING_DICOMWEB_USER"], os.environ["IMAGING_DICOMWEB_PASSWORD"] = orthanc.auth
        files = reinstanced(sample_data.brain_series(), args.instances, patient_id=PATIENT)
        upload(orthanc, files, threads=4)
        folder = root / "series"
        folder.mkdir()
        for index, data in enumerate(files):
            (folder / f"{index:04d}.dcm").write_bytes(data)
        study_uid, series_uid, _ = uids_of(files[0])
        size = sum(len(data) for data in files)
        print(f"series: {len(files)} instances, {size / 2**20:.1f} MiB, Orthanc on 127.0.0.1")

        def from_archive(out: Path) -> None:
            summary = ingest(
                orthanc.dicomweb_url, Store(out), query={"patient": PATIENT}, secret=SECRET, progress=False
            )
            assert len(summary.ingested) == len(files) and summary.ok, summary

        def from_files(out: Path) -> None:
            summary = ingest(folder, Store(out), secret=SECRET, progress=False)
            assert len(summary.ingested) == len(files) and summary.ok, summary

        def plain_retrieve(_: Path) -> None:
            session = Session()
            session.auth = orthanc.auth
            client = DICOMwebClient(f"{orthanc.url}/dicom-web", session=session)
            assert len(client.retrieve_series(study_uid, series_uid)) == len(files)
            session.close()

        sides = {"archive": from_archive, "files": from_files, "plain": plain_retrieve}
        for action in sides.values():  # warm-up: imports, page cache, Orthanc's cache
            timed(action, root)
        best = {name: float("inf") for name in sides}
        for _ in range(args.repeats):
            for name, action in sides.items():
                best[name] = min(best[name], timed(action, root))
        print(f"archive_ingest_seconds {best['archive']:.3f} ({len(files) / best['archive']:.1f} instances/s)")
        print(f"file_ingest_seconds {best['files']:.3f} ({len(files) / best['files']:.1f} files/s)")
        print(f"plain_retrieve_seconds {best['plain']:.3f} (dicomweb-client retrieve_series into memory)")

        growth = {}
        for name, source in (("archive", orthanc.dicomweb_url), ("files", str(folder))):
            child = Path(tempfile.mkdtemp(dir=root))
            done = subprocess.run(
                [sys.executable, __file__, "--peak-rss-child", source, PATIENT, str(child)],
                capture_output=True,
                text=True,
                check=True,
            )
            ingested, growth[name] = (int(value) for value in done.stdout.split()[-2:])
            assert ingested == len(files), done.stdout
            grown = growth[name] / 2**20
            print(f"peak memory: the {name} ingest of {size / 2**20:.1f} MiB grows peak RSS by {grown:.0f} MiB")
        print(f"dicomweb_peak_rss_over_series {growth['archive'] / size:.3f}")
        print(f"dicomweb_peak_rss_vs_files_ratio {growth['archive'] / growth['files']:.3f}")
        print(f"dicomweb_vs_files_ratio {best['archive'] / best['files']:.3f}")
        print(f"dicomweb_ingest_ratio {best['archive'] / best['plain']:.3f}")
    finally:
        orthanc.stop()
        shutil.rmtree(orthanc.folder, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

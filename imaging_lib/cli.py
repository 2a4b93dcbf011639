"""The ``imaging-lab`` command line: ingest, run, report, labels, models, dashboard, demo, info.

Each subcommand parses its arguments here and calls one library function; the work
itself lives in the library modules so notebooks and dashboards call the same code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]


def _print_job_errors(job: Any) -> None:
    for item, error in job.errors.items():
        print(f"failed {item}: {error['error_type']}: {error['error']}", file=sys.stderr)


def _cmd_info(args: argparse.Namespace) -> int:
    from .sample_data import sample_summary

    print(sample_summary())
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from .ingestion import ingest
    from .store import Store

    store = Store(args.store)
    summary = ingest(args.paths, store, allow_burned_in=args.allow_burned_in, progress=True)
    print(f"{summary}\nstore: {store.url}")
    return 1 if summary.quarantined else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .jobs import follow_with_progress_bar, get_client
    from .reports import check_formats, run_cohort_report, run_reports
    from .store import Store

    store = Store(args.store)
    formats = check_formats(f for f in args.format.split(",") if f)
    client = get_client(args.scheduler)
    if args.cohort:
        job = run_cohort_report(store, formats=formats, client=client)
    else:
        job = run_reports("all" if args.all else [str(args.study_uid)], store, formats=formats, client=client)
    follow_with_progress_bar(job)
    for summary in job.results.values():
        for key in summary["keys"].values():
            print(store.full_path(key))
    _print_job_errors(job)
    print(f"job {job.job_id}: {job.counts}", file=sys.stderr)
    return 1 if job.errors else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .jobs import ITEM_STATES, follow_with_progress_bar, get_client, run_batch
    from .store import Store, layout

    params = {"batch_size": args.batch_size, "num_samples": args.num_samples, "segmentation": args.segmentation}
    store = Store(args.store)
    job = run_batch(
        args.studies or "all",
        store,
        args.model,
        get_client(args.scheduler),
        args.retries,
        {name: value for name, value in params.items() if value is not None},
        resume=not args.no_resume,
    )
    print(f"job {job.job_id}: record {store.full_path(layout.job_record_key(job.job_id))}", flush=True)
    print(f"Dask dashboard: {job.dashboard_link}", flush=True)
    follow_with_progress_bar(job)
    counts = job.counts
    print(", ".join(f"{state} {counts[state]}" for state in (*ITEM_STATES, "total")), flush=True)
    _print_job_errors(job)
    return 1 if counts["failed"] else 0


def _cmd_labels_export(args: argparse.Namespace) -> int:
    import json

    from .store import Catalog, Store

    manifest = Catalog(Store(args.store)).training_set()
    text = json.dumps(manifest, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    classes = ", ".join(f"{label} {count}" for label, count in manifest["class_counts"].items()) or "no labels"
    print(
        f"{manifest['studies']} studies ({classes}), {manifest['patients']} patients, {manifest['masks']} masks; "
        f"manifest_sha256 {manifest['manifest_sha256']}",
        file=sys.stderr,
    )
    for item in manifest["skipped"]:
        print(f"skipped {item['study_uid']} {item['version']}: {item['reason']}", file=sys.stderr)
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve_dashboard

    return serve_dashboard(port=args.port, ip=args.ip, store_url=args.store)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(store_url=args.store, scheduler=args.scheduler, serve=not args.no_serve, port=args.port, ip=args.ip)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="imaging-lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", default=None, help="store URL (default $IMAGING_STORE or ./data/store)")
    scheduler = argparse.ArgumentParser(add_help=False)
    scheduler.add_argument("--scheduler", default=None, help="Dask scheduler address (default a local cluster)")

    info = commands.add_parser("info", help="print the bundled sample studies: shapes, spacings, modalities")
    info.set_defaults(func=_cmd_info)

    ingest = commands.add_parser(
        "ingest", help="de-identify and store DICOM/NIfTI files, folders, zips or gs:// URLs", parents=[store]
    )
    ingest.add_argument("paths", nargs="+", help="files, folders, zip archives or gs:// URLs")
    ingest.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="accept images that declare or may carry burned-in text (US, SC, OT, XC; refused by default)",
    )
    ingest.set_defaults(func=_cmd_ingest)

    run = commands.add_parser(
        "run", help="predict and explain studies on Dask, with resume and a progress bar", parents=[store, scheduler]
    )
    run.add_argument(
        "--model",
        default=None,
        help="model URI (default the store's default model: the last promoted, else the shipped demo model)",
    )
    run.add_argument("--studies", nargs="+", default=None, help="study UIDs (default every study in the store)")
    run.add_argument("--retries", type=int, default=2, help="retries of a study after a transient error")
    run.add_argument("--batch-size", type=int, default=None, help="slices (and LIME samples) per forward pass")
    run.add_argument("--num-samples", type=int, default=None, help="LIME perturbations per explanation")
    run.add_argument("--segmentation", choices=["quickshift", "slic"], default=None, help="LIME superpixels")
    run.add_argument("--no-resume", action="store_true", help="recompute studies that already have a result")
    run.set_defaults(func=_cmd_run)

    report = commands.add_parser(
        "report", help="make study or cohort reports (notebook, HTML, PDF) on Dask", parents=[store, scheduler]
    )
    target = report.add_mutually_exclusive_group(required=True)
    target.add_argument("study_uid", nargs="?", help="the study to report on")
    target.add_argument("--all", action="store_true", help="report on every study in the store")
    target.add_argument("--cohort", action="store_true", help="make the cohort report")
    report.add_argument("--format", default="html,pdf", help="exports next to the notebook (default html,pdf)")
    report.set_defaults(func=_cmd_report)

    labels = commands.add_parser("labels", help="reviewed labels: export the training manifest")
    label_commands = labels.add_subparsers(dest="labels_command", required=True)
    export = label_commands.add_parser(
        "export",
        help="write each study's latest accepted label version, with hashes and class counts, as JSON",
        parents=[store],
    )
    export.add_argument("--out", default=None, help="file to write (default standard output)")
    export.set_defaults(func=_cmd_labels_export)

    from .cli_models import add_models_parser

    add_models_parser(commands, store, scheduler)

    dashboard = commands.add_parser(
        "dashboard", help="serve the Voila dashboards behind a token and print the URL", parents=[store]
    )
    dashboard.add_argument("--port", type=int, default=8866, help="TCP port (default 8866)")
    dashboard.add_argument(
        "--ip",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; requests must name it or an allowed host)",
    )
    dashboard.set_defaults(func=_cmd_dashboard)

    demo = commands.add_parser(
        "demo",
        help="ingest the sample studies, run the batch and reports, serve the dashboards",
        parents=[store, scheduler],
    )
    demo.add_argument("--port", type=int, default=8866, help="TCP port of the dashboards (default 8866)")
    demo.add_argument("--ip", default="127.0.0.1", help="address of the dashboards (default 127.0.0.1)")
    demo.add_argument("--no-serve", action="store_true", help="stop after the batch and reports (for tests)")
    demo.set_defaults(func=_cmd_demo)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imaging-lab`` console script."""
    args = build_parser().parse_args(argv)
    from .errors import ImagingError

    try:
        return int(args.func(args) or 0)
    except ImagingError as exc:
        print(f"imaging-lab: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

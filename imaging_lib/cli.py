"""The ``imaging-lab`` command: ingest, run, report, labels, models, export, dashboard, demo, hub, key, info.

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


def _say(message: object) -> None:
    print(message, flush=True)


def _follow(job: Any) -> None:
    """Say where a job's record and Dask dashboard are, then draw its progress bar until it ends."""
    from .jobs import follow_with_progress_bar
    from .store import layout

    print(f"job {job.job_id}: record {job.store.full_path(layout.job_record_key(job.job_id))}", flush=True)
    print(f"Dask dashboard: {job.dashboard_link}", flush=True)
    follow_with_progress_bar(job)


def _cmd_info(args: argparse.Namespace) -> int:
    from .sample_data import sample_summary

    print(sample_summary())
    return 0


_QUERY_OPTIONS = ("patient", "study", "modality", "since", "until")


def _cmd_ingest(args: argparse.Namespace) -> int:
    from .ingestion import ingest
    from .interop.archive_access import ARCHIVE_PREFIX
    from .store import Store

    query = {name: getattr(args, name) for name in _QUERY_OPTIONS if getattr(args, name)}
    sources: Any = args.paths
    try:
        if any(str(path).startswith(ARCHIVE_PREFIX) for path in args.paths):
            from .interop import DicomwebArchive

            if len(args.paths) != 1:
                raise ValueError("give one archive address, or files and folders")
            options = {"timeout": args.timeout, "attempts": args.attempts, "allow_insecure": args.allow_insecure_http}
            sources = DicomwebArchive(args.paths[0], **options)
        elif query:
            raise ValueError(f"--{', --'.join(query)}: a query is for an archive (dicomweb+http(s)://...)")
        store = Store(args.store)
        summary = ingest(sources, store, query=query or None, allow_burned_in=args.allow_burned_in, progress=True)
    except ValueError as exc:  # a bad address or query: the message never repeats a secret or an identifier
        print(f"imaging-lab ingest: {exc}", file=sys.stderr)
        return 2
    print(f"{summary}\nstore: {store.url}")
    return 0 if summary.ok else 1


def _cmd_key(args: argparse.Namespace) -> int:
    from .deid.key import key_file_path, load_key
    from .ingestion.key_binding import move_key_out_of_store
    from .store import Store

    if args.action == "move-out-of-store":
        store = Store(args.store)
        key = move_key_out_of_store(store)
        print(f"moved the key of {store.url} to {key.origin} (mode 0600); the store keeps only its fingerprint")
        print(f"fingerprint {key.fingerprint}")
        return 0
    try:
        key = load_key(create=args.action == "create")
    except FileNotFoundError:
        print(f"no key file yet at {key_file_path()}: the first ingest creates it (or `imaging-lab key create`)")
        return 1
    print(f"key from {key.origin}\nfingerprint {key.fingerprint}\nkey file {key_file_path()}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .jobs import get_client
    from .reports import check_formats, run_cohort_report, run_reports
    from .store import Store

    store = Store(args.store)
    formats = check_formats(f for f in args.format.split(",") if f)
    client = get_client(args.scheduler)
    if args.cohort:
        job = run_cohort_report(store, formats=formats, client=client)
    else:
        job = run_reports("all" if args.all else [str(args.study_uid)], store, formats=formats, client=client)
    _follow(job)
    for summary in job.results.values():
        for key in summary["keys"].values():
            print(store.full_path(key))
    _print_job_errors(job)
    print(f"job {job.job_id}: {job.counts}", file=sys.stderr)
    return 1 if job.errors else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .jobs import ITEM_STATES, get_client, run_batch
    from .store import Store

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
    _follow(job)
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


def _cmd_export(args: argparse.Namespace) -> int:
    from . import settings
    from .interop import export_study
    from .store import Store

    target = args.to or (None if args.out else settings.read(settings.DICOMWEB_URL))
    if target is None and args.out is None:
        print(f"imaging-lab export: give --out DIR or --to URL (or set {settings.DICOMWEB_URL.name})", file=sys.stderr)
        return 2
    options = {"timeout": (5.0, args.timeout), "allow_insecure": args.allow_insecure_http}
    try:
        summary = export_study(
            Store(args.store),
            args.study_uid,
            args.format,
            out=args.out,
            to=target,
            with_sources=args.with_sources,
            archive_options=options if target else None,
            progress=True,
        )
    except ValueError as exc:  # a bad format, address or credential setting; never echoes a secret
        print(f"imaging-lab export: {exc}", file=sys.stderr)
        return 2
    for entry in summary.objects:
        print(f"{entry['kind']:<6} {entry['sop_uid']}  ({entry['size']} bytes, from {entry['derived_from']})")
    print(summary)
    print(f"record: {summary.record_key}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve_dashboard

    return serve_dashboard(port=args.port, ip=args.ip, store_url=args.store, announce=_say)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import prepare_demo, serve_demo, studies_summary
    from .jobs import get_client
    from .store import Store

    store = Store(args.store)
    client = get_client(args.scheduler)
    outcome = prepare_demo(store, client, progress=True, on_ingested=_say, on_job=_follow)
    print(studies_summary(store), flush=True)
    print(outcome, flush=True)
    status = 0 if args.no_serve else serve_demo(store, client, port=args.port, ip=args.ip, announce=_say)
    return status or (1 if outcome.failures else 0)


def _cmd_hub(args: argparse.Namespace) -> int:
    from .hub.server import serve_hub

    return serve_hub(config=args.config, gateway=args.gateway, demo=args.demo, store_url=args.store, announce=_say)


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
        "ingest",
        help="de-identify and store DICOM/NIfTI files, folders, zips, gs:// URLs, or a DICOMweb archive's series",
        parents=[store],
    )
    ingest.add_argument(
        "paths",
        nargs="+",
        help="files, folders, zip archives or gs:// URLs; or one archive, dicomweb+http(s)://host:port/path "
        "(credentials from IMAGING_DICOMWEB_USER/PASSWORD or _TOKEN, or a keyring) with a query below",
    )
    ingest.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="accept images that declare or may carry burned-in text (US, SC, OT, XC; refused by default)",
    )
    archive = ingest.add_argument_group("archive query (QIDO-RS; a patient ID or a study UID is required)")
    archive.add_argument("--patient", default=None, help="Patient ID, matched exactly")
    archive.add_argument("--study", action="append", default=None, help="Study Instance UID (repeat for more)")
    archive.add_argument("--modality", default=None, help="only series of this modality (CT, MR...)")
    archive.add_argument("--since", default=None, help="studies on or after this date (YYYY-MM-DD)")
    archive.add_argument("--until", default=None, help="studies on or before this date (YYYY-MM-DD)")
    archive.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)")
    archive.add_argument("--attempts", type=int, default=3, help="tries of each request before it fails (default 3)")
    archive.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="send credentials over plain http:// to another machine (refused by default)",
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
    labels_export = label_commands.add_parser(
        "export",
        help="write each study's latest accepted label version, with hashes and class counts, as JSON",
        parents=[store],
    )
    labels_export.add_argument("--out", default=None, help="file to write (default standard output)")
    labels_export.set_defaults(func=_cmd_labels_export)

    export = commands.add_parser(
        "export",
        help="write or send a study's masks, measurements and heat maps as DICOM SEG, SR and parametric maps",
        parents=[store],
    )
    export.add_argument("study_uid", help="the study to export")
    export.add_argument("--format", default="seg,sr,pmap", help="some of seg,sr,pmap (default all three)")
    where = export.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="folder to write the DICOM files into")
    where.add_argument(
        "--to",
        default=None,
        help="archive to send them to with STOW-RS, dicomweb+http(s)://host:port/path "
        "(default $IMAGING_DICOMWEB_URL; credentials from IMAGING_DICOMWEB_USER/PASSWORD or _TOKEN, or a keyring)",
    )
    export.add_argument(
        "--with-sources", action="store_true", help="also send the de-identified images the objects reference"
    )
    export.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)")
    export.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="send credentials over plain http:// to another machine (refused by default)",
    )
    export.set_defaults(func=_cmd_export)

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

    key = commands.add_parser(
        "key",
        help="show the de-identification key's origin and fingerprint, create it, or move it out of an old store",
        parents=[store],
    )
    key.add_argument(
        "action",
        choices=["show", "create", "move-out-of-store"],
        help="show: where the key comes from and its fingerprint (never the key); create: make the key file if "
        "missing; move-out-of-store: move an old store's config/deid_secret to your key file",
    )
    key.set_defaults(func=_cmd_key)

    demo = commands.add_parser(
        "demo",
        help="ingest the sample studies, run the batch and reports, serve the dashboards",
        parents=[store, scheduler],
    )
    demo.add_argument("--port", type=int, default=8866, help="TCP port of the dashboards (default 8866)")
    demo.add_argument("--ip", default="127.0.0.1", help="address of the dashboards (default 127.0.0.1)")
    demo.add_argument("--no-serve", action="store_true", help="stop after the batch and reports (for tests)")
    demo.set_defaults(func=_cmd_demo)

    hub = commands.add_parser(
        "hub",
        help="serve the team setup: JupyterHub with roles, JupyterLab, the dashboards as a Hub service",
        parents=[store],
    )
    hub.add_argument(
        "--config", default=None, help="Hub configuration (default deploy/jupyterhub/jupyterhub_config.py)"
    )
    hub.add_argument("--gateway", action="store_true", help="also start a Dask Gateway (per-user clusters)")
    hub.add_argument(
        "--demo",
        action="store_true",
        help="fill the store as `demo` does, start the gateway, sign in two sample users (alice, bob)",
    )
    hub.set_defaults(func=_cmd_hub)

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

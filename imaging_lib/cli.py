"""The ``imaging-lab`` command line: ``ingest``, ``run``, ``report``, ``dashboard``, ``demo``, ``info``.

Each subcommand parses its arguments here and calls one library function; the work
itself lives in the library modules so notebooks and dashboards call the same code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _cmd_info(args: argparse.Namespace) -> int:
    from .summary import print_sample_summary

    print_sample_summary()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .reports import report_from_command_line

    return report_from_command_line(
        args.study_uid,
        all_studies=args.all,
        cohort=args.cohort,
        formats=[f for f in args.format.split(",") if f],
        store_url=args.store,
        scheduler=args.scheduler,
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="imaging-lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="print the bundled sample studies: shapes, spacings, modalities")
    info.set_defaults(func=_cmd_info)

    report = commands.add_parser("report", help="make study or cohort reports (notebook, HTML, PDF) on Dask")
    target = report.add_mutually_exclusive_group(required=True)
    target.add_argument("study_uid", nargs="?", help="the study to report on")
    target.add_argument("--all", action="store_true", help="report on every study in the store")
    target.add_argument("--cohort", action="store_true", help="make the cohort report")
    report.add_argument("--format", default="html,pdf", help="exports next to the notebook (default html,pdf)")
    report.add_argument("--store", default=None, help="store URL (default $IMAGING_STORE or ./data/store)")
    report.add_argument("--scheduler", default=None, help="Dask scheduler address (default a local cluster)")
    report.set_defaults(func=_cmd_report)

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

"""The ``imaging-lab models`` commands: ``list``, ``show``, ``promote`` and ``train``.

:func:`add_models_parser` adds them to the ``imaging-lab`` parser (:mod:`imaging_lib.cli`);
each parses its arguments and calls one library function (:mod:`imaging_lib.models.registry`,
:func:`imaging_lib.jobs.training.run_training`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_models_parser", "parse_assignments"]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: Sequence[str], *, lists: bool = False) -> dict[str, Any]:
    """``["lr=0.01", "width=4,8"]`` -> ``{"lr": 0.01, "width": [4, 8]}`` (values as JSON when they parse).

    Raises
    ------
    ValueError
        If an item has no ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{item!r}: write name=value")
        out[name] = [_value(part) for part in text.split(",")] if lists else _value(text)
    return out


def _ranges(items: Sequence[str]) -> dict[str, Any]:
    """Random-search space: ``name=low:high[:log]`` or ``name=a,b,c``."""
    space: dict[str, Any] = {}
    for name, text in parse_assignments(items).items():
        parts = str(text).split(":")
        if len(parts) in (2, 3) and "," not in str(text):
            space[name] = {"low": _value(parts[0]), "high": _value(parts[1]), "log": parts[2:] == ["log"]}
        else:
            space[name] = [_value(part) for part in str(text).split(",")]
    return space


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cmd_list(args: argparse.Namespace) -> int:
    from .models.registry import default_model, models_table
    from .store import Store

    store = Store(args.store)
    table = models_table(store)
    current = default_model(store)
    header = (
        f"  {'model':<34} {'created':<20} {'val AUC':>7} {'test AUC':>8} {'thresh':>6} {'sens':>5} {'spec':>5}  source"
    )
    print(header)
    for row in table.to_dict("records"):
        print(
            f"{'*' if row['default'] else ' '} {row['model_id']:<34} {row['created_at'][:19]:<20} "
            f"{_fmt(row['validation_slice_auc']):>7} {_fmt(row['test_slice_auc']):>8} "
            f"{_fmt(row['study_threshold']):>6} {_fmt(row['study_sensitivity']):>5} "
            f"{_fmt(row['study_specificity']):>5}  {row['source']}"
        )
    if current.model_id is None:
        print(f"default: the shipped model {current.uri} (nothing promoted in {store.url})")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .models.registry import read_model_record
    from .store import Store

    record = read_model_record(Store(args.store), args.model_id)
    print(json.dumps(record, indent=1, sort_keys=True) if args.json else record.get("card", ""))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from .models.registry import promote
    from .store import Store

    record = promote(Store(args.store), args.model_id, comment=args.comment)
    before = record["previous_model_id"] or "the shipped model"
    print(f"default model: {record['model_id']} (was {before}), promoted by {record['provenance']['created_by']}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .jobs import get_client
    from .jobs.training import follow_training, run_training
    from .store import Store, layout
    from .training import TrainingParams, grid, random_search

    store = Store(args.store)
    try:
        base = TrainingParams.from_mapping(parse_assignments(args.set))
        if args.grid:
            trials = grid(base, parse_assignments(args.grid, lists=True))
        elif args.random:
            trials = random_search(base, _ranges(args.random), args.trials, seed=args.seed)
        else:
            trials = [base]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"imaging-lab models train: invalid parameters: {exc}", file=sys.stderr)
        return 2
    job = run_training(store, trials, client=get_client(args.scheduler))
    print(f"job {job.job_id}: {len(trials)} trial(s), record {store.full_path(layout.job_record_key(job.job_id))}")
    print(f"Dask dashboard: {job.dashboard_link}", flush=True)
    follow_training(job)
    failed = 0
    for trial, entry in job.trial_metrics().items():
        if entry["status"] == "failed":
            failed += 1
            error = entry.get("error") or {}
            print(f"{trial}: failed: {error.get('error_type')}: {error.get('error')}", file=sys.stderr)
        else:
            print(
                f"{trial}: {entry['status']}, {len(entry['epochs'])} epochs, best validation AUC "
                f"{_fmt(entry.get('best_val_auc'))}, model {entry.get('model_id') or '-'}"
                + (f" ({entry['stopped']})" if entry.get("stopped") else "")
            )
    best = job.snapshot()["metrics"]["best_trial"]
    if best is not None:
        print(f"best: {best} -> imaging-lab models promote {job.trial_metrics()[best]['model_id']}")
    return 1 if failed else 0


def add_models_parser(commands: Any, store: argparse.ArgumentParser, scheduler: argparse.ArgumentParser) -> None:
    """Add ``models list|show|promote|train`` to the ``imaging-lab`` subcommands.

    Parameters
    ----------
    commands : argparse subparsers
    store, scheduler : argparse.ArgumentParser
        The shared ``--store`` and ``--scheduler`` options (parents).
    """
    models = commands.add_parser("models", help="the model registry: list, show, promote, train")
    sub = models.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser(
        "list", help="registered models with their held-out metrics (* the default)", parents=[store]
    )
    listing.set_defaults(func=_cmd_list)
    show = sub.add_parser("show", help="a model's card (or its full record with --json)", parents=[store])
    show.add_argument("model_id")
    show.add_argument("--json", action="store_true", help="print the whole registry record")
    show.set_defaults(func=_cmd_show)
    promote = sub.add_parser("promote", help="make a model the store's default (admin role)", parents=[store])
    promote.add_argument("model_id")
    promote.add_argument("--comment", default="", help="why (kept in the promotion record)")
    promote.set_defaults(func=_cmd_promote)
    train = sub.add_parser(
        "train", help="train on the store's reviewed labels on Dask (one task per trial)", parents=[store, scheduler]
    )
    train.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="parameters, e.g. epochs=20")
    space = train.add_mutually_exclusive_group()
    space.add_argument("--grid", nargs="+", metavar="NAME=V1,V2", help="grid search: every combination")
    space.add_argument("--random", nargs="+", metavar="NAME=LOW:HIGH[:log]", help="random search over ranges or A,B")
    train.add_argument("--trials", type=int, default=4, help="trials of a random search (default 4)")
    train.add_argument("--seed", type=int, default=0, help="seed of the random search")
    train.set_defaults(func=_cmd_train)

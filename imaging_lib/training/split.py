"""Split reviewed studies into train, validation and test by patient, never by slice.

Slices of one patient on both sides of a split inflate every metric: neighbouring slices
are nearly the same image, and one patient's anatomy recurs across their studies. So the
unit of the split is the training manifest's ``split_group`` (the patient pseudonym, or
``study:<uid>`` when the patient is unknown): every study, and so every slice, of a group
lands in one split. Groups are stratified by whether any of their studies has a lesion,
so each split gets both kinds when there are enough patients, and are ordered by a
seeded hash, so the same manifest and seed always give the same split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SPLITS", "split_by_group"]

SPLITS = ("train", "validation", "test")


def _share(count: int, fraction: float) -> int:
    """Groups a split of ``fraction`` gets out of ``count``: at least one when asked for and there is room."""
    if fraction <= 0 or count < 3:
        return 0
    return max(1, round(count * fraction))


def split_by_group(
    entries: Sequence[Mapping[str, Any]], *, validation_fraction: float, test_fraction: float, seed: int = 0
) -> dict[str, list[str]]:
    """Assign each study of ``entries`` to a split, whole patients at a time.

    Parameters
    ----------
    entries : sequence of mapping
        Training manifest entries (``study_uid``, ``split_group``, ``study_label``).
    validation_fraction, test_fraction : float
        Share of the groups of each stratum (groups with a lesion study, groups without).
        A stratum of three or more groups gives each asked-for split at least one group;
        smaller strata go to training and validation first.
    seed : int
        Orders the groups (a SHA-256 of the seed and the group name).

    Returns
    -------
    dict
        Split name (:data:`SPLITS`) -> sorted study UIDs.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(str(entry["split_group"]), []).append(entry)
    strata: dict[bool, list[str]] = {True: [], False: []}
    for name, members in groups.items():
        strata[any(member.get("study_label") == "lesion" for member in members)].append(name)
    assigned: dict[str, list[str]] = {split: [] for split in SPLITS}
    for names in strata.values():
        ordered = sorted(names, key=lambda name: hashlib.sha256(f"{seed}/{name}".encode()).hexdigest())
        n_test = _share(len(ordered), test_fraction)
        n_validation = _share(len(ordered), validation_fraction) or (1 if len(ordered) == 2 else 0)
        for index, name in enumerate(ordered):
            split = "test" if index < n_test else "validation" if index < n_test + n_validation else "train"
            assigned[split].extend(str(member["study_uid"]) for member in groups[name])
    return {split: sorted(uids) for split, uids in assigned.items()}

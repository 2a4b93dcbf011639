"""The registry of model builders: the only code a model spec may name.

A state-dict spec says ``"architecture": "lesion_cnn"``; the name is looked up here and
nowhere else. Nothing a spec names is ever imported: a name is either

* built in (``lesion_cnn``, the demo model's :class:`~imaging_lib.models.lesion_cnn.LesionCNN`),
* registered in this process with :func:`register_builder`, or
* declared by an installed distribution in the entry-point group ``imaging_lab.models``::

      # pyproject.toml of a package that ships a model architecture
      [project.entry-points."imaging_lab.models"]
      unet_small = "my_models.unet:build_unet_small"

Loading an entry point imports installed code chosen by whoever installed it, never by
data; any other name is refused with :class:`~imaging_lib.errors.InvalidModelSpec`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from importlib.metadata import entry_points

from torch import nn

from ..errors import InvalidModelSpec
from .lesion_cnn import LesionCNN

__all__ = ["ENTRY_POINT_GROUP", "Builder", "builder", "builder_names", "register_builder"]

ENTRY_POINT_GROUP = "imaging_lab.models"
"""Entry-point group through which installed packages declare model builders."""

Builder = Callable[..., nn.Module]
"""A callable that takes the spec's ``architecture_params`` as keywords and returns a module."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_BUILT_IN: dict[str, Builder] = {"lesion_cnn": LesionCNN}
_REGISTERED: dict[str, Builder] = {}
_LOCK = threading.Lock()


def _check_name(name: object, source: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidModelSpec(
            source, f"architecture {name!r} is not a builder name (letters, digits, '_', '.', '-'; no module paths)"
        )
    return name


def register_builder(name: str, make: Builder) -> None:
    """Register ``make`` as the builder of architecture ``name`` in this process.

    Parameters
    ----------
    name : str
        The name specs use in ``"architecture"``.
    make : callable
        Called with the spec's ``architecture_params`` as keywords; returns an ``nn.Module``.

    Raises
    ------
    ValueError
        If ``name`` is not a valid builder name, or already names another builder.
    """
    try:
        _check_name(name, "register_builder")
    except InvalidModelSpec as exc:
        raise ValueError(exc.reason) from exc
    with _LOCK:
        current = _BUILT_IN.get(name) or _REGISTERED.get(name)
        if current is not None and current is not make:
            raise ValueError(f"architecture {name!r} already has a builder ({current!r})")
        _REGISTERED[name] = make


def _from_entry_points(name: str, source: str) -> Builder | None:
    declared = list(entry_points(group=ENTRY_POINT_GROUP, name=name))
    if not declared:
        return None
    if len({ep.value for ep in declared}) > 1:
        owners = sorted(ep.dist.name if ep.dist else ep.value for ep in declared)
        raise InvalidModelSpec(source, f"architecture {name!r} is declared by several packages: {owners}")
    try:
        make = declared[0].load()
    except Exception as exc:  # an installed plug-in that fails to import: say which one
        raise InvalidModelSpec(
            source, f"the installed builder of {name!r} ({declared[0].value}) fails to load: {exc}"
        ) from exc
    if not callable(make):
        raise InvalidModelSpec(source, f"the installed builder of {name!r} ({declared[0].value}) is not callable")
    return make


def builder(name: str, source: str = "<spec>") -> Builder:
    """Return the builder of architecture ``name``.

    Parameters
    ----------
    name : str
        A built-in name, a name given to :func:`register_builder`, or the name of an
        entry point of group :data:`ENTRY_POINT_GROUP`.
    source : str
        What asks (the model URI), for the error message.

    Returns
    -------
    Builder

    Raises
    ------
    InvalidModelSpec
        If ``name`` is not a plain name or no builder has it.
    """
    _check_name(name, source)
    with _LOCK:
        known = _BUILT_IN.get(name) or _REGISTERED.get(name)
    if known is not None:
        return known
    found = _from_entry_points(name, source)
    if found is None:
        raise InvalidModelSpec(source, f"unknown architecture {name!r}; known builders: {', '.join(builder_names())}")
    return found


def builder_names() -> list[str]:
    """Return every architecture name a spec may use here, sorted."""
    with _LOCK:
        names = set(_BUILT_IN) | set(_REGISTERED)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)

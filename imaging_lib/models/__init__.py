"""Models named by URI: the shipped demo lesion model, verified loading, and the builders specs may name.

``load_model(DEMO_MODEL_URI)`` returns the small CNN shipped in this folder
(``demo_lesion_cnn.pt`` with its spec ``demo_lesion_cnn.json``; see ``MODEL_CARD.md``).
Any state-dict model whose spec names a registered builder (:mod:`.builders`) loads the
same way from a path or an fsspec URL (``gs://...``); a TorchScript archive loads only
when the caller trusts it. A model's identity, :attr:`LoadedModel.checksum`, covers its
spec and its weights; workers load only by ``(uri, checksum)`` (:func:`load_pinned_model`).
A spec's ``decision`` (:mod:`.decision`) says how a study is labelled from its slices.
:mod:`.registry` keeps models in a store (pinned, promoted to the store's default; who
may promote is :mod:`imaging_lib.identity`'s to say), and :mod:`imaging_lib.models.training`
reproduces the demo weights and their decision threshold.
"""

from .builders import ENTRY_POINT_GROUP, builder, builder_names, register_builder
from .loading import (
    DEMO_MODEL_URI,
    LoadedModel,
    clear_model_cache,
    load_counts,
    load_model,
    load_pinned_model,
    read_spec,
)
from .spec import ModelSpec, model_checksum, sha256_hex

__all__ = [
    "DEMO_MODEL_URI",
    "ENTRY_POINT_GROUP",
    "LoadedModel",
    "ModelSpec",
    "builder",
    "builder_names",
    "clear_model_cache",
    "load_counts",
    "load_model",
    "load_pinned_model",
    "model_checksum",
    "read_spec",
    "register_builder",
    "sha256_hex",
]

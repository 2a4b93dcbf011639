"""Models named by URI: the shipped demo lesion model, loading with SHA-256 check and a per-process cache.

``load_model(DEMO_MODEL_URI)`` returns the small CNN shipped in this folder
(``demo_lesion_cnn.pt`` with its spec ``demo_lesion_cnn.json``; see ``MODEL_CARD.md``).
Any TorchScript or state-dict model with such a spec loads the same way from a path or
an fsspec URL (``gs://...``). :mod:`imaging_lib.models.training` reproduces the weights.
"""

from .loading import (
    DEMO_MODEL_URI,
    LoadedModel,
    ModelSpec,
    clear_model_cache,
    load_counts,
    load_model,
    read_spec,
    sha256_hex,
)

__all__ = [
    "DEMO_MODEL_URI",
    "LoadedModel",
    "ModelSpec",
    "clear_model_cache",
    "load_counts",
    "load_model",
    "read_spec",
    "sha256_hex",
]

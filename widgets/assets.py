"""Where the widgets' front-end files live: one convention for every anywidget of this package.

Each widget names its files as paths, ``_esm = JS / "<name>.js"`` and, when it has
styles, ``_css = JS / "<name>.css"`` (anywidget reads a path, and during development
follows its changes). Hand-written modules live in ``widgets/js/``; bundles built by
``npm run build`` (the PapayaViewer's) in ``widgets/static/``. Both folders are package
data, found through :mod:`importlib.resources`, so a wheel has them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["JS", "STATIC"]

JS = Path(str(resources.files(__package__) / "js"))
"""Hand-written ES modules and styles of the widgets."""

STATIC = Path(str(resources.files(__package__) / "static"))
"""Built bundles (``npm run build``)."""

"""The store and what it holds: objects under keys, the key layout, records and the catalog.

:class:`Store` keeps bytes under keys (a local folder, ``gs://`` or ``memory://``);
:mod:`~imaging_lib.store.layout` builds and parses every key; :class:`Catalog` answers
questions over the records as pandas DataFrames.
"""

from .catalog import Catalog
from .objects import DEFAULT_STORE, Store, open_filesystem, validate_key

__all__ = ["DEFAULT_STORE", "Catalog", "Store", "open_filesystem", "validate_key"]

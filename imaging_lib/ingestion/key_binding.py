"""The fingerprint of the de-identification key in a store: recorded once, checked on every ingest.

:func:`bind_key_to_store` records the key's fingerprint (:attr:`imaging_lib.deid.key.DeidKey.fingerprint`)
in ``config/deid_key_fingerprint.json`` on a store's first ingest, exclusively (of two
first ingests racing, one wins: :meth:`~imaging_lib.store.objects.Store.create_json`),
and refuses every later ingest with another key with
:class:`~imaging_lib.errors.KeyMismatch` before anything is written: two keys on one
store would split a patient into two pseudonyms. A store written by an older version
with its key inside (``config/deid_secret``) is refused with
:class:`~imaging_lib.errors.KeyInStore` until :func:`move_key_out_of_store` has moved
the key to the user's key file.
"""

from __future__ import annotations

from pathlib import Path

from .. import settings
from ..deid.deidentify import check_secret
from ..deid.key import FINGERPRINT_LABEL, DeidKey, create_key_file, key_file_path, read_key_file
from ..errors import KeyExists, KeyInStore, KeyMismatch, MissingRecord
from ..store import ingest_records, layout, records
from ..store.objects import Store

__all__ = ["MOVE_OUT_COMMAND", "bind_key_to_store", "move_key_out_of_store", "refuse_key_in_store"]

MOVE_OUT_COMMAND = "imaging-lab key move-out-of-store --store {store}"
"""What a user runs to move an old store's ``config/deid_secret`` to their key file."""
_LEGACY = layout.LEGACY_DEID_SECRET_KEY


def _legacy_key_message(store: Store) -> str:
    return (
        f"this store keeps its de-identification key at {store.full_path(_LEGACY)}, where whoever can read "
        "the store can re-identify patients with it. Move it out of the store before using it: run "
        f"`{MOVE_OUT_COMMAND.format(store=store.url)}` (it copies the key to your key file "
        f"{key_file_path()} with mode 0600, records its fingerprint in the store and deletes the copy in the "
        "store), then give the key to the others who ingest into this store through IMAGING_DEID_SECRET or "
        "their own key file"
    )


def bind_key_to_store(store: Store, key: DeidKey) -> None:
    """Check ``key`` against the fingerprint ``store`` keeps; record it if the store has none.

    Call it before writing anything a key shapes (pseudonyms, UIDs, dates).

    Raises
    ------
    KeyInStore
        If the store holds ``config/deid_secret`` (written by older versions).
    KeyMismatch
        If the store's fingerprint is another key's.
    """
    refuse_key_in_store(store)
    _check_or_record_fingerprint(store, key)


def refuse_key_in_store(store: Store) -> None:
    """Refuse a store that keeps its key inside (``config/deid_secret``, from older versions).

    Call it before :func:`load_key`, so a refused store does not make a new key file.

    Raises
    ------
    KeyInStore
        With how to move the key out (:data:`MOVE_OUT_COMMAND`).
    """
    if store.exists(_LEGACY):
        raise KeyInStore(store.url, _legacy_key_message(store))


def _check_or_record_fingerprint(store: Store, key: DeidKey) -> None:
    fingerprint_key = layout.deid_key_fingerprint_key()
    try:
        recorded = records.read_record(store, fingerprint_key)
    except MissingRecord:
        record = ingest_records.key_fingerprint_record(key.fingerprint, label=FINGERPRINT_LABEL.decode("ascii"))
        try:
            store.create_json(fingerprint_key, record)
            return
        except KeyExists:
            recorded = records.read_record(store, fingerprint_key)  # another first ingest won the race
    if recorded.get("fingerprint") != key.fingerprint:
        raise KeyMismatch(
            store.url,
            f"this store was de-identified with another key (fingerprint {str(recorded.get('fingerprint'))[:12]}…); "
            f"the key from {key.origin} has fingerprint {key.fingerprint[:12]}…. Ingesting with it would give the "
            "same patients a second set of pseudonyms, so nothing was written. Use the store's key "
            f"(${settings.DEID_SECRET.name} or ${settings.DEID_KEY_FILE.name}).",
        )


def move_key_out_of_store(store: Store, path: Path | None = None) -> DeidKey:
    """Move an old store's ``config/deid_secret`` to the user's key file; keep only its fingerprint.

    The key file is created exclusively with mode 0600; if one already exists it must
    hold the same key. Then the store's fingerprint is recorded and the key is deleted
    from the store, so pseudonyms stay what they were.

    Parameters
    ----------
    store : Store
    path : Path, optional
        The key file; default :func:`key_file_path`.

    Returns
    -------
    DeidKey
        The moved key (its origin is the key file).

    Raises
    ------
    MissingRecord
        If the store holds no ``config/deid_secret``.
    KeyMismatch
        If the key file already holds another key, or the store's fingerprint is another key's.
    """
    path = path or key_file_path()
    old = DeidKey(
        check_secret(store.read_bytes(_LEGACY).strip()),
        store.full_path(_LEGACY),
    )
    if not create_key_file(path, old.secret):
        existing = DeidKey(read_key_file(path), str(path))
        if existing.fingerprint != old.fingerprint:
            raise KeyMismatch(
                path,
                f"already holds another key (fingerprint {existing.fingerprint[:12]}…) than the store's "
                f"({old.fingerprint[:12]}…); set IMAGING_DEID_KEY_FILE to another path to move the store's key there",
            )
    moved = DeidKey(old.secret, str(path))
    _check_or_record_fingerprint(store, moved)  # before the store's copy goes: a mismatch keeps it
    store.delete(_LEGACY)
    return moved

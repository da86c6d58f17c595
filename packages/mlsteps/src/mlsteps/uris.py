"""Telling URIs apart: local or remote, and which table format a name says."""

from __future__ import annotations

import os

from mlsteps.errors import StorageError

TABLE_FORMATS = (".parquet", ".csv")


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def local_path(uri: str) -> str:
    return uri.removeprefix("file://")


def table_suffix(uri: str) -> str:
    """The table format a name ends in (``.parquet`` or ``.csv``), or a StorageError saying what is accepted."""
    suffix = suffix_or_empty(uri)
    if suffix not in TABLE_FORMATS:
        raise StorageError(f"'{uri}' is not a table file: use a name ending in {' or '.join(TABLE_FORMATS)}")
    return suffix


def suffix_or_empty(uri: str) -> str:
    return os.path.splitext(uri.rstrip("/"))[1].lower()

"""Errors raised by :mod:`gpte.index`; each message names the offending item and the reason."""

from __future__ import annotations

from gpte.shared.fsio import LockedError

__all__ = ["IndexInputError", "IndexMismatchError", "IndexCorruptError", "IndexReadOnlyError", "IndexConflictError",
           "LockedError"]


class IndexInputError(ValueError):
    """Bad input to an index call: wrong dimension, NaN/inf, duplicate or unknown id, bad metadata, k <= 0, ..."""


class IndexMismatchError(ValueError):
    """A saved index does not match the model (or dimension) it is opened with."""


class IndexCorruptError(RuntimeError):
    """A saved index directory is damaged: missing file, checksum mismatch, unreadable manifest."""


class IndexReadOnlyError(RuntimeError):
    """A write was attempted on an index opened read-only (memory-mapped)."""


class IndexConflictError(RuntimeError):
    """Another writer saved the index directory after this index was opened from it (a lost update was refused)."""

"""Exceptions shared across gpte; each message names the offending item and the fix."""

from __future__ import annotations

__all__ = ["GpteError", "InvalidInputError", "ModelNotFoundError"]


class GpteError(Exception):
    """Base class of gpte's own errors."""


class InvalidInputError(GpteError, ValueError):
    """Some items of a batch cannot be embedded. ``problems`` maps item position → reason."""

    def __init__(self, problems: dict[int, str], total: int) -> None:
        self.problems = dict(problems)
        shown = "; ".join(f"item {i}: {why}" for i, why in list(self.problems.items())[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"{len(self.problems)} of {total} inputs cannot be embedded: {shown}{more}")


class ModelNotFoundError(GpteError, LookupError):
    """A model name or path that gpte cannot resolve offline."""

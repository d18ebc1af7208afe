"""Validation of raw inputs before they reach a tokenizer."""

from __future__ import annotations

from collections.abc import Iterable

from gpte.shared.errors import InvalidInputError

__all__ = ["text_problems", "validate_texts"]


def text_problems(texts: Iterable[object]) -> dict[int, str]:
    """Map position → reason for each item that is not a non-blank ``str``."""
    problems: dict[int, str] = {}
    for i, t in enumerate(texts):
        if t is None:
            problems[i] = "None is not a text"
        elif not isinstance(t, str):
            problems[i] = f"expected str, got {type(t).__name__}"
        elif not t.strip():
            problems[i] = "empty or whitespace-only text"
    return problems


def validate_texts(texts: object) -> tuple[list[str], bool]:
    """Return ``(list_of_texts, was_single)``; raise :class:`InvalidInputError` naming every bad item."""
    if isinstance(texts, str):
        items, single = [texts], True
    elif isinstance(texts, bytes):
        raise TypeError("texts must be str or a sequence of str, not bytes: decode them first")
    else:
        try:
            items, single = list(texts), False  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"texts must be str or a sequence of str, got {type(texts).__name__}") from None
    problems = text_problems(items)
    if problems:
        raise InvalidInputError(problems, len(items))
    return items, single

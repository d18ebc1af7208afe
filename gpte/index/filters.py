"""Metadata filters: a small Mongo-like query language over each item's JSON metadata, compiled to a predicate.

A filter is either a Python callable ``f(metadata) -> bool`` (``metadata`` is the item's dict, ``{}`` when it has
none) or a dict:

* ``{"lang": "python"}``: equality; if the field holds a list, it matches when the list contains the value.
* ``{"year": {"$gte": 2020, "$lt": 2025}}``: operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains``.
* ``{"$and": [f1, f2]}``, ``{"$or": [f1, f2]}``, ``{"$not": f}``; several keys in one dict are and-ed.
* Dotted paths reach into nested dicts: ``{"repo.owner": "x"}``.

A missing field fails every condition except ``$ne``, ``$nin`` and ``{"$exists": False}``; comparing values of
incomparable types (``"a" > 3``) is false rather than an error. Unknown operators raise at compile time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gpte.index.errors import IndexInputError

__all__ = ["Filter", "compile_filter"]

Filter = Mapping[str, Any] | Callable[[dict[str, Any]], bool]
Predicate = Callable[[dict[str, Any]], bool]

_MISSING = object()


def _lookup(meta: Any, path: str) -> Any:
    cur = meta
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _eq(value: Any, target: Any) -> bool:
    if value is _MISSING:
        return False
    if isinstance(value, list) and not isinstance(target, list):
        return target in value
    return value == target


def _cmp(op: str) -> Callable[[Any, Any], bool]:
    def check(value: Any, target: Any) -> bool:
        if value is _MISSING or value is None or isinstance(value, bool) != isinstance(target, bool):
            return False
        try:
            if op == "$gt":
                return value > target
            if op == "$gte":
                return value >= target
            if op == "$lt":
                return value < target
            return value <= target
        except TypeError:
            return False

    return check


def _in(value: Any, targets: Any) -> bool:
    if value is _MISSING:
        return False
    if isinstance(value, list):
        return any(v in targets for v in value)
    return value in targets


def _contains(value: Any, target: Any) -> bool:
    if isinstance(value, list | str):
        try:
            return target in value
        except TypeError:
            return False
    return False


_FIELD_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _eq,
    "$ne": lambda v, t: not _eq(v, t),
    "$gt": _cmp("$gt"),
    "$gte": _cmp("$gte"),
    "$lt": _cmp("$lt"),
    "$lte": _cmp("$lte"),
    "$in": _in,
    "$nin": lambda v, t: not _in(v, t),
    "$exists": lambda v, t: (v is not _MISSING) == bool(t),
    "$contains": _contains,
}


def _compile_field(path: str, cond: Any) -> Predicate:
    if isinstance(cond, Mapping) and cond and all(isinstance(k, str) and k.startswith("$") for k in cond):
        checks: list[tuple[Callable[[Any, Any], bool], Any]] = []
        for op, target in cond.items():
            if op not in _FIELD_OPS:
                raise IndexInputError(f"filter on {path!r}: unknown operator {op!r}; known: {sorted(_FIELD_OPS)}")
            if op in ("$in", "$nin") and not isinstance(target, list | tuple | set | frozenset):
                raise IndexInputError(f"filter on {path!r}: {op} needs a list, got {type(target).__name__}")
            checks.append((_FIELD_OPS[op], target))
        return lambda meta: all(fn(_lookup(meta, path), t) for fn, t in checks)
    return lambda meta: _eq(_lookup(meta, path), cond)


def compile_filter(spec: Filter | None) -> Predicate | None:
    """Compile a filter dict (or pass a callable through) into ``predicate(metadata) -> bool``; ``None`` stays None."""
    if spec is None:
        return None
    if callable(spec) and not isinstance(spec, Mapping):
        user_fn = spec
        return lambda meta: bool(user_fn(meta))
    if not isinstance(spec, Mapping):
        raise IndexInputError(f"filter must be a dict or a callable, got {type(spec).__name__}")
    preds: list[Predicate] = []
    for key, cond in spec.items():
        if not isinstance(key, str):
            raise IndexInputError(f"filter keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(cond, list | tuple) or not cond:
                raise IndexInputError(f"filter {key} needs a non-empty list of filters, got {cond!r}")
            subs = [compile_filter(c) for c in cond]
            if key == "$and":
                preds.append(lambda meta, subs=subs: all(p(meta) for p in subs))
            else:
                preds.append(lambda meta, subs=subs: any(p(meta) for p in subs))
        elif key == "$not":
            sub = compile_filter(cond)
            preds.append(lambda meta, sub=sub: not sub(meta))
        elif key.startswith("$"):
            raise IndexInputError(f"unknown top-level filter operator {key!r}; use $and, $or, $not or a field name")
        else:
            preds.append(_compile_field(key, cond))
    if len(preds) == 1:
        return preds[0]
    return lambda meta: all(p(meta) for p in preds)

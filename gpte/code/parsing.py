"""Parsing source code with tree-sitter: one cached parser per language and thread, error-tolerant by design.

tree-sitter always returns a tree: syntax errors become ``ERROR`` nodes (unexpected text) or zero-width ``MISSING``
nodes (an expected token that is absent), and everything around them is parsed normally. :func:`has_errors` and
:func:`error_spans` tell whether and where a tree has such nodes.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from gpte.code.languages import get_language_spec, load_language, require_tree_sitter

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tree_sitter import Node, Parser, Query, Tree

__all__ = ["encode_source", "error_spans", "get_parser", "has_errors", "parse", "query"]

_local = threading.local()  # tree-sitter parsers are not thread-safe: one per thread and language


def encode_source(source: bytes | str) -> bytes:
    """``source`` as bytes; ``str`` is encoded as UTF-8 (lone surrogates from ``surrogateescape`` round-trip)."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    try:
        return source.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return source.encode("utf-8", "surrogatepass")


def get_parser(language: str) -> Parser:
    """The parser of ``language`` for the calling thread, created once."""
    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = require_tree_sitter().Parser(load_language(language))
    return parser


def parse(source: bytes | str, language: str) -> Tree:
    """Parse ``source`` as ``language`` (a name from :func:`gpte.code.supported_languages`).

    Never raises on syntax errors: the tree then contains ``ERROR``/``MISSING`` nodes (see :func:`has_errors`). Byte
    offsets in the tree refer to the UTF-8 bytes of ``source`` (``str`` input is encoded with :func:`encode_source`).
    """
    get_language_spec(language)  # KeyError naming the known languages
    return get_parser(language).parse(encode_source(source))


def has_errors(tree: Tree | Node) -> bool:
    """Whether the tree (or subtree) contains a syntax error (an ``ERROR`` or ``MISSING`` node)."""
    node = getattr(tree, "root_node", tree)
    return bool(node.has_error)


def error_spans(tree: Tree | Node) -> list[tuple[int, int]]:
    """Byte spans ``(start, end)`` of the outermost ``ERROR`` nodes and of ``MISSING`` nodes, in source order.

    Only subtrees flagged ``has_error`` are visited, so an error-free tree costs one check.
    """
    root = getattr(tree, "root_node", tree)
    spans: list[tuple[int, int]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            spans.append((node.start_byte, node.end_byte))
        elif node.has_error:
            stack.extend(reversed(node.children))
    return spans


@functools.cache
def query(language: str, source: str) -> Query:
    """A compiled tree-sitter ``Query`` for ``language``, cached by its source text."""
    return require_tree_sitter().Query(load_language(language), source)

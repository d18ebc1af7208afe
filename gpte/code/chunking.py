"""Chunking source files into functions, methods and classes, with a line-window fallback.

:func:`chunk_file` (a path or bytes) and :func:`chunk_source` (bytes or text) return :class:`Chunk` objects in source
order. What becomes a chunk (the node types per language are listed in :mod:`gpte.code.languages`):

* **functions and methods**: ``text`` is the source of the definition with its decorators / export / template
  wrapper / Rust attributes; ``code`` is ``text`` without the Python docstring; ``doc`` is the Python docstring or the
  comment block immediately preceding the definition (no blank line between; trailing comments of code lines
  excluded; JSDoc/Javadoc markers and ``*`` gutters, ``//``, ``///`` and ``//!`` markers stripped) plus Rust inner doc
  comments at the start of the body. Definitions nested inside a function body belong to that function and are not
  chunked (unless the outer function is syntactically broken, see below).
* **classes** (structs, interfaces, traits, enums...): start/end bytes and lines span the whole class, but ``text``
  is an *outline*: the class source with the body of every method replaced by ``...`` (``{ ... }`` in brace
  languages), so fields, class attributes, nested classes and method signatures stay. The outline is capped at
  ``max_chunk_lines`` lines (a last line ``...`` marks the cut). Each method is its own chunk.
* **huge definitions**: a function longer than ``ChunkConfig.max_chunk_lines`` (default 200) lines is split into
  parts of ``window_lines`` lines with ``window_overlap`` overlap; each part keeps the definition's kind, names,
  signature and doc and has ``part``/``num_parts`` set.
* **windows** (kind ``"window"``): a file with no definitions is cut into windows of ``window_lines`` lines (default
  60) overlapping by ``window_overlap`` (default 10). In a file with definitions, each run of lines outside every
  chunk (imports, module docstring, top-level statements) becomes windows when it has at least
  ``min_window_lines`` non-blank lines (default 5), or when it holds code blanked out by error recovery.

**Stable ids.** A definition's id is ``sha1(path, language, kind, qualname, n)`` where ``n`` counts earlier
definitions with the same kind and qualname in the file (overloads, property setters): it does not change when lines
are inserted above or another definition is edited, only when the definition is renamed, moved to another scope or
file, or an earlier same-named definition is added or removed. Parts after the first add their index. A window's id
is ``sha1(path, language, "window", content_hash, n)`` (``n`` counts identical earlier windows).

**Error tolerance.** tree-sitter always returns a tree; definitions whose span holds a syntax error are kept with
``has_error=True``. When an ``ERROR`` node swallows later definitions (an unclosed bracket), the broken region, from
the error to the next line that starts a definition at the same or a lower indentation, is blanked out (replaced by
spaces, newlines kept, so byte offsets do not move) and the file re-parsed, up to three times (a re-parse that finds
fewer definitions is discarded); the blanked code is kept in windows with ``has_error=True``. This is a heuristic:
an error that swallows a whole class body from its first line (seen in JavaScript) is not recovered. A function whose body lacks its closing brace and so swallows the next definitions (C-like
languages) does not hide them: definitions nested in a broken function are chunked as if at its level.

**Bad input.** NUL bytes → :class:`BinaryFileError`; more than ``max_file_bytes`` (default 1,000,000) →
:class:`FileTooLargeError` (checked with ``stat`` before reading a file); no language from the extension or shebang →
:class:`UnknownLanguageError`. Each carries ``path`` and ``reason``. Invalid UTF-8 is parsed as bytes: byte offsets
always refer to the original bytes, and the text fields are decoded with ``errors="replace"`` (so a text field can
be shorter in characters than its byte span, and holds U+FFFD where bytes were invalid).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import logging
import os
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from gpte.code.languages import LANGUAGES, LanguageSpec, detect_language, require_tree_sitter, supported_extensions
from gpte.code.parsing import encode_source, error_spans, get_parser, query
from gpte.shared.errors import GpteError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tree_sitter import Node, Tree

__all__ = [
    "BinaryFileError",
    "Chunk",
    "ChunkConfig",
    "ChunkKind",
    "CodeInputError",
    "FileTooLargeError",
    "UnknownLanguageError",
    "chunk_file",
    "chunk_source",
]

logger = logging.getLogger(__name__)

ChunkKind = Literal["function", "method", "class", "window"]


class CodeInputError(GpteError, ValueError):
    """A source file that cannot be chunked; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | None, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path or '<source>'}: {reason}")


class BinaryFileError(CodeInputError):
    """The content holds NUL bytes: a binary (or UTF-16/32) file, not source code."""


class FileTooLargeError(CodeInputError):
    """The file is larger than ``ChunkConfig.max_file_bytes``."""

    def __init__(self, path: str | None, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(path, f"{size} bytes exceeds the size cap of {limit} bytes (ChunkConfig.max_file_bytes)")


class UnknownLanguageError(CodeInputError):
    """No language could be chosen from the extension, the shebang or the ``language`` argument."""

    def __init__(self, path: str | None, extension: str, supported: list[str], language: str | None = None) -> None:
        self.extension = extension
        self.supported = supported
        if language is not None:
            reason = f"unknown language {language!r}; supported languages: {', '.join(supported)}"
        else:
            what = f"unknown extension {extension!r}" if extension else "no file extension"
            reason = f"{what} and no recognised shebang; supported extensions: {', '.join(supported)}"
        super().__init__(path, reason)


@dataclass(frozen=True)
class ChunkConfig:
    """Chunking settings (saved with a code model so that indexing and training cut files the same way)."""

    max_file_bytes: int = 1_000_000  # larger files raise FileTooLargeError
    window_lines: int = 60  # lines per window (fallback windows and parts of huge definitions)
    window_overlap: int = 10  # lines shared by consecutive windows
    max_chunk_lines: int = 200  # longer functions are split into parts; class outlines are cut at this length
    min_window_lines: int = 5  # top-level code between definitions becomes windows from this many non-blank lines
    top_level_windows: bool = True  # False: windows only for files without definitions
    recover: bool = True  # blank out regions that swallow later definitions and re-parse (see module doc)

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be positive, got {self.max_file_bytes}")
        if self.window_lines <= 0:
            raise ValueError(f"window_lines must be positive, got {self.window_lines}")
        if not 0 <= self.window_overlap < self.window_lines:
            raise ValueError(f"window_overlap must be in [0, window_lines), got {self.window_overlap}")
        if self.max_chunk_lines < self.window_lines:
            raise ValueError(f"max_chunk_lines ({self.max_chunk_lines}) must be >= window_lines ({self.window_lines})")
        if self.min_window_lines < 0:
            raise ValueError(f"min_window_lines must be >= 0, got {self.min_window_lines}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of a source file: a definition (or a part of a huge one) or a window of lines."""

    id: str  # stable id (see the module doc): sha1 hex digest
    path: str  # the file's path as given by the caller, POSIX separators ("" when unknown)
    language: str  # registry name ("python", "tsx", ...)
    kind: ChunkKind  # "function", "method", "class" or "window"
    symbol: str | None  # the definition's own name; None for windows
    qualname: str | None  # enclosing scopes and the name joined with "." ("Parser.parse"); None for windows
    parent: str | None  # enclosing class / impl / receiver type name; None for top-level definitions and windows
    signature: str | None  # source from the declaration start up to its body ("def f(a) -> int:"); None for windows
    doc: str | None  # the docstring or preceding doc comment, cleaned; None when absent
    text: str  # the source of the chunk (a class: its outline), decoded with errors="replace"
    code: str  # ``text`` without the Python docstring: what a code encoder embeds
    start_byte: int  # span in the original bytes, end exclusive
    end_byte: int
    start_line: int  # 1-based, inclusive
    end_line: int
    content_hash: str  # sha256 hex digest of ``text`` (UTF-8)
    node_type: str | None = None  # tree-sitter node type of the definition ("function_definition"); None for windows
    has_error: bool = False  # the span holds a syntax error (or code blanked out by error recovery)
    part: int = 0  # index of this part when a huge definition is split
    num_parts: int = 1  # number of parts of the definition

    def to_dict(self) -> dict[str, Any]:
        """The chunk as a JSON-ready dict."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------- entry points


def _posix(path: str | os.PathLike[str] | None) -> str:
    if path is None:
        return ""
    if isinstance(path, PurePath):
        return path.as_posix()
    text = os.fspath(path)
    return text.replace(os.sep, "/") if os.sep != "/" else text


def chunk_file(
    path_or_source: str | os.PathLike[str] | bytes,
    language: str | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    config: ChunkConfig | None = None,
) -> list[Chunk]:
    """Chunk one file, given as a path to read or as its bytes.

    Args:
        path_or_source: a filesystem path (``str`` or ``PathLike``), or the file's bytes (then pass ``path`` for the
            language detection and the chunks' ``path``). Text already in memory goes to :func:`chunk_source`.
        language: a registry name; by default detected from the extension, then from the shebang.
        path: the path recorded in the chunks (e.g. relative to the indexed root); by default the given path.
        config: chunking settings (:class:`ChunkConfig`).

    Raises:
        FileTooLargeError, BinaryFileError, UnknownLanguageError: bad input (each names the path and the reason).
        OSError: the file cannot be read.
    """
    config = config or ChunkConfig()
    if isinstance(path_or_source, bytes | bytearray | memoryview):
        return chunk_source(bytes(path_or_source), language, path, config=config)
    file_path = os.fspath(path_or_source)
    shown = _posix(path if path is not None else path_or_source)
    size = os.stat(file_path).st_size
    if size > config.max_file_bytes:
        raise FileTooLargeError(shown, size, config.max_file_bytes)
    detected = language is None
    if language is None:
        language = detect_language(file_path)
        if language is None:  # no known extension: look for a shebang before reading the whole file
            with open(file_path, "rb") as handle:
                language = detect_language(file_path, handle.read(512))
            if language is None:
                raise UnknownLanguageError(shown, PurePath(file_path).suffix, supported_extensions())
    with open(file_path, "rb") as handle:
        source = handle.read(config.max_file_bytes + 1)  # the file may have grown since stat
    if detected and language == "c":  # a C++ header with the .h extension
        language = detect_language(file_path, source[:4096]) or language
    return chunk_source(source, language, shown, config=config)


def chunk_source(
    source: bytes | str,
    language: str | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    config: ChunkConfig | None = None,
) -> list[Chunk]:
    """Chunk source code held in memory (``bytes``, or ``str`` encoded as UTF-8) into :class:`Chunk` objects.

    ``language`` defaults to the one detected from ``path`` and the source's shebang; ``path`` is recorded in the
    chunks and their ids. Raises the errors listed in :func:`chunk_file` (not ``OSError``).
    """
    config = config or ChunkConfig()
    shown = _posix(path)
    data = encode_source(source)
    if len(data) > config.max_file_bytes:
        raise FileTooLargeError(shown, len(data), config.max_file_bytes)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BinaryFileError(shown, f"binary content (NUL byte at offset {nul})")
    if language is None:
        language = detect_language(path, data[:4096])
        if language is None:
            raise UnknownLanguageError(shown, PurePath(shown).suffix if shown else "", supported_extensions())
    spec = LANGUAGES.get(language)
    if spec is None:
        raise UnknownLanguageError(shown, "", sorted(LANGUAGES), language=language)
    return _FileChunker(data, spec, shown, config).run()


# --------------------------------------------------------------------------------------------------- internals

_NAME_DECLARATORS = frozenset(
    {"identifier", "field_identifier", "qualified_identifier", "destructor_name", "operator_name", "type_identifier",
     "template_function", "operator_cast"}
)
_TYPE_NAMES = frozenset({"type_identifier", "identifier", "primitive_type", "field_identifier", "namespace_identifier"})
_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")
_COMMENT_GUTTER = re.compile(r"^\s*\*(?: |$)?")
_LINE_MARKER = re.compile(r"^//[/!]? ?")
_SIGNATURE_FROM_WRAPPER_EXCLUDED = frozenset({"decorated_definition"})


def _sha1(*parts: object) -> str:
    return hashlib.sha1("\x00".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _end_row(node: Node) -> int:
    """Last row holding a character of ``node`` (a node that ends with its newline ends on the row before)."""
    point = node.end_point
    if point.column == 0 and node.end_byte > node.start_byte:
        return point.row - 1
    return point.row


def _line_windows(first: int, last: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows of ``size`` lines with ``overlap`` over the inclusive line range [first, last]."""
    windows = []
    step = size - overlap
    start = first
    while True:
        end = min(start + size - 1, last)
        windows.append((start, end))
        if end >= last:
            return windows
        start += step


def _clean_comment(raw: str) -> str:
    raw = raw.replace("\r\n", "\n").strip()
    if raw.startswith("/*"):
        body = raw[2:-2] if raw.endswith("*/") and len(raw) >= 4 else raw[2:]
        body = body.lstrip("*!")
        lines = [_COMMENT_GUTTER.sub("", line, count=1) for line in body.split("\n")]
        return textwrap.dedent("\n".join(line.rstrip() for line in lines)).strip("\n")
    return _LINE_MARKER.sub("", raw, count=1).rstrip()


@dataclass
class _Def:
    node: Node  # the definition node
    kind: str
    name: str
    qualname: str
    parent: str | None
    start_byte: int  # span, wrappers and attributes included
    end_byte: int
    start_row: int  # 0-based rows of the span
    end_row: int
    cover_row: int  # first row that belongs to the chunk, its doc comment included
    sig_start: int
    body: Node | None
    doc: str | None
    docstring_span: tuple[int, int] | None  # bytes of the Python docstring statement (whole lines when alone)
    has_error: bool


class _FileChunker:
    """Chunks one file; holds the bytes, the language spec and lazily computed line offsets."""

    def __init__(self, data: bytes, spec: LanguageSpec, path: str, config: ChunkConfig) -> None:
        self.data = data
        self.spec = spec
        self.path = path
        self.config = config
        self.masked: list[tuple[int, int]] = []  # byte regions blanked out by error recovery
        self._line_starts: list[int] | None = None
        self._names: dict[int, tuple[str | None, list[str]]] = {}  # node id -> (name, extra scopes)

    # ---- lines

    @property
    def line_starts(self) -> list[int]:
        """Byte offset of the start of every line (a final newline does not open another line)."""
        if self._line_starts is None:
            starts = list(itertools.accumulate([len(line) + 1 for line in self.data.split(b"\n")], initial=0))
            starts.pop()  # the offset after the last line
            if len(starts) > 1 and starts[-1] == len(self.data):
                starts.pop()
            self._line_starts = starts
        return self._line_starts

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Byte span of the 1-based inclusive line range, without the final newline."""
        starts = self.line_starts
        if last < len(starts):
            end = starts[last] - 1
        else:
            end = len(self.data) - (1 if self.data.endswith(b"\n") else 0)
        if end > starts[first - 1] and self.data[end - 1 : end] == b"\r":
            end -= 1
        return starts[first - 1], max(end, starts[first - 1])

    def row_of(self, byte: int) -> int:
        return bisect.bisect_right(self.line_starts, byte) - 1

    # ---- driver

    def run(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        defs: list[_Def] = []
        if self.spec.has_grammar:
            defs = self._definitions(self._parse())
            chunks = self._definition_chunks(defs)
        chunks.extend(self._windows(defs))
        chunks.sort(key=lambda c: (c.start_byte, -c.end_byte, c.part))
        return chunks

    def _parse(self) -> list[Node]:
        """Parse (recovering from swallowing errors, see the module doc) and capture the candidate definitions."""
        parser = get_parser(self.spec.name)
        tree = parser.parse(self.data)
        nodes = self._captures(tree)
        if not tree.root_node.has_error:
            return nodes
        logger.debug("%s: syntax errors at bytes %s", self.path or "<source>", error_spans(tree)[:5])
        if not (self.config.recover and self.spec.resync):
            return nodes
        resync = re.compile(self.spec.resync.encode())
        current = self.data
        for _ in range(3):
            regions = self._broken_regions(tree, current, resync)
            if not regions:
                break
            blanked = bytearray(current)
            for start, end in regions:
                blanked[start:end] = re.sub(rb"[^\n]", b" ", bytes(blanked[start:end]))
            retry = parser.parse(bytes(blanked))
            retry_nodes = self._captures(retry)
            if len(retry_nodes) < len(nodes):  # blanking lost more than it recovered: keep the previous parse
                break
            self.masked.extend(regions)
            current, tree, nodes = bytes(blanked), retry, retry_nodes
            if not tree.root_node.has_error:
                break
        return nodes

    def _captures(self, tree: Tree) -> list[Node]:
        q = query(self.spec.name, self.spec.query_source())
        cursor = require_tree_sitter().QueryCursor(q)
        return sorted(cursor.captures(tree.root_node).get("def", ()), key=lambda n: n.start_byte)

    @staticmethod
    def _broken_regions(tree: Tree, data: bytes, resync: re.Pattern[bytes]) -> list[tuple[int, int]]:
        """For each outermost ERROR node: from its start to the first later line that may start a definition."""
        regions = []
        stack = [tree.root_node]
        while stack:
            node = stack.pop()
            if not node.is_error:
                if node.has_error:
                    stack.extend(node.children)
                continue
            start, end = node.start_byte, node.end_byte
            column = node.start_point.column
            line = data.find(b"\n", start, end)
            while 0 <= line < end:
                line_start = line + 1
                line_end = data.find(b"\n", line_start)
                text = data[line_start : line_end if line_end >= 0 else len(data)]
                stripped = text.lstrip(b" \t")
                if stripped and len(text) - len(stripped) <= column and resync.match(stripped):
                    regions.append((start, line_start))
                    break
                line = line_end
        return sorted(regions)

    # ---- definitions

    def _definitions(self, nodes: list[Node]) -> list[_Def]:
        captured = {n.id: n for n in nodes}
        defs = []
        for node in nodes:
            item = self._definition(node, captured)
            if item is not None:
                defs.append(item)
        return defs

    def _text(self, node: Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def _role(self, node_type: str) -> str:
        spec = self.spec
        if node_type in spec.classes:
            return "class"
        return "method" if node_type in spec.methods else "function"

    def _type_name(self, node: Node | None) -> str | None:
        while node is not None:
            if node.type in _TYPE_NAMES:
                return self._text(node)
            nxt = node.child_by_field_name("type") or node.child_by_field_name("name")
            node = nxt if nxt is not None else (node.named_children[0] if node.named_child_count else None)
        return None

    def _name(self, node: Node) -> tuple[str | None, list[str]]:
        """The definition's name and, for C++ ``A::B::f``, the extra scopes ``["A", "B"]`` (cached per node)."""
        cached = self._names.get(node.id)
        if cached is None:
            cached = self._names[node.id] = self._find_name(node)
        return cached

    def _find_name(self, node: Node) -> tuple[str | None, list[str]]:
        node_type = node.type
        if node_type == "function_definition" and self.spec.name in ("c", "cpp"):
            declarator = node.child_by_field_name("declarator")
            while declarator is not None and declarator.type not in _NAME_DECLARATORS:
                nxt = declarator.child_by_field_name("declarator")
                if nxt is None:
                    nxt = declarator.named_children[0] if declarator.named_child_count else None
                declarator = nxt
            if declarator is None:
                return None, []
            name = self._text(declarator)
            if declarator.type == "qualified_identifier" or "<" in name:
                while "<" in name and _TEMPLATE_ARGS.search(name):
                    name = _TEMPLATE_ARGS.sub("", name)
                parts = [p.strip() for p in name.split("::")]
                return parts[-1], [p for p in parts[:-1] if p]
            return name, []
        if node_type in self.spec.impls:
            return self._type_name(node.child_by_field_name("type")), []
        name_node = node.child_by_field_name("name")
        if name_node is None and node_type == "field_definition":
            name_node = node.child_by_field_name("property")
        if name_node is None:
            parent = node.parent
            if parent is not None and parent.type == "type_definition":  # typedef struct { ... } name_t;
                name_node = parent.child_by_field_name("declarator")
            if name_node is None:
                return None, []
        name = self._text(name_node)
        if node_type in self.spec.namespaces:
            name = name.replace("::", ".")
        return name, []

    def _body(self, node: Node) -> Node | None:
        body = node.child_by_field_name("body")
        if body is None and node.type in ("variable_declarator", "field_definition", "public_field_definition"):
            value = node.child_by_field_name("value")
            body = value.child_by_field_name("body") if value is not None else None
        if body is None and node.type == "type_spec":  # Go: the struct's field list / the interface type
            kind = node.child_by_field_name("type")
            if kind is not None:
                body = next((c for c in kind.named_children if c.type == "field_declaration_list"), kind)
        return body

    def _definition(self, node: Node, captured: dict[int, Node]) -> _Def | None:
        spec = self.spec
        role = self._role(node.type)
        # enclosing scopes, innermost first
        scopes: list[str] = []
        nearest_class_like: bool | None = None
        parent_name: str | None = None
        ancestor = node.parent
        while ancestor is not None:
            a_type = ancestor.type
            if ancestor.id in captured:
                if self._role(a_type) != "class":
                    if not ancestor.has_error:
                        return None  # inside a function body: part of that function
                else:
                    a_name, _ = self._name(ancestor)
                    if a_name:
                        scopes.append(a_name)
                        if nearest_class_like is None:
                            nearest_class_like, parent_name = True, a_name
            elif a_type in spec.impls:
                a_name, _ = self._name(ancestor)
                if a_name:
                    scopes.append(a_name)
                    if nearest_class_like is None:
                        nearest_class_like, parent_name = True, a_name
            elif a_type in spec.namespaces:
                a_name, _ = self._name(ancestor)
                if a_name:
                    scopes.append(a_name)
                    if nearest_class_like is None:
                        nearest_class_like = False
            ancestor = ancestor.parent
        name, extra_scopes = self._name(node)
        if not name:
            return None
        body = self._body(node)
        if role != "class" and body is None:
            return None  # a declaration without a body (abstract, prototype, "= default")
        if node.type == "method_declaration" and spec.name == "go":
            receiver = self._type_name(node.child_by_field_name("receiver"))
            if receiver:
                extra_scopes = [receiver]
        if extra_scopes:  # C++ "A::f", Go receiver
            parent_name = extra_scopes[-1]
        if role == "class":
            kind = "class"
        elif role == "method" or extra_scopes or nearest_class_like:
            kind = "method"
        else:
            kind = "function"
        qualname = ".".join([*reversed(scopes), *extra_scopes, name])

        # span: climb wrappers (decorators, export, template, single declarations)
        outer = node
        wrappers = spec.wrappers
        wrapper_types = []
        while outer.parent is not None and outer.parent.type in wrappers:
            wrapper = outer.parent
            required = wrappers[wrapper.type]
            if required is not None and sum(1 for c in wrapper.named_children if c.type == required) != 1:
                break
            wrapper_types.append(wrapper.type)
            outer = wrapper
        start_byte, start_row = outer.start_byte, outer.start_point.row
        sig_start = node.start_byte
        if wrapper_types and wrapper_types[-1] not in _SIGNATURE_FROM_WRAPPER_EXCLUDED:
            sig_start = outer.start_byte

        # preceding attributes and doc comments
        comments: list[Node] = []
        cover_row = start_row
        if spec.comments or spec.attributes:
            sibling = outer.prev_named_sibling
            top_row = start_row
            while sibling is not None:
                s_type = sibling.type
                if _end_row(sibling) < top_row - 1:
                    break
                if s_type in spec.attributes:
                    start_byte, start_row = sibling.start_byte, sibling.start_point.row
                elif s_type in spec.comments:
                    head = self.data[sibling.start_byte : sibling.start_byte + 3]
                    if head in (b"//!", b"/*!"):
                        break  # an inner doc comment documents the enclosing item
                    before = sibling.prev_sibling
                    if before is not None and _end_row(before) == sibling.start_point.row:
                        break  # a trailing comment of the code before it
                    comments.append(sibling)
                else:
                    break
                top_row = sibling.start_point.row
                sibling = sibling.prev_named_sibling
            cover_row = min(start_row, top_row)
        doc_parts = [_clean_comment(self._text(c)) for c in reversed(comments)]
        docstring_span = None
        if spec.docstrings and body is not None:
            docstring_span, docstring = self._docstring(body)
            if docstring:
                doc_parts.append(docstring)
        elif body is not None and spec.name == "rust":
            doc_parts.extend(self._inner_docs(body))
        doc = "\n".join(p for p in doc_parts if p).strip() or None

        end_byte = outer.end_byte
        has_error = bool(outer.has_error) or any(s < end_byte and start_byte < e for s, e in self.masked)
        return _Def(
            node=node, kind=kind, name=name, qualname=qualname, parent=parent_name if kind != "function" else None,
            start_byte=start_byte, end_byte=end_byte, start_row=start_row, end_row=_end_row(outer),
            cover_row=cover_row, sig_start=sig_start, body=body, doc=doc, docstring_span=docstring_span,
            has_error=has_error,
        )

    def _docstring(self, body: Node) -> tuple[tuple[int, int] | None, str | None]:
        statement = body.named_children[0] if body.named_child_count else None
        while statement is not None and statement.type == "comment":
            statement = statement.next_named_sibling
        if statement is None or statement.type != "expression_statement" or statement.named_child_count != 1:
            return None, None
        string = statement.named_children[0]
        if string.type != "string":
            return None, None
        children = string.children
        if len(children) < 2 or children[0].type != "string_start" or children[-1].type != "string_end":
            return None, None
        opener = self.data[children[0].start_byte : children[0].end_byte]
        if b"f" in opener.lower():
            return None, None  # an f-string is not a docstring
        content = self.data[children[0].end_byte : children[-1].start_byte].decode("utf-8", "replace")
        doc = _cleandoc(content)
        # the statement's span, widened to whole lines when it stands alone on them
        start, end = statement.start_byte, statement.end_byte
        line_start = self.data.rfind(b"\n", 0, start) + 1
        if not self.data[line_start:start].strip():
            line_end = self.data.find(b"\n", end)
            line_end = len(self.data) if line_end < 0 else line_end + 1
            if not self.data[end:line_end].strip():
                start, end = line_start, line_end
        return (start, end), doc.strip() or None

    def _inner_docs(self, body: Node) -> list[str]:
        docs = []
        child = body.named_children[0] if body.named_child_count else None
        while child is not None and child.type in self.spec.comments:
            if self.data[child.start_byte : child.start_byte + 3] in (b"//!", b"/*!"):
                docs.append(_clean_comment(self._text(child)))
            child = child.next_named_sibling
        return docs

    # ---- chunks

    def _render(self, start: int, end: int, cuts: Iterable[tuple[int, int, bytes]]) -> str:
        """Bytes [start, end) with each cut (s, e, replacement) applied, decoded."""
        pieces = []
        pos = start
        for cut_start, cut_end, replacement in cuts:
            cut_start, cut_end = max(cut_start, start), min(cut_end, end)
            if cut_start < pos or cut_start >= cut_end:
                continue
            pieces.append(self.data[pos:cut_start])
            pieces.append(replacement)
            pos = cut_end
        pieces.append(self.data[pos:end])
        return b"".join(pieces).decode("utf-8", "replace")

    def _signature(self, item: _Def) -> str:
        body = item.body
        if self.spec.docstrings and body is not None:  # Python: up to the ":" before the body (comments excluded)
            colon = next((c for c in reversed(item.node.children) if c.type == ":"), None)
            end = colon.end_byte if colon is not None else body.start_byte
        elif body is not None and item.node.type != "type_spec" and body.start_byte > item.sig_start:
            end = body.start_byte
        else:  # Go type specs and body-less classes: up to the first brace, else the first line
            end = self.data.find(b"{", item.sig_start, item.node.end_byte)
            if end < 0:
                end = self.data.find(b"\n", item.sig_start, item.node.end_byte)
            if end < 0:
                end = item.node.end_byte
        return self.data[item.sig_start : end].decode("utf-8", "replace").rstrip()

    def _elided(self, body: Node) -> tuple[int, int, bytes]:
        if self.spec.docstrings:
            return body.start_byte, body.end_byte, b"..."
        opens_brace = self.data[body.start_byte : body.start_byte + 1] == b"{"
        return body.start_byte, body.end_byte, b"{ ... }" if opens_brace else b"..."

    def _definition_chunks(self, defs: list[_Def]) -> list[Chunk]:
        config = self.config
        occurrences: dict[tuple[str, str], int] = {}
        function_bodies = [(d.start_byte, d.end_byte, d.body) for d in defs if d.kind != "class" and d.body is not None]
        body_starts = [s for s, _, _ in function_bodies]
        chunks = []
        for item in defs:
            key = (item.kind, item.qualname)
            n = occurrences.get(key, 0)
            occurrences[key] = n + 1
            base_id = _sha1(self.path, self.spec.name, item.kind, item.qualname, n)
            docstring_cut = [(*item.docstring_span, b"")] if item.docstring_span else []
            common = dict(
                path=self.path, language=self.spec.name, kind=item.kind, symbol=item.name, qualname=item.qualname,
                parent=item.parent, signature=self._signature(item), doc=item.doc, node_type=item.node.type,
                has_error=item.has_error,
            )
            start_line, end_line = item.start_row + 1, item.end_row + 1
            if item.kind == "class":
                elisions = []
                for s, e, body in function_bodies[bisect.bisect_left(body_starts, item.start_byte):]:
                    if s >= item.end_byte:
                        break
                    if e <= item.end_byte:
                        elisions.append(self._elided(body))
                text = _cap_lines(self._render(item.start_byte, item.end_byte, elisions), config.max_chunk_lines)
                code_cuts = sorted(elisions + docstring_cut)
                code = _cap_lines(self._render(item.start_byte, item.end_byte, code_cuts), config.max_chunk_lines)
                chunks.append(Chunk(id=base_id, text=text, code=code, start_byte=item.start_byte,
                                    end_byte=item.end_byte, start_line=start_line, end_line=end_line,
                                    content_hash=_sha256(text), **common))
                continue
            if end_line - start_line + 1 <= config.max_chunk_lines:
                text = self._render(item.start_byte, item.end_byte, ())
                code = self._render(item.start_byte, item.end_byte, docstring_cut) if docstring_cut else text
                chunks.append(Chunk(id=base_id, text=text, code=code, start_byte=item.start_byte,
                                    end_byte=item.end_byte, start_line=start_line, end_line=end_line,
                                    content_hash=_sha256(text), **common))
                continue
            windows = _line_windows(start_line, end_line, config.window_lines, config.window_overlap)
            for part, (first, last) in enumerate(windows):
                span_start, span_end = self.line_span(first, last)
                span_start, span_end = max(span_start, item.start_byte), min(span_end, item.end_byte)
                if part == len(windows) - 1:
                    span_end = item.end_byte
                text = self._render(span_start, span_end, ())
                code = self._render(span_start, span_end, docstring_cut) if docstring_cut else text
                chunk_id = base_id if part == 0 else _sha1(base_id, "part", part)
                chunks.append(Chunk(id=chunk_id, text=text, code=code, start_byte=span_start, end_byte=span_end,
                                    start_line=first, end_line=last, content_hash=_sha256(text), part=part,
                                    num_parts=len(windows), **common))
        return chunks

    # ---- windows

    def _windows(self, defs: list[_Def]) -> list[Chunk]:
        config = self.config
        data = self.data
        if not data.strip() or (defs and not config.top_level_windows and not self.masked):
            return []
        num_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        runs = []  # inclusive 1-based line ranges outside every definition chunk
        line = 1
        for first, last in sorted((d.cover_row + 1, d.end_row + 1) for d in defs):
            if first > line:
                runs.append((line, first - 1))
            line = max(line, last + 1)
        if line <= num_lines:
            runs.append((line, num_lines))
        masked_rows = [(self.row_of(s) + 1, self.row_of(max(e - 1, s)) + 1) for s, e in self.masked]
        minimum = config.min_window_lines if defs else 1
        occurrences: dict[str, int] = {}
        chunks = []
        for first, last in runs:
            broken = any(a <= last and first <= b for a, b in masked_rows)
            if defs and not broken and not config.top_level_windows:
                continue
            run_start, run_end = self.line_span(first, last)
            nonblank = [i for i, text in enumerate(data[run_start:run_end].split(b"\n")) if text.strip()]
            if not nonblank or (defs and not broken and len(nonblank) < minimum):
                continue
            for window_first, window_last in _line_windows(first + nonblank[0], first + nonblank[-1],
                                                           config.window_lines, config.window_overlap):
                span_start, span_end = self.line_span(window_first, window_last)
                text = data[span_start:span_end].decode("utf-8", "replace")
                if not text.strip():
                    continue
                content_hash = _sha256(text)
                n = occurrences.get(content_hash, 0)
                occurrences[content_hash] = n + 1
                has_error = any(s < span_end and span_start < e for s, e in self.masked)
                chunks.append(Chunk(
                    id=_sha1(self.path, self.spec.name, "window", content_hash, n), path=self.path,
                    language=self.spec.name, kind="window", symbol=None, qualname=None, parent=None, signature=None,
                    doc=None, text=text, code=text, start_byte=span_start, end_byte=span_end, start_line=window_first,
                    end_line=window_last, content_hash=content_hash, has_error=has_error,
                ))
        return chunks


def _cleandoc(text: str) -> str:
    """``inspect.cleandoc`` without importing inspect: strip the common indentation of all lines but the first."""
    lines = text.replace("\r\n", "\n").expandtabs().split("\n")
    first, rest = lines[0].strip(), textwrap.dedent("\n".join(lines[1:]))
    return (first + "\n" + rest).strip("\n") if rest.strip() else first


def _cap_lines(text: str, limit: int) -> str:
    lines = text.split("\n")
    if len(lines) <= limit:
        return text
    return "\n".join([*lines[:limit], "..."])

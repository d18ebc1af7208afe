"""Code: tree-sitter parsing and chunking of source files (Python, JavaScript, TypeScript, Java, Go, Rust, C, C++).

Importing this package needs nothing beyond gpte; tree-sitter and the grammar wheels are imported on first use, with
the hint ``pip install "gpte[code]"`` when they are missing. Start with::

    from gpte.code import chunk_file
    chunks = chunk_file("src/parser.py", path="src/parser.py")
    [(c.kind, c.qualname, c.start_line, c.end_line) for c in chunks]
"""

from __future__ import annotations

from gpte.code.chunking import (
    BinaryFileError,
    Chunk,
    ChunkConfig,
    ChunkKind,
    CodeInputError,
    FileTooLargeError,
    UnknownLanguageError,
    chunk_file,
    chunk_source,
)
from gpte.code.languages import (
    INSTALL_HINT,
    LANGUAGES,
    LanguageSpec,
    detect_language,
    get_language_spec,
    grammar_versions,
    load_language,
    supported_extensions,
    supported_languages,
)
from gpte.code.parsing import error_spans, has_errors, parse
from gpte.code.search import CodeHit, CodeSearch, IndexReport

__all__ = [
    "INSTALL_HINT",
    "LANGUAGES",
    "BinaryFileError",
    "Chunk",
    "ChunkConfig",
    "CodeHit",
    "CodeSearch",
    "IndexReport",
    "ChunkKind",
    "CodeInputError",
    "FileTooLargeError",
    "LanguageSpec",
    "UnknownLanguageError",
    "chunk_file",
    "chunk_source",
    "detect_language",
    "error_spans",
    "get_language_spec",
    "grammar_versions",
    "has_errors",
    "load_language",
    "parse",
    "supported_extensions",
    "supported_languages",
]

"""The registry of programming languages that gpte parses with tree-sitter.

Each :class:`LanguageSpec` names the grammar wheel that provides the language (``tree-sitter-python`` and so on; the
modern API ``Language(tree_sitter_python.language())`` is used, grammars are never compiled), the file extensions and
shebang interpreters that select it, and the tree-sitter node types that :mod:`gpte.code.chunking` turns into chunks.

Node types chosen per language (the role decides the chunk ``kind``):

============ ====================================================== ================================================
language     functions / methods                                    classes (kind ``"class"``)
============ ====================================================== ================================================
python       ``function_definition`` (a method when in a class)     ``class_definition``
javascript   ``function_declaration``, ``generator_function_decl    ``class_declaration``
             aration``, ``variable_declarator`` whose value is an
             arrow/function expression, ``field_definition`` with
             a function value; methods: ``method_definition``
typescript,  as javascript (+ ``public_field_definition``)          ``class_declaration``, ``abstract_class_declar
tsx                                                                 ation``, ``interface_declaration``,
                                                                    ``enum_declaration``
java         methods: ``method_declaration``,                       ``class_declaration``, ``interface_declaration``,
             ``constructor_declaration``,                           ``enum_declaration``, ``record_declaration``,
             ``compact_constructor_declaration``                    ``annotation_type_declaration``
go           ``function_declaration``; methods:                     ``type_spec`` of a ``struct_type`` or
             ``method_declaration`` (parent = receiver type)        ``interface_type``
rust         ``function_item`` (a method inside ``impl``/``trait``) ``struct_item``, ``enum_item``, ``union_item``,
                                                                    ``trait_item``
c            ``function_definition``                                named ``struct``/``union``/``enum`` specifiers
                                                                    with a body (or named by their ``typedef``)
cpp          ``function_definition`` (a method inside a class or    ``class_specifier`` and named ``struct``/
             when declared ``Type::name``)                          ``union``/``enum`` specifiers with a body
============ ====================================================== ================================================

Scopes that prefix qualified names without being chunks themselves: Rust ``impl_item`` (class-like: methods get the
implemented type as parent) and ``mod_item``; C++ ``namespace_definition``; TypeScript ``internal_module``
(``namespace X {}``). Doc comments: Python docstrings; for the other languages the block of comments immediately
preceding the definition (node types in ``comments``), plus Rust inner doc comments (``//!``) at the start of an
item's body.

Language detection (:func:`detect_language`): the file extension first (``.h`` is C unless its head looks like C++),
then a ``#!`` shebang line (``#!/usr/bin/env python3``, ``#!/bin/node``, ``#!/usr/bin/env -S deno run``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tree_sitter import Language

__all__ = [
    "INSTALL_HINT",
    "LanguageSpec",
    "LANGUAGES",
    "detect_language",
    "get_language_spec",
    "grammar_versions",
    "load_language",
    "require_tree_sitter",
    "supported_extensions",
    "supported_languages",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "gpte[code]"'


@dataclass(frozen=True)
class LanguageSpec:
    """One language: where its grammar comes from, how files are recognised, which nodes become chunks."""

    name: str  # gpte's name for the language ("python", "tsx", ...)
    package: str | None  # distribution of the grammar wheel ("tree-sitter-python"); None: no grammar (plain text)
    module: str | None  # importable module of the grammar wheel ("tree_sitter_python")
    loader: str = "language"  # function of ``module`` returning the grammar pointer
    extensions: tuple[str, ...] = ()  # file extensions with the dot, lower case (".py")
    interpreters: tuple[str, ...] = ()  # shebang interpreter names ("python3", "node")
    functions: frozenset[str] = frozenset()  # node types of functions; methods when directly inside a class scope
    methods: frozenset[str] = frozenset()  # node types that are always methods (Java/Go/JS method declarations)
    classes: frozenset[str] = frozenset()  # class-like node types, chunked with kind "class"
    impls: frozenset[str] = frozenset()  # class-like scopes that are not chunks (Rust impl): parent of their methods
    namespaces: frozenset[str] = frozenset()  # scopes that only prefix qualified names (Rust mod, C++ namespace)
    comments: frozenset[str] = frozenset()  # comment node types that can form a preceding doc comment
    # wrapper node type -> the child type it must hold exactly one of (None: no condition); a wrapper around a
    # definition belongs to the definition's span (Python decorators, JS ``export``, C++ ``template<...>``)
    wrappers: Mapping[str, str | None] = field(default_factory=dict)
    attributes: frozenset[str] = frozenset()  # preceding sibling node types included in the span (Rust #[...])
    patterns: Mapping[str, str] = field(default_factory=dict)  # node type -> query pattern narrowing its matches
    docstrings: bool = False  # Python-style docstrings (first statement of the body)
    resync: str | None = None  # regex (on a line after its indentation) where error recovery may restart parsing

    @property
    def has_grammar(self) -> bool:
        """Whether tree-sitter parses this language (False for the plain-text fallback)."""
        return self.module is not None

    @property
    def definition_types(self) -> frozenset[str]:
        """All node types that may become definition chunks."""
        return self.functions | self.methods | self.classes

    def query_source(self) -> str:
        """The tree-sitter query that captures every candidate definition as ``@def``."""
        plain = sorted(t for t in self.definition_types if t not in self.patterns)
        parts = []
        if plain:
            parts.append("[" + " ".join(f"({t})" for t in plain) + "] @def")
        parts.extend(self.patterns[t] for t in sorted(self.patterns))
        return "\n".join(parts)


def _fs(*names: str) -> frozenset[str]:
    return frozenset(names)


_JS_FUNCTION_VALUE = "[(arrow_function) (function_expression) (generator_function)]"
_JS_FUNCTIONS = _fs("function_declaration", "generator_function_declaration", "variable_declarator", "field_definition")
_JS_WRAPPERS = MappingProxyType(
    {"export_statement": None, "lexical_declaration": "variable_declarator", "variable_declaration": "variable_declarator"}
)
_JS_PATTERNS = MappingProxyType(
    {
        "variable_declarator": f"(variable_declarator name: (identifier) value: {_JS_FUNCTION_VALUE}) @def",
        "field_definition": f"(field_definition value: {_JS_FUNCTION_VALUE}) @def",
    }
)
_TS_PATTERNS = MappingProxyType(
    {
        "variable_declarator": f"(variable_declarator name: (identifier) value: {_JS_FUNCTION_VALUE}) @def",
        "public_field_definition": f"(public_field_definition value: {_JS_FUNCTION_VALUE}) @def",
    }
)
_JS_RESYNC = (
    r"(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?"
    r"(?:function\b|class\b|interface\b|enum\b|namespace\b|(?:const|let|var)\s+[\w$]+\s*=)"
)
_C_RESYNC = r"(?!(?:return|if|else|while|for|do|switch|case|goto|break|continue)\b)[A-Za-z_][\w:<>,*&\s]*\("
_C_CLASS_PATTERNS = {
    "struct_specifier": "(struct_specifier body: (_)) @def",
    "union_specifier": "(union_specifier body: (_)) @def",
    "enum_specifier": "(enum_specifier body: (_)) @def",
}


def _typescript(name: str, loader: str, extensions: tuple[str, ...], interpreters: tuple[str, ...]) -> LanguageSpec:
    return LanguageSpec(
        name=name,
        package="tree-sitter-typescript",
        module="tree_sitter_typescript",
        loader=loader,
        extensions=extensions,
        interpreters=interpreters,
        functions=_fs("function_declaration", "generator_function_declaration", "variable_declarator",
                      "public_field_definition"),
        methods=_fs("method_definition"),
        classes=_fs("class_declaration", "abstract_class_declaration", "interface_declaration", "enum_declaration"),
        namespaces=_fs("internal_module"),
        comments=_fs("comment"),
        wrappers=_JS_WRAPPERS,
        patterns=_TS_PATTERNS,
        resync=_JS_RESYNC,
    )


_SPECS: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        package="tree-sitter-python",
        module="tree_sitter_python",
        extensions=(".py", ".pyi", ".pyw"),
        interpreters=("python", "python2", "python3", "pypy", "pypy3"),
        functions=_fs("function_definition"),
        classes=_fs("class_definition"),
        wrappers=MappingProxyType({"decorated_definition": None}),
        docstrings=True,
        resync=r"(?:async\s+def|def|class)\s|@",
    ),
    LanguageSpec(
        name="javascript",
        package="tree-sitter-javascript",
        module="tree_sitter_javascript",
        extensions=(".js", ".mjs", ".cjs", ".jsx"),
        interpreters=("node", "nodejs", "bun", "gjs"),
        functions=_JS_FUNCTIONS,
        methods=_fs("method_definition"),
        classes=_fs("class_declaration"),
        comments=_fs("comment"),
        wrappers=_JS_WRAPPERS,
        patterns=_JS_PATTERNS,
        resync=_JS_RESYNC,
    ),
    _typescript("typescript", "language_typescript", (".ts", ".mts", ".cts"), ("deno", "ts-node", "tsx")),
    _typescript("tsx", "language_tsx", (".tsx",), ()),
    LanguageSpec(
        name="java",
        package="tree-sitter-java",
        module="tree_sitter_java",
        extensions=(".java",),
        interpreters=("java",),
        methods=_fs("method_declaration", "constructor_declaration", "compact_constructor_declaration"),
        classes=_fs("class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                    "annotation_type_declaration"),
        comments=_fs("line_comment", "block_comment"),
        resync=r"(?:@\w+|(?:public|protected|private|static|final|abstract|synchronized|native|default|class|"
        r"interface|enum|record|void)\b)",
    ),
    LanguageSpec(
        name="go",
        package="tree-sitter-go",
        module="tree_sitter_go",
        extensions=(".go",),
        functions=_fs("function_declaration"),
        methods=_fs("method_declaration"),
        classes=_fs("type_spec"),
        comments=_fs("comment"),
        wrappers=MappingProxyType({"type_declaration": "type_spec"}),
        patterns=MappingProxyType({"type_spec": "(type_spec type: [(struct_type) (interface_type)]) @def"}),
        resync=r"(?:func|type)\s",
    ),
    LanguageSpec(
        name="rust",
        package="tree-sitter-rust",
        module="tree_sitter_rust",
        extensions=(".rs",),
        interpreters=("rust-script", "run-cargo-script"),
        functions=_fs("function_item"),
        classes=_fs("struct_item", "enum_item", "union_item", "trait_item"),
        impls=_fs("impl_item"),
        namespaces=_fs("mod_item"),
        comments=_fs("line_comment", "block_comment"),
        attributes=_fs("attribute_item"),
        resync=r"(?:pub(?:\([^)]*\))?\s+)?(?:(?:async|unsafe|const|default|extern\s+\"[^\"]*\")\s+)*"
        r"(?:fn|struct|enum|union|trait|impl|mod)\b|#\[",
    ),
    LanguageSpec(
        name="c",
        package="tree-sitter-c",
        module="tree_sitter_c",
        extensions=(".c", ".h"),
        interpreters=("tcc",),
        functions=_fs("function_definition"),
        classes=_fs(*_C_CLASS_PATTERNS),
        comments=_fs("comment"),
        wrappers=MappingProxyType({"type_definition": None}),
        patterns=MappingProxyType(dict(_C_CLASS_PATTERNS)),
        resync=_C_RESYNC,
    ),
    LanguageSpec(
        name="cpp",
        package="tree-sitter-cpp",
        module="tree_sitter_cpp",
        extensions=(".cc", ".cpp", ".cxx", ".c++", ".cp", ".hh", ".hpp", ".hxx", ".h++", ".ipp", ".inl", ".tcc"),
        functions=_fs("function_definition"),
        classes=_fs("class_specifier", *_C_CLASS_PATTERNS),
        namespaces=_fs("namespace_definition"),
        comments=_fs("comment"),
        wrappers=MappingProxyType({"template_declaration": None, "type_definition": None}),
        patterns=MappingProxyType({**_C_CLASS_PATTERNS, "class_specifier": "(class_specifier body: (_)) @def"}),
        resync=_C_RESYNC,
    ),
    # Plain text: no grammar, chunked into line windows only. Never detected; pass language="text" explicitly.
    LanguageSpec(name="text", package=None, module=None),
)

LANGUAGES: Mapping[str, LanguageSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})

_EXTENSIONS: dict[str, str] = {ext: spec.name for spec in _SPECS for ext in spec.extensions}
_CASE_SENSITIVE_EXTENSIONS = {".C": "cpp", ".H": "cpp"}  # upper-case C/H conventionally mean C++
_INTERPRETERS: dict[str, str] = {name: spec.name for spec in _SPECS for name in spec.interpreters}
_VERSIONED_INTERPRETER = re.compile(r"^(python|pypy)\d+(?:\.\d+)*$")
_CPP_HEADER_HINT = re.compile(rb"^\s*(?:class\s+\w+\s*[:{]|namespace\s+\w*\s*\{|template\s*<|(?:public|private|protected)\s*:)",
                              re.MULTILINE)


def supported_languages() -> list[str]:
    """Names of the languages with a tree-sitter grammar (the plain-text fallback ``"text"`` excluded)."""
    return [spec.name for spec in _SPECS if spec.has_grammar]


def supported_extensions() -> list[str]:
    """File extensions that :func:`detect_language` recognises, sorted."""
    return sorted(_EXTENSIONS)


def get_language_spec(language: str) -> LanguageSpec:
    """The :class:`LanguageSpec` registered under ``language``; ``KeyError`` names the known languages."""
    try:
        return LANGUAGES[language]
    except KeyError:
        raise KeyError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}") from None


def require_tree_sitter() -> Any:
    """Import and return the ``tree_sitter`` module, or raise ImportError with the install hint."""
    try:
        import tree_sitter
    except ImportError as exc:
        raise ImportError(f"gpte.code needs tree-sitter and its grammar wheels: {INSTALL_HINT}") from exc
    return tree_sitter


@functools.cache
def load_language(language: str) -> Language:
    """The tree-sitter ``Language`` of ``language``, loaded once from its grammar wheel."""
    spec = get_language_spec(language)
    if not spec.has_grammar:
        raise ValueError(f"language {language!r} has no tree-sitter grammar (it is chunked into line windows)")
    tree_sitter = require_tree_sitter()
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise ImportError(
            f"the {language} grammar is not installed: pip install {spec.package} (or {INSTALL_HINT})"
        ) from exc
    return tree_sitter.Language(getattr(module, spec.loader)())


def _shebang_language(head: bytes) -> str | None:
    if not head.startswith(b"#!") or head.startswith(b"#!["):  # "#![...]" opens a Rust inner attribute
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    words = line.split()
    if not words:
        return None
    program = PurePath(words[0]).name
    if program == "env":  # "#!/usr/bin/env -S node --flag", "#!/usr/bin/env VAR=1 python3"
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        if not rest:
            return None
        program = PurePath(rest[0]).name
    if program in _INTERPRETERS:
        return _INTERPRETERS[program]
    match = _VERSIONED_INTERPRETER.match(program)
    return "python" if match else None


def detect_language(path: str | PurePath | None, head: bytes | None = None) -> str | None:
    """The language of a file from its extension, else from the shebang in ``head`` (its first bytes); None if unknown.

    ``.h`` is C unless ``head`` contains C++-only syntax (a class, namespace, template or access specifier).
    """
    if path is not None:
        suffix = PurePath(path).suffix
        if suffix in _CASE_SENSITIVE_EXTENSIONS:
            return _CASE_SENSITIVE_EXTENSIONS[suffix]
        language = _EXTENSIONS.get(suffix.lower())
        if language is not None:
            if language == "c" and suffix.lower() == ".h" and head and _CPP_HEADER_HINT.search(head):
                return "cpp"
            return language
    if head:
        return _shebang_language(head)
    return None


def grammar_versions(languages: list[str] | None = None) -> dict[str, str]:
    """Versions to save with a model: ``tree-sitter`` and, per installed language, its wheel version and ABI.

    Example: ``{"tree-sitter": "0.26.1", "python": "tree-sitter-python==0.25.0; abi=15", ...}``. Languages whose
    grammar wheel is missing are left out (and logged at debug level).
    """
    require_tree_sitter()
    versions = {"tree-sitter": importlib.metadata.version("tree-sitter")}
    for name in languages if languages is not None else supported_languages():
        spec = get_language_spec(name)
        if not spec.has_grammar:
            continue
        try:
            abi = load_language(name).abi_version
            version = importlib.metadata.version(spec.package)
        except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
            logger.debug("grammar for %s not available: %s", name, exc)
            continue
        versions[name] = f"{spec.package}=={version}; abi={abi}"
    return versions

"""The language registry, language detection, grammar versions and error-tolerant parsing."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from gpte.code import detect_language, get_language_spec, supported_extensions, supported_languages
from gpte.code.languages import load_language, require_tree_sitter

ALL_LANGUAGES = ["python", "javascript", "typescript", "tsx", "java", "go", "rust", "c", "cpp"]


@pytest.mark.parametrize(
    ("path", "head", "expected"),
    [
        ("pkg/mod.py", None, "python"),
        ("stubs/mod.pyi", None, "python"),
        ("web/app.js", None, "javascript"),
        ("web/app.mjs", None, "javascript"),
        ("web/app.jsx", None, "javascript"),
        ("web/app.ts", None, "typescript"),
        ("web/App.tsx", None, "tsx"),
        ("src/Main.java", None, "java"),
        ("cmd/main.go", None, "go"),
        ("src/lib.rs", b"#![allow(dead_code)]\n", "rust"),
        ("src/x.c", None, "c"),
        ("include/x.h", None, "c"),
        ("include/x.h", b"#pragma once\nnamespace geo {\nclass Shape;\n}\n", "cpp"),
        ("include/x.h", b"struct point { int x; };\n", "c"),
        ("src/x.cc", None, "cpp"),
        ("src/x.hpp", None, "cpp"),
        ("src/x.C", None, "cpp"),
        ("SRC/X.PY", None, "python"),
        ("bin/tool", b"#!/usr/bin/env python3\nprint(1)\n", "python"),
        ("bin/tool", b"#!/usr/bin/python3.11 -u\n", "python"),
        ("bin/tool", b"#!/bin/node\n", "javascript"),
        ("bin/tool", b"#!/usr/bin/env -S node --no-warnings\n", "javascript"),
        ("bin/tool", b"#!/usr/bin/env NODE_ENV=prod node\n", "javascript"),
        ("bin/tool", b"#!/usr/bin/env deno\n", "typescript"),
        ("bin/tool", b"#!/bin/sh\necho\n", None),
        ("bin/tool", b"#![no_std]\n", None),
        ("bin/tool", None, None),
        ("notes.xyz", b"hello", None),
        (None, b"#!/usr/bin/env python\n", "python"),
    ],
)
def test_detect_language(path, head, expected):
    assert detect_language(path, head) == expected


def test_registry_lists_every_language_and_extension():
    assert supported_languages() == ALL_LANGUAGES
    extensions = supported_extensions()
    assert {".py", ".js", ".ts", ".tsx", ".java", ".go", ".rs", ".c", ".h", ".cpp", ".hpp"} <= set(extensions)
    assert extensions == sorted(extensions)
    assert get_language_spec("tsx").loader == "language_tsx"
    assert get_language_spec("typescript").loader == "language_typescript"
    with pytest.raises(KeyError, match="known: python"):
        get_language_spec("cobol")


def test_every_grammar_loads_and_its_definition_query_compiles():
    pytest.importorskip("tree_sitter")
    from gpte.code.parsing import query

    for language in ALL_LANGUAGES:
        pytest.importorskip(get_language_spec(language).module)
        assert load_language(language) is load_language(language)  # cached
        assert query(language, get_language_spec(language).query_source()).pattern_count >= 1


def test_grammar_versions_name_packages_and_abi():
    pytest.importorskip("tree_sitter")
    from gpte.code import grammar_versions

    versions = grammar_versions()
    assert versions["tree-sitter"] == importlib.metadata.version("tree-sitter")
    python = importlib.metadata.version("tree-sitter-python")
    assert versions["python"] == f"tree-sitter-python=={python}; abi={load_language('python').abi_version}"
    assert versions["tsx"].startswith("tree-sitter-typescript==")
    assert grammar_versions(["go"]).keys() == {"tree-sitter", "go"}


def test_parse_is_error_tolerant_and_reports_errors():
    pytest.importorskip("tree_sitter_python")
    from gpte.code import error_spans, has_errors, parse
    from gpte.code.parsing import get_parser

    good = parse("def f():\n    return 1\n", "python")
    assert not has_errors(good) and error_spans(good) == []
    assert good.root_node.children[0].type == "function_definition"
    bad = parse(b"def f(:\n    return 1\n\nx = [1, 2\n", "python")
    assert has_errors(bad) and error_spans(bad)
    assert all(0 <= start <= end <= 32 for start, end in error_spans(bad))
    assert get_parser("python") is get_parser("python")
    with pytest.raises(KeyError, match="cobol"):
        parse("x", "cobol")


def test_missing_grammar_wheel_gives_install_hint(monkeypatch):
    pytest.importorskip("tree_sitter")
    monkeypatch.setitem(sys.modules, "tree_sitter_rust", None)  # makes "import tree_sitter_rust" fail
    load_language.cache_clear()
    try:
        with pytest.raises(ImportError, match=r'pip install tree-sitter-rust \(or pip install "gpte\[code\]"\)'):
            load_language("rust")
    finally:
        load_language.cache_clear()


def test_missing_tree_sitter_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tree_sitter", None)
    with pytest.raises(ImportError, match=r'pip install "gpte\[code\]"'):
        require_tree_sitter()


def test_package_imports_without_tree_sitter():
    code = (
        "import sys; sys.modules['tree_sitter'] = None\n"
        "import gpte.code as c\n"
        "assert c.detect_language('a.rs') == 'rust'\n"
        "assert [x.kind for x in c.chunk_source('a\\nb\\n', 'text', 'n.txt')] == ['window']\n"
        "try:\n    c.chunk_source('x = 1\\n', 'python', 'a.py')\n"
        "except ImportError as e:\n    assert 'gpte[code]' in str(e)\nelse:\n    raise SystemExit('no error')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

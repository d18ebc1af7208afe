"""Chunking real snippets of every supported language: names, kinds, scopes, doc comments, spans and stable ids."""

from __future__ import annotations

import pytest

pytest.importorskip("tree_sitter")

from gpte.code import (  # noqa: E402
    BinaryFileError,
    Chunk,
    ChunkConfig,
    FileTooLargeError,
    UnknownLanguageError,
    chunk_file,
    chunk_source,
)


def _need(module: str) -> None:
    pytest.importorskip(module)


def _defs(chunks: list[Chunk]) -> list[tuple[str, str | None, str | None, int, int]]:
    """(kind, qualname, parent, start_line, end_line) of the definition chunks, in source order."""
    return [(c.kind, c.qualname, c.parent, c.start_line, c.end_line) for c in chunks if c.kind != "window"]


def _by_name(chunks: list[Chunk]) -> dict[str, Chunk]:
    return {c.qualname: c for c in chunks if c.kind != "window"}


def _check_spans(chunks: list[Chunk], source: str) -> None:
    """Every non-class chunk's text is exactly its byte span of the source; lines match the bytes."""
    data = source.encode()
    for chunk in chunks:
        assert data[: chunk.start_byte].count(b"\n") + 1 == chunk.start_line, chunk.qualname
        if chunk.kind != "class":
            assert data[chunk.start_byte : chunk.end_byte].decode() == chunk.text, chunk.qualname
        assert chunk.path == "src/example"
        assert len(chunk.id) == 40 and len(chunk.content_hash) == 64


# ------------------------------------------------------------------------------------------------------------ python

PYTHON = '''\
"""Module docstring."""
import os


def helper(x):
    """Return x."""
    return x


@decorator
class Stack(Base):
    """A stack."""

    limit = 10

    def push(self, item):
        """Push an item."""
        self.items.append(item)

    async def pop(self):
        return self.items.pop()

    class Node:
        def value(self):
            def inner():
                return 1
            return inner()
'''


def test_python_definitions_scopes_and_spans():
    _need("tree_sitter_python")
    chunks = chunk_source(PYTHON, "python", "src/example")
    assert _defs(chunks) == [
        ("function", "helper", None, 5, 7),
        ("class", "Stack", None, 10, 27),
        ("method", "Stack.push", "Stack", 16, 18),
        ("method", "Stack.pop", "Stack", 20, 21),
        ("class", "Stack.Node", "Stack", 23, 27),
        ("method", "Stack.Node.value", "Node", 24, 27),  # inner() belongs to value(), no chunk of its own
    ]
    assert not [c for c in chunks if c.kind == "window"]  # 2 lines of top-level code: below min_window_lines
    _check_spans(chunks, PYTHON)
    named = _by_name(chunks)
    assert named["helper"].doc == "Return x."
    assert named["helper"].signature == "def helper(x):"
    assert named["helper"].symbol == "helper" and named["helper"].node_type == "function_definition"
    assert named["Stack"].doc == "A stack."
    assert named["Stack"].signature == "class Stack(Base):"
    assert named["Stack.push"].doc == "Push an item."
    assert named["Stack.pop"].doc is None
    assert named["Stack.pop"].signature == "async def pop(self):"
    assert named["Stack.push"].code == "def push(self, item):\n        self.items.append(item)"
    assert named["Stack.pop"].code == named["Stack.pop"].text


def test_python_class_chunk_is_an_outline():
    _need("tree_sitter_python")
    stack = _by_name(chunk_source(PYTHON, "python", "src/example"))["Stack"]
    assert stack.text.startswith('@decorator\nclass Stack(Base):\n    """A stack."""\n\n    limit = 10\n')
    assert "    def push(self, item):\n        ...\n" in stack.text
    assert "append" not in stack.text and "Push an item" not in stack.text
    assert '"""A stack."""' not in stack.code and "limit = 10" in stack.code
    data = PYTHON.encode()
    assert data[stack.start_byte : stack.end_byte].decode().endswith("return inner()")  # span: the whole class


def test_python_docstring_forms():
    _need("tree_sitter_python")
    source = (
        "def a():\n    # a comment first\n    '''Single quotes.'''\n\n"
        "def b():\n    r\"\"\"Raw \\d docstring.\n\n        Indented body.\n    \"\"\"\n\n"
        "def c():\n    f\"\"\"Not a docstring {x}.\"\"\"\n\n"
        "def d(): return 1\n"
    )
    named = _by_name(chunk_source(source, "python", "m.py"))
    assert named["a"].doc == "Single quotes."
    assert named["a"].signature == "def a():"
    assert named["b"].doc == "Raw \\d docstring.\n\nIndented body."
    assert named["c"].doc is None
    assert named["d"].doc is None and named["d"].signature == "def d():"


# -------------------------------------------------------------------------------------------------------- javascript

JAVASCRIPT = """\
/**
 * Adds two numbers.
 * @param {number} a
 */
export function add(a, b) {
  return a + b;
}

// Multiplies.
const mul = (a, b) => a * b;

class Counter extends Base {
  // Creates a counter.
  constructor() {
    this.n = 0;
  }

  increment = () => {
    this.n += 1;
  };

  static *ids() {
    yield 1;
  }
}

const settings = { retries: 3 };
"""


def test_javascript_definitions():
    _need("tree_sitter_javascript")
    chunks = chunk_source(JAVASCRIPT, "javascript", "src/example")
    assert _defs(chunks) == [
        ("function", "add", None, 5, 7),
        ("function", "mul", None, 10, 10),
        ("class", "Counter", None, 12, 25),
        ("method", "Counter.constructor", "Counter", 14, 16),
        ("method", "Counter.increment", "Counter", 18, 20),
        ("method", "Counter.ids", "Counter", 22, 24),
    ]
    _check_spans(chunks, JAVASCRIPT)
    named = _by_name(chunks)
    assert named["add"].doc == "Adds two numbers.\n@param {number} a"
    assert named["add"].signature == "export function add(a, b)"
    assert named["add"].text.startswith("export function add")
    assert named["mul"].doc == "Multiplies."
    assert named["mul"].signature == "const mul = (a, b) =>"
    assert named["Counter.constructor"].doc == "Creates a counter."
    assert named["Counter"].signature == "class Counter extends Base"
    assert "increment = () => { ... };" in named["Counter"].text


# -------------------------------------------------------------------------------------------------------- typescript

TYPESCRIPT = """\
namespace Geometry {
  /** A shape with an area. */
  export interface Shape {
    area(): number;
  }

  export class Circle implements Shape {
    constructor(private r: number) {}

    /** The area. */
    area(): number {
      return Math.PI * this.r ** 2;
    }
  }
}

export const square = (x: number): number => x * x;

function overload(a: string): void;
function overload(a: any): void {}

enum Color { Red, Green }
"""


def test_typescript_definitions():
    _need("tree_sitter_typescript")
    chunks = chunk_source(TYPESCRIPT, "typescript", "src/example")
    assert _defs(chunks) == [
        ("class", "Geometry.Shape", None, 3, 5),
        ("class", "Geometry.Circle", None, 7, 14),
        ("method", "Geometry.Circle.constructor", "Circle", 8, 8),
        ("method", "Geometry.Circle.area", "Circle", 11, 13),
        ("function", "square", None, 17, 17),
        ("function", "overload", None, 20, 20),  # the body-less overload signature is not a chunk
        ("class", "Color", None, 22, 22),
    ]
    _check_spans(chunks, TYPESCRIPT)
    named = _by_name(chunks)
    assert named["Geometry.Shape"].doc == "A shape with an area."
    assert named["Geometry.Circle.area"].doc == "The area."
    assert named["Geometry.Circle.area"].signature == "area(): number"
    assert named["square"].signature == "export const square = (x: number): number =>"


def test_tsx_uses_its_own_grammar():
    _need("tree_sitter_typescript")
    source = "const App = (props: Props) => {\n  return <div>{props.x}</div>;\n};\n"
    chunks = chunk_file(source.encode(), path="ui/App.tsx")
    assert [(c.language, c.kind, c.qualname, c.has_error) for c in chunks] == [("tsx", "function", "App", False)]
    assert chunk_source(source, "typescript", "ui/App.ts")[0].has_error  # JSX is an error for the .ts grammar


# -------------------------------------------------------------------------------------------------------------- java

JAVA = """\
package demo;

/**
 * A bounded stack.
 */
@SuppressWarnings("unchecked")
public class Stack<T> {
    private final Object[] items;

    /** Creates an empty stack. */
    public Stack(int capacity) {
        items = new Object[capacity];
    }

    // Pushes an item.
    public void push(T item) {
        items[size++] = item;
    }

    interface Visitor {
        void visit(Object o);
    }

    enum Mode { LIFO, FIFO }
}
"""


def test_java_definitions():
    _need("tree_sitter_java")
    chunks = chunk_source(JAVA, "java", "src/example")
    assert _defs(chunks) == [
        ("class", "Stack", None, 6, 25),
        ("method", "Stack.Stack", "Stack", 11, 13),
        ("method", "Stack.push", "Stack", 16, 18),
        ("class", "Stack.Visitor", "Stack", 20, 22),  # visit() has no body: no chunk
        ("class", "Stack.Mode", "Stack", 24, 24),
    ]
    _check_spans(chunks, JAVA)
    named = _by_name(chunks)
    assert named["Stack"].doc == "A bounded stack."
    assert named["Stack.Stack"].doc == "Creates an empty stack."
    assert named["Stack.push"].doc == "Pushes an item."
    assert named["Stack.push"].signature == "public void push(T item)"
    assert "public void push(T item) { ... }" in named["Stack"].text


# ---------------------------------------------------------------------------------------------------------------- go

GO = """\
package shapes

import "math"

// Circle is a round shape.
type Circle struct {
\tR float64
}

// Area returns the area.
// It never fails.
func (c *Circle) Area() float64 {
\treturn math.Pi * c.R * c.R
}

type Shape interface {
\tArea() float64
}

// New makes a circle.
func New(r float64) *Circle {
\treturn &Circle{R: r}
}
"""


def test_go_definitions():
    _need("tree_sitter_go")
    chunks = chunk_source(GO, "go", "src/example")
    assert _defs(chunks) == [
        ("class", "Circle", None, 6, 8),
        ("method", "Circle.Area", "Circle", 12, 14),
        ("class", "Shape", None, 16, 18),
        ("function", "New", None, 21, 23),
    ]
    _check_spans(chunks, GO)
    named = _by_name(chunks)
    assert named["Circle"].doc == "Circle is a round shape."
    assert named["Circle"].signature == "type Circle struct"
    assert named["Circle.Area"].doc == "Area returns the area.\nIt never fails."
    assert named["Circle.Area"].signature == "func (c *Circle) Area() float64"
    assert named["Shape"].doc is None
    assert named["New"].doc == "New makes a circle."


# -------------------------------------------------------------------------------------------------------------- rust

RUST = """\
//! Geometry.

use std::fmt;

/// A point in the plane.
#[derive(Debug, Clone)]
pub struct Point {
    x: f64,
}

impl Point {
    /// Creates a point.
    pub fn new(x: f64) -> Self {
        Point { x }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        //! Writes the point.
        write!(f, "{}", self.x)
    }
}

pub trait Shape {
    fn area(&self) -> f64;
    fn name(&self) -> String {
        String::from("shape")
    }
}

mod util {
    pub fn clamp(v: f64) -> f64 { v }
}

pub enum Kind { A, B }
"""


def test_rust_definitions():
    _need("tree_sitter_rust")
    chunks = chunk_source(RUST, "rust", "src/example")
    assert _defs(chunks) == [
        ("class", "Point", None, 6, 9),  # the span starts at the #[derive] attribute
        ("method", "Point.new", "Point", 13, 15),
        ("method", "Point.fmt", "Point", 19, 22),
        ("class", "Shape", None, 25, 30),
        ("method", "Shape.name", "Shape", 27, 29),  # area() has no body
        ("function", "util.clamp", None, 33, 33),
        ("class", "Kind", None, 36, 36),
    ]
    _check_spans(chunks, RUST)
    named = _by_name(chunks)
    assert named["Point"].doc == "A point in the plane."
    assert named["Point"].text.startswith("#[derive(Debug, Clone)]\npub struct Point {")
    assert named["Point"].signature == "pub struct Point"
    assert named["Point.new"].doc == "Creates a point."
    assert named["Point.fmt"].doc == "Writes the point."  # inner doc comment of the function
    assert named["Shape"].text == (
        "pub trait Shape {\n    fn area(&self) -> f64;\n    fn name(&self) -> String { ... }\n}"
    )


# ----------------------------------------------------------------------------------------------------------------- c

C_SOURCE = """\
#include <stdlib.h>

/* A 2-D point. */
typedef struct point {
    int x, y;
} point_t;

typedef struct {
    int w;
} size2_t;

/**
 * Adds two integers.
 */
static int add(int a, int b) {
    return a + b;
}

// Duplicates a string.
char *dup(const char *s) {
    return strdup(s);
}
"""


def test_c_definitions():
    _need("tree_sitter_c")
    chunks = chunk_source(C_SOURCE, "c", "src/example")
    assert _defs(chunks) == [
        ("class", "point", None, 4, 6),
        ("class", "size2_t", None, 8, 10),  # an anonymous struct takes its typedef name
        ("function", "add", None, 15, 17),
        ("function", "dup", None, 20, 22),
    ]
    _check_spans(chunks, C_SOURCE)
    named = _by_name(chunks)
    assert named["point"].doc == "A 2-D point."
    assert named["add"].doc == "Adds two integers."
    assert named["add"].signature == "static int add(int a, int b)"
    assert named["dup"].doc == "Duplicates a string."
    assert named["dup"].signature == "char *dup(const char *s)"


# --------------------------------------------------------------------------------------------------------------- c++

CPP = """\
#include <string>

namespace geo {

/// A shape.
template <typename T>
class Shape : public Base {
 public:
  Shape() = default;
  // Returns the area.
  virtual double area() const {
    return 0.0;
  }
  bool operator==(const Shape& other) const { return true; }
  void scale(double k);
};

struct Point { int x; };

}  // namespace geo

void geo::Shape::scale(double k) {
  (void)k;
}

int main() { return 0; }
"""


def test_cpp_definitions():
    _need("tree_sitter_cpp")
    chunks = chunk_source(CPP, "cpp", "src/example")
    assert _defs(chunks) == [
        ("class", "geo.Shape", None, 6, 16),
        ("method", "geo.Shape.area", "Shape", 11, 13),
        ("method", "geo.Shape.operator==", "Shape", 14, 14),
        ("class", "geo.Point", None, 18, 18),
        ("method", "geo.Shape.scale", "Shape", 22, 24),  # defined out of line as geo::Shape::scale
        ("function", "main", None, 26, 26),
    ]
    _check_spans(chunks, CPP)
    named = _by_name(chunks)
    assert named["geo.Shape"].doc == "A shape."
    assert named["geo.Shape"].signature == "template <typename T>\nclass Shape : public Base"
    assert named["geo.Shape.area"].doc == "Returns the area."
    assert named["geo.Shape.scale"].doc is None  # "// namespace geo" trails a brace two lines above
    assert named["geo.Shape.scale"].symbol == "scale"


# -------------------------------------------------------------------------------------------------------- stable ids


def _ids(chunks: list[Chunk]) -> dict[str, str]:
    return {c.qualname: c.id for c in chunks if c.kind != "window"}


def test_ids_stable_across_unrelated_edits_python():
    _need("tree_sitter_python")
    before = chunk_source(PYTHON, "python", "pkg/mod.py")
    ids = _ids(before)
    assert len(set(ids.values())) == len(ids)

    shifted = chunk_source("# a new comment\nimport sys\n\n" + PYTHON, "python", "pkg/mod.py")
    assert _ids(shifted) == ids
    assert [c.start_line for c in shifted if c.kind != "window"] == [
        c.start_line + 3 for c in before if c.kind != "window"
    ]

    edited = chunk_source(PYTHON.replace("    return x\n", "    y = x * 2\n    return y\n"), "python", "pkg/mod.py")
    assert _ids(edited) == ids
    changed = {q for q, c in _by_name(edited).items() if c.content_hash != _by_name(before)[q].content_hash}
    assert changed == {"helper"}

    renamed = _ids(chunk_source(PYTHON.replace("def push(", "def push_item("), "python", "pkg/mod.py"))
    assert set(renamed) == set(ids) - {"Stack.push"} | {"Stack.push_item"}
    assert {q: i for q, i in renamed.items() if q != "Stack.push_item"} == {
        q: i for q, i in ids.items() if q != "Stack.push"
    }
    assert renamed["Stack.push_item"] != ids["Stack.push"]

    assert _ids(chunk_source(PYTHON, "python", "pkg/other.py"))["helper"] != ids["helper"]  # the path is part of it


def test_ids_stable_across_unrelated_edits_go():
    _need("tree_sitter_go")
    ids = _ids(chunk_source(GO, "go", "shapes.go"))
    edited = GO.replace('import "math"\n', 'import (\n\t"fmt"\n\t"math"\n)\n').replace(
        "\treturn &Circle{R: r}\n", '\tfmt.Println("new")\n\treturn &Circle{R: r}\n'
    )
    assert _ids(chunk_source(edited, "go", "shapes.go")) == ids


def test_repeated_names_get_distinct_stable_ids():
    _need("tree_sitter_python")
    source = (
        "class A:\n    @property\n    def x(self):\n        return 1\n\n"
        "    @x.setter\n    def x(self, v):\n        pass\n"
    )
    chunks = [c for c in chunk_source(source, "python", "a.py") if c.kind == "method"]
    assert [c.qualname for c in chunks] == ["A.x", "A.x"]
    assert chunks[0].id != chunks[1].id
    again = [c for c in chunk_source("\n\n" + source, "python", "a.py") if c.kind == "method"]
    assert [c.id for c in again] == [c.id for c in chunks]


# -------------------------------------------------------------------------------------------------- error tolerance

BROKEN_PYTHON = """\
def good1(a):
    return a

def broken(x:
    return (x +

def good2(b):
    \"\"\"Doc.\"\"\"
    return b
"""

BROKEN_C = """\
int good1(int a) {
  return a;
}

int broken(int x) {
  return (x + ;

int good2(int b) {
  return b;
}
"""


def test_python_syntax_error_keeps_good_definitions():
    _need("tree_sitter_python")
    chunks = chunk_source(BROKEN_PYTHON, "python", "b.py")
    good = [(c.qualname, c.start_line, c.end_line, c.doc) for c in chunks if not c.has_error]
    assert good == [("good1", 1, 2, None), ("good2", 7, 9, "Doc.")]
    broken = [c for c in chunks if c.has_error]
    assert [(c.kind, c.start_line, c.end_line) for c in broken] == [("window", 4, 5)]  # kept for search
    assert "def broken(x:" in broken[0].text


def test_python_syntax_error_inside_a_class():
    _need("tree_sitter_python")
    source = (
        "class A:\n    def good1(self):\n        return 1\n\n    def broken(self, x:\n        return (x +\n\n"
        "    def good2(self):\n        return 2\n\ndef after():\n    pass\n"
    )
    chunks = chunk_source(source, "python", "c.py")
    assert [(c.kind, c.qualname, c.has_error) for c in chunks if c.kind != "window"] == [
        ("class", "A", True),
        ("method", "A.good1", False),
        ("method", "A.good2", False),
        ("function", "after", False),
    ]


def test_c_syntax_error_keeps_good_definitions():
    _need("tree_sitter_c")
    chunks = chunk_source(BROKEN_C, "c", "b.c")
    good = [(c.qualname, c.start_line, c.end_line) for c in chunks if not c.has_error]
    assert good == [("good1", 1, 3), ("good2", 8, 10)]
    assert [c.qualname for c in chunks if c.has_error] == ["broken"]


def test_javascript_syntax_error_keeps_good_definitions():
    _need("tree_sitter_javascript")
    source = (
        "function good1(a) {\n  return a;\n}\n\nfunction broken(x) {\n  return (x + ;\n\n"
        "function good2(b) {\n  return b;\n}\n"
    )
    chunks = chunk_source(source, "javascript", "b.js")
    good = [(c.qualname, c.start_line, c.end_line) for c in chunks if not c.has_error]
    assert good == [("good1", 1, 3), ("good2", 8, 10)]


def test_recovery_can_be_turned_off():
    _need("tree_sitter_python")
    chunks = chunk_source(BROKEN_PYTHON, "python", "b.py", config=ChunkConfig(recover=False))
    assert "good2" not in [c.qualname for c in chunks]  # tree-sitter alone lets the error swallow good2


# ------------------------------------------------------------------------------------------------------------ windows


def test_file_without_definitions_becomes_overlapping_windows():
    _need("tree_sitter_python")
    source = "".join(f"x{i} = {i}\n" for i in range(1, 101))
    chunks = chunk_source(source, "python", "script.py")
    assert [(c.kind, c.start_line, c.end_line) for c in chunks] == [("window", 1, 60), ("window", 51, 100)]
    assert chunks[0].text.split("\n")[0] == "x1 = 1" and chunks[0].text.split("\n")[-1] == "x60 = 60"
    assert chunks[1].text.split("\n")[0] == "x51 = 51" and chunks[1].text.endswith("x100 = 100")
    assert chunks[0].symbol is None and chunks[0].qualname is None and chunks[0].doc is None
    assert len({c.id for c in chunks}) == 2
    small = chunk_source(source, "python", "script.py", config=ChunkConfig(window_lines=30, window_overlap=0))
    assert [(c.start_line, c.end_line) for c in small] == [(1, 30), (31, 60), (61, 90), (91, 100)]


def test_plain_text_language_is_windowed():
    chunks = chunk_source("\n\nfirst line\nsecond line\n\n", "text", "notes.txt")
    assert [(c.kind, c.start_line, c.end_line, c.text) for c in chunks] == [
        ("window", 3, 4, "first line\nsecond line")
    ]
    assert chunk_source("   \n\n", "text", "empty.txt") == []


def test_substantial_top_level_code_between_definitions_is_windowed():
    _need("tree_sitter_python")
    top = "".join(f"CONSTANT_{i} = {i}\n" for i in range(6))
    source = "def f():\n    pass\n\n" + top + "\ndef g():\n    pass\n\nx = 1\n"
    chunks = chunk_source(source, "python", "m.py")
    assert [(c.kind, c.qualname, c.start_line, c.end_line) for c in chunks] == [
        ("function", "f", 1, 2),
        ("window", None, 4, 9),  # 6 lines of constants; the single trailing line is too small
        ("function", "g", 11, 12),
    ]
    assert chunks[1].text == top.rstrip("\n")
    off = chunk_source(source, "python", "m.py", config=ChunkConfig(top_level_windows=False))
    assert [c.kind for c in off] == ["function", "function"]


def test_huge_definition_is_split_into_parts():
    _need("tree_sitter_python")
    body = "".join(f"    v{i} = {i}\n" for i in range(29))
    source = "# header\ndef big():\n    \"\"\"Big.\"\"\"\n" + body + "\ndef small():\n    pass\n"
    config = ChunkConfig(window_lines=10, window_overlap=2, max_chunk_lines=20)
    chunks = [c for c in chunk_source(source, "python", "big.py", config=config) if c.qualname == "big"]
    assert [(c.part, c.num_parts, c.start_line, c.end_line) for c in chunks] == [
        (0, 4, 2, 11), (1, 4, 10, 19), (2, 4, 18, 27), (3, 4, 26, 32),
    ]
    assert all(c.kind == "function" and c.doc == "Big." and c.signature == "def big():" for c in chunks)
    assert chunks[0].text.startswith("def big():") and '"""Big."""' not in chunks[0].code
    assert chunks[-1].text.endswith("v28 = 28")
    assert len({c.id for c in chunks}) == 4
    whole = chunk_source(source, "python", "big.py")  # default cap: one chunk, same id as the first part
    assert [c.id for c in whole if c.qualname == "big"] == [chunks[0].id]


# ---------------------------------------------------------------------------------------------------------- bad input


def test_invalid_utf8_keeps_byte_spans():
    _need("tree_sitter_python")
    data = b'def f():\n    return "caf\xe9 \xff"\n\ndef g():\n    pass\n'
    chunks = chunk_source(data, "python", "latin1.py")
    f, g = chunks
    assert "\ufffd" in f.text and f.text.startswith("def f():")
    assert data[f.start_byte : f.end_byte] == b'def f():\n    return "caf\xe9 \xff"'
    assert data[g.start_byte : g.end_byte] == b"def g():\n    pass"
    assert (g.start_line, g.end_line) == (4, 5)


def test_binary_content_is_refused(tmp_path):
    path = tmp_path / "blob.py"
    path.write_bytes(b"def f():\n    pass\n\x00\x01\x02")
    with pytest.raises(BinaryFileError) as info:
        chunk_file(path, path="pkg/blob.py")
    assert info.value.path == "pkg/blob.py" and "NUL" in info.value.reason
    with pytest.raises(BinaryFileError):
        chunk_source(b"\x00" * 8, "python", "x.py")


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.py"
    path.write_bytes(b"x = 1\n" * 50)
    import builtins

    def no_open(*args, **kwargs):
        raise AssertionError("the file must not be opened")

    monkeypatch.setattr(builtins, "open", no_open)
    with pytest.raises(FileTooLargeError) as info:
        chunk_file(path, config=ChunkConfig(max_file_bytes=100))
    monkeypatch.undo()
    assert (info.value.size, info.value.limit) == (300, 100)
    assert str(path) in str(info.value) and "100 bytes" in str(info.value)
    with pytest.raises(FileTooLargeError):
        chunk_source("x = 1\n" * 50, "python", "big.py", config=ChunkConfig(max_file_bytes=100))


def test_unknown_extension_names_extension_and_supported_ones(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("hello\n")
    with pytest.raises(UnknownLanguageError) as info:
        chunk_file(path)
    message = str(info.value)
    assert "'.xyz'" in message and ".py" in message and ".rs" in message and ".tsx" in message
    assert info.value.extension == ".xyz"
    with pytest.raises(UnknownLanguageError, match="unknown language 'cobol'"):
        chunk_source("x", "cobol", "a.cob")


def test_shebang_selects_the_language(tmp_path):
    _need("tree_sitter_python")
    path = tmp_path / "tool"
    path.write_text("#!/usr/bin/env python3\ndef main():\n    return 0\n")
    chunks = chunk_file(path, path="bin/tool")
    assert [(c.language, c.kind, c.qualname, c.path) for c in chunks] == [("python", "function", "main", "bin/tool")]


def test_chunk_file_reads_paths_and_bytes_alike(tmp_path):
    _need("tree_sitter_go")
    path = tmp_path / "shapes.go"
    path.write_text(GO)
    from_path = chunk_file(path, path="shapes.go")
    from_bytes = chunk_file(GO.encode(), path="shapes.go")
    assert from_path == from_bytes
    assert chunk_file(str(path))[0].path == path.as_posix()
    assert from_path[0].to_dict()["qualname"] == "Circle"


def test_config_is_validated():
    with pytest.raises(ValueError, match="window_overlap"):
        ChunkConfig(window_lines=10, window_overlap=10)
    with pytest.raises(ValueError, match="max_chunk_lines"):
        ChunkConfig(window_lines=100, max_chunk_lines=50)

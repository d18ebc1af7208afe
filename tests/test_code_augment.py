"""AST augmentations: every result re-parses, renames are consistent, Python behaviour is kept (both versions run)."""

from __future__ import annotations

import dis
import importlib
import random
import types

import pytest

pytest.importorskip("tree_sitter")
pytest.importorskip("tree_sitter_python")

from gpte.code import chunk_source, has_errors, parse  # noqa: E402
from gpte.code.augment import (  # noqa: E402
    Augmented,
    augment,
    augment_chunk,
    code_pairs,
    insert_dead_code,
    rename_identifiers,
)

# ------------------------------------------------------------------------------------------------ every language

# language -> (source, locals that must be renamed, text that must stay, the inserted dead code starts like one of)
SAMPLES: dict[str, tuple[str, set[str], set[str], tuple[str, ...]]] = {
    "python": (
        '''def f(a, b=2, *args, key=None, **kw):
    """Doc."""
    total = a + b + LIMIT
    for i, x in enumerate(args):
        total += i * x
    sq = [y * y for y in args if y]
    def inner(z):
        nonlocal total
        total += z
        return total
    inner(len(kw))
    obj.total = total
    return total, sq, key
''',
        {"a", "b", "args", "key", "kw", "total", "i", "x", "sq", "y", "z"},
        {"LIMIT", "obj.total", "enumerate", "len", "inner", "f"},
        ("if False:", "while False:", " = "),
    ),
    "javascript": (
        '''function f(a, {b, c: d} = {}, ...e) {
  const {x = 1} = o;
  let acc = LIMIT;
  for (let i of e) { acc += i + x; }
  try { g(acc); } catch (err) { console.log(err.message); }
  return {x, acc, d, b, a: a.a};
}''',
        {"a", "b", "d", "e", "x", "acc", "i", "err"},
        {"LIMIT", "o", "g", "console", "f"},
        ("(false)",),
    ),
    "typescript": (
        '''function f(a: number, b?: string): number {
  let total: number = a + LIMIT;
  for (let i = 0; i < 3; i++) { total += i; }
  return total + (b ? b.length : 0);
}''',
        {"a", "b", "total", "i"},
        {"LIMIT", "f"},
        ("(false)",),
    ),
    "java": (
        '''class A {
  int fld;
  int f(int a, String... b) {
    int x = 1, y = a;
    for (int i = 0; i < b.length; i++) { x += i; }
    for (String s : b) { y += s.length(); }
    this.fld = x;
    return Math.max(x, y) + fld + LIMIT;
  }
}''',
        {"a", "b", "x", "y", "i", "s"},
        {"this.fld", "Math.max", "LIMIT", "length"},
        ("if (false)",),
    ),
    "go": (
        '''package p

func f(a int, b ...int) (r int) {
	x := limit
	var y, z = 2, 3
	for k, v := range b {
		x += k * v
	}
	p := T{X: 1}
	r = x + y + z + p.X + a
	return
}''',
        {"a", "b", "r", "x", "y", "z", "k", "v", "p"},
        {"limit", "f"},
        ("if false {", "for false {"),
    ),
    "c": (
        '''int f(int a, char *b[], int n) {
    int x = LIMIT, *y = &x;
    for (int i = 0; i < n; i++) {
        s.fld = i;
        x += i;
    }
    x += 1;
    return x + *y + a + (b != 0) + counter;
}''',
        {"a", "b", "n", "i", "x", "y"},  # C scope starts at the declarator: &x in y's initialiser is the local
        {"LIMIT", "s.fld", "counter", "f"},
        ("if (0)", "while (0)"),
    ),
    "cpp": (
        '''int f(int a, std::vector<int> v) {
    int total = LIMIT;
    for (auto& e : v) { total += e; }
    auto g = [&](int k) { return k + total; };
    return g(a) + std::max(a, total);
}''',
        {"a", "v", "total", "e", "g", "k"},
        {"LIMIT", "std::max", "f"},
        ("if (0)", "while (0)"),
    ),
}


def _variable_names(text: str, language: str) -> set[str]:
    """Names in variable position (node type ``identifier``) of the parsed text."""
    stack, names = [parse(text, language).root_node], set()
    while stack:
        node = stack.pop()
        parent = node.parent
        member = parent is not None and parent.type in ("attribute", "keyword_argument") and node != parent.children[0]
        if node.type == "identifier" and not member:  # Python attributes and keyword names are identifiers too
            names.add(node.text.decode())
        stack.extend(node.children)
    return names


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_rename_is_consistent_and_reparses(language):
    source, renamed, kept, _ = SAMPLES[language]
    result = rename_identifiers(source, language, seed=1)
    assert result.ops_applied == ("rename",)
    assert not has_errors(parse(result.text, language))
    assert set(result.renames) == renamed
    before, after = _variable_names(source, language), _variable_names(result.text, language)
    assert not renamed & after  # every occurrence of every renamed local changed
    assert set(result.renames.values()) <= after
    assert not set(result.renames.values()) & before  # fresh names only
    assert len(set(result.renames.values())) == len(result.renames)
    for name in kept:  # globals, attributes, fields, callees untouched
        assert name in result.text, name
    assert result.text.count(".") == source.count(".")


@pytest.mark.parametrize("language", [*sorted(SAMPLES), "rust"])
def test_dead_code_is_inserted_and_reparses(language):
    if language == "rust":
        source, markers = "fn f(a: i32) -> i32 {\n    let b = a + 1;\n    b * 2\n}\n", ("if false",)
    else:
        source, _, _, markers = SAMPLES[language]
    for seed in range(4):
        result = insert_dead_code(source, language, seed=seed)
        assert result.ops_applied == ("dead_code",)
        assert not has_errors(parse(result.text, language))
        text = result.text
        prefix = next(i for i, (x, y) in enumerate(zip(source, text, strict=False)) if x != y)
        suffix = next(i for i, (x, y) in enumerate(zip(reversed(source), reversed(text), strict=False)) if x != y)
        assert prefix + suffix >= len(source) and len(text) > len(source)  # one contiguous insertion
        assert sum(text.count(m) for m in markers) > sum(source.count(m) for m in markers), text


def test_augment_applies_both_ops_and_records_skips():
    source = SAMPLES["python"][0]
    result = augment(source, "python", seed=5)
    assert isinstance(result, Augmented)
    assert result.ops_applied == ("rename", "dead_code") and not result.skipped
    assert not has_errors(parse(result.text, "python"))
    rust = augment("fn f(a: i32) -> i32 {\n    let b = a;\n    b\n}\n", "rust")
    assert rust.ops_applied == ("dead_code",) and "rename" in rust.skipped
    broken = "def f(x:\n    return x\n"
    unchanged = augment(broken, "python")
    assert unchanged.text == broken and unchanged.ops_applied == ()
    assert set(unchanged.skipped) == {"rename", "dead_code"}
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(source, "python", ops=("shuffle",))


def test_same_seed_same_output_other_seed_other_names():
    source = SAMPLES["java"][0]
    assert augment(source, "java", seed=3) == augment(source, "java", seed=3)
    names = {tuple(sorted(augment(source, "java", seed=s).renames.items())) for s in range(5)}
    assert len(names) > 1


# ----------------------------------------------------------------------------------------- Python: run both views

FUNCTIONS = [
    ('''def f(n, step=2):
    """Sum some numbers; the docstring must stay the first statement."""
    global COUNTER
    COUNTER += n
    total = COUNTER - n
    for i in range(0, n, step):
        if i % 3:
            total += i
    while total > 100:
        total //= 2
    return total
''', [(10,), (50, 3), (0,)]),
    ('''def f(*args, scale=1, **kwargs):
    acc = [a * scale for a in args if a]
    pairs = {k: v for k, v in sorted(kwargs.items())}
    return acc, pairs, [y for x in acc for y in range(x) if (w := y) > 1], w if acc else None
''', [(1, 2, 3), (0, 4)]),
    ('''def f(start):
    count = start
    def bump(by=1):
        nonlocal count
        count += by
        return count
    values = [bump() for _ in range(3)]
    fns = [lambda x, i=i: x + i for i in range(3)]
    return values, [g(10) for g in fns], count
''', [(0,), (5,)]),
    ('''def f(data, key=None):
    try:
        value = data[key]
    except (KeyError, TypeError) as err:
        value = type(err).__name__
    class Box:
        scale = 3
        doubled = [scale * 2 for _ in range(2)] if False else None
        def get(self):
            return value
    box = Box()
    box.value = 7
    return box.get(), box.value, Box.scale, f"{value!r}", f"{key=}"
''', [({"a": 1}, "a"), ({}, "b"), (None,)]),
    ('''def f(items, flip=False):
    factor, reverse = len(items), flip
    def helper(x, factor=factor):
        return x * factor
    out = [helper(x, factor=2) + helper(x) for x in sorted(items, reverse=reverse)]
    gen = (len(str(v)) for v in items)
    seen = set()
    for index, (a, b) in enumerate(zip(items, items[1:])):
        seen.add((index, a - b))
    return out, sum(gen), sorted(seen), LIMIT
''', [([1, 2, 5],), ([],), ([3, 1], True)]),
    ('''def f(n):
    COUNTER = n * 2  # a local that shadows the global, which the nested functions declare global
    def read():
        global COUNTER
        return COUNTER
    def write(v):
        global COUNTER
        COUNTER = v
    write(n + 1)
    return read(), COUNTER
''', [(1,), (5,)]),
    ('''def f(text, sep=","):
    parts = [p.strip() for p in text.split(sep)]
    result = {}
    for position, part in enumerate(parts):
        result.setdefault(part, []).append(position)
    with open(__file__) if False else _Null() as handle:
        first = handle
    return result, first
''', [("a, b,a",), ("x;y", ";")]),
]


class _Null:
    def __enter__(self):
        return "null"

    def __exit__(self, *exc):
        return False


def _run(source: str, call_args):
    namespace = {"LIMIT": 42, "COUNTER": 0, "_Null": _Null, "__file__": __file__}
    exec(compile(source, "<augmented>", "exec"), namespace)
    return [namespace["f"](*args) for args in call_args] + [namespace["f"].__doc__, namespace["COUNTER"]]


@pytest.mark.parametrize("index", range(len(FUNCTIONS)))
def test_python_behaviour_is_kept(index):
    source, calls = FUNCTIONS[index]
    expected = _run(source, calls)
    for seed in range(6):
        for ops in (("rename",), ("dead_code",), ("rename", "dead_code")):
            result = augment(source, "python", ops=ops, seed=seed)
            assert result.ops_applied == ops, result.skipped
            assert result.text != source
            assert _run(result.text, calls) == expected, result.text


def test_an_op_that_would_break_the_parse_is_skipped(monkeypatch):
    from gpte.code import augment as module

    monkeypatch.setitem(module._DEAD, "python", ("if False\n{ind}    pass",))  # missing colon
    source = FUNCTIONS[0][0]
    result = insert_dead_code(source, "python", seed=0)
    assert result.text == source and result.ops_applied == () and "re-parse" in result.skipped["dead_code"]


def test_keyword_names_fstring_debug_and_class_attributes_are_kept():
    source = FUNCTIONS[3][0] + FUNCTIONS[4][0].replace("def f(", "def g(")
    result = rename_identifiers(source, "python", seed=0)
    assert "factor=2)" in result.text and ", factor=" in result.text  # the parameter keeps its (keyword) name
    assert f", factor={result.renames['factor']})" in result.text  # its default, the outer local, is renamed
    assert "reverse=" in result.text and "reverse=reverse" not in result.text  # the local renamed, the keyword not
    assert 'f"{key=}"' in result.text and "scale = 3" in result.text and "box.value" not in result.text
    assert "scale * 2" in result.text  # the comprehension in the class body reads the class attribute


def test_rename_never_captures_a_global_the_function_reads():
    # every vocabulary word and the numbered names are globals read by the function: a new name equal to one of
    # them would make the function read its own local instead
    words = ["item", "value", "tmp", "acc", "node", "elem", "key", "data", "res", "obj", "arg", "val", "cur", "buf",
             "idx", "out", "entry", "state", "part", "count", "total", "seq", "ref", "src", "dst", "head", "rest",
             "pos", "step", "flag"] + [f"{p}{i}" for p in "vxta" for i in range(12)]
    body = " + ".join(words)
    source = f"def f(a, b):\n    c = a * b\n    return c + {body}\n"
    namespace = dict.fromkeys(words, 1)
    exec(source, namespace)
    expected = namespace["f"](3, 4)
    for seed in range(10):
        result = rename_identifiers(source, "python", seed=seed)
        assert not set(result.renames.values()) & set(words)
        ns = dict.fromkeys(words, 1)
        exec(result.text, ns)
        assert ns["f"](3, 4) == expected
    js = "function f(a) { let b = a * 2; return b + item + value + tmp + acc; }"
    assert not set(rename_identifiers(js, "javascript", seed=0).renames.values()) & {"item", "value", "tmp", "acc"}


def test_unsafe_sources_are_left_alone():
    dynamic = "def f(a):\n    b = a + 1\n    return locals()\n"
    result = rename_identifiers(dynamic, "python")
    assert result.text == dynamic and "locals" in result.skipped["rename"]
    shadowed = "int f(void) {\n    use(x);\n    { int x = 1; use(x); }\n    return 0;\n}\n"  # first x is a global
    assert "x" not in rename_identifiers(shadowed, "c").renames
    go = "package p\n\nfunc f() int {\n\tif true {\n\t\tx := x + 1\n\t\treturn x\n\t}\n\treturn 0\n}\n"
    assert "x" not in rename_identifiers(go, "go").renames  # x := x + 1 reads the package-level x
    assert rename_identifiers(SAMPLES["python"][0], "python", params=False).renames.keys().isdisjoint(
        {"a", "b", "args", "key", "kw"})


# ------------------------------------------------------------------------------------------ real stdlib functions

_MAPPED_OPS = ("FAST", "DEREF", "CLOSURE", "MAKE_CELL")


def _mapped(value, renames):
    if isinstance(value, str):
        return renames.get(value, value)
    if isinstance(value, tuple):
        return tuple(_mapped(v, renames) for v in value)
    return value


def _same_bytecode(a: types.CodeType, b: types.CodeType, renames: dict[str, str]) -> bool:
    """Whether ``b`` is ``a`` with its local names renamed: same instructions, globals and attributes."""
    ia, ib = list(dis.get_instructions(a)), list(dis.get_instructions(b))
    if [i.opname for i in ia] != [i.opname for i in ib]:
        return False
    cells_a, cells_b = [], []
    for x, y in zip(ia, ib, strict=True):
        if isinstance(x.argval, types.CodeType):
            if not _same_bytecode(x.argval, y.argval, renames):
                return False
        elif x.opname in ("MAKE_CELL", "LOAD_CLOSURE"):  # cells are ordered by name
            cells_a.append(_mapped(x.argval, renames))
            cells_b.append(y.argval)
        elif any(op in x.opname for op in _MAPPED_OPS):
            if _mapped(x.argval, renames) != y.argval:
                return False
        elif x.opname == "LOAD_CONST":  # keyword-only defaults and annotations are keyed by parameter names
            if x.argval != y.argval and _mapped(x.argval, renames) != y.argval:
                return False
        elif x.argval != y.argval and not isinstance(x.argval, int):  # globals, attributes: never renamed
            return False
    return sorted(cells_a) == sorted(cells_b)


def _compile(code: str) -> types.CodeType:
    return compile("if 1:\n" + code if code[:1] in " \t" else code, "<stdlib>", "exec")


@pytest.fixture(scope="module")
def stdlib_sample():
    from gpte.data.stdlib import stdlib_functions

    functions = stdlib_functions()
    return functions, random.Random(0).sample(functions, 200)


def test_stdlib_functions_reparse_and_keep_their_bytecode(stdlib_sample):
    _, sample = stdlib_sample
    renamed = checked = 0
    for function in sample:
        both = augment(function.code, "python", seed=function.id)
        assert not has_errors(parse(both.text, "python")), function.id
        _compile(both.text)  # CPython accepts it too
        result = rename_identifiers(function.code, "python", seed=function.id)
        if not result.ops_applied:
            continue
        renamed += 1
        if set(result.renames) & _variable_names(result.text, "python"):
            continue  # a name renamed in one scope and kept in another: the per-name map cannot compare it
        checked += 1
        assert _same_bytecode(_compile(function.code), _compile(result.text), result.renames), function.id
    assert renamed >= 150 and checked >= 140


@pytest.mark.parametrize("ident, calls", [
    ("textwrap:dedent", [("    a\n      b\n",), ("x\n  y",)]),
    ("statistics:median", [([3, 1, 2],), ([4, 1, 2, 3],)]),
    ("heapq:nsmallest", [(2, [5, 1, 4, 2]), (3, [3, 1, 2], None), (1, [])]),
    ("string:capwords", [("hello  big world",), ("a-b c", "-")]),
    ("fnmatch:translate", [("*.py",), ("[!a-c]?x",)]),
    ("difflib:get_close_matches", [("appel", ["ape", "apple", "peach", "puppy"])]),
    ("statistics:mode", [([1, 2, 2, 3],), (["a", "b", "b"],)]),
])
def test_stdlib_functions_behave_the_same(stdlib_sample, ident, calls):
    functions, _ = stdlib_sample
    function = next(f for f in functions if f.id == ident)
    module = importlib.import_module(function.module)
    original = getattr(module, function.qualname)
    for seed in range(3):
        result = augment(function.code, "python", seed=seed)
        assert result.ops_applied == ("rename", "dead_code"), result.skipped
        namespace = dict(vars(module))
        exec(compile(result.text, "<augmented>", "exec"), namespace)
        augmented = namespace[function.qualname]
        for args in calls:
            assert augmented(*args) == original(*args)


# ---------------------------------------------------------------------------------------------- chunks and rows


def test_augment_chunk_and_code_pairs():
    source = SAMPLES["python"][0] + "\n\nclass K:\n    def m(self, v):\n        w = v + 1\n        return w\n"
    chunks = chunk_source(source, "python", "mod.py")
    functions = [c for c in chunks if c.kind in ("function", "method")]
    assert len(functions) == 2
    view = augment_chunk(functions[1], seed=1)
    assert view != functions[1].code and not has_errors(parse(view, "python"))
    rows = code_pairs(chunks, n_views=2, seed=0)
    assert len(rows) == 4  # the class outline is skipped
    assert all(set(r) == {"query", "positive", "task"} and r["task"] == "code-code" for r in rows)
    assert all(r["query"] != r["positive"] for r in rows)
    assert rows[0]["positive"] != rows[1]["positive"]  # two different views
    assert code_pairs(chunks, n_views=2, seed=0) == rows
    assert code_pairs(list(reversed(chunks)), n_views=2, seed=0)[:2] == rows[2:]  # seeded per chunk, not by order

"""Semantics-preserving augmentations of source code, computed on the tree-sitter tree: two views of one function.

Code→code contrastive training needs positives that differ in surface form but not in meaning. Each op here finds
byte spans in the tree-sitter tree of the source and replaces them (edits applied right to left, so earlier offsets
stay valid); nothing is done with regular expressions over the raw text.

Ops (names for :func:`augment`'s ``ops``):

``"rename"`` (:func:`rename_identifiers`)
    Consistent renaming of local variables and parameters. The new names come from a seeded ``random.Random``
    (words such as ``item``, ``acc``, ``tmp`` or ``v0, v1, ...``) and never equal any identifier of the source, a
    keyword or (Python) a builtin, so a renamed local can neither capture nor shadow another name.

    *Python*: a real scope analysis (function, lambda, comprehension and class scopes; ``global``/``nonlocal``;
    default values, annotations and decorators evaluated in the enclosing scope; the first iterable of a
    comprehension evaluated outside it; ``:=`` binding in the enclosing function). A name bound in a function, lambda
    or comprehension scope is renamed at every occurrence that resolves to that binding, nested closures and
    ``nonlocal`` statements included. Never renamed: attributes after ``.``, keyword-argument names at call sites,
    module and class-level names, builtins and globals, imported names, names of nested ``def``/``class``, names
    bound by ``match`` patterns, names inside ``f"{x=}"`` (their text is printed), and parameters whose name is
    used as a keyword argument anywhere in the source (the call would break). Sources that call ``locals``,
    ``vars``, ``dir``, ``eval``, ``exec`` or read frames are left alone.

    *JavaScript, TypeScript, Java, Go, C, C++*: block scoping, with a conservative rule: in each outermost function,
    a name is renamed only when it is declared there (parameter or local declaration) and **every** occurrence of
    it in the function lies inside the scope of one of those declarations (after the declaration point in Java, C,
    C++ and Go; ``x := x`` in Go sees the outer ``x``). Renaming all occurrences of such a name to one fresh name
    keeps every binding. Member names (``.x``, ``->x``, ``x:`` keys, Go composite-literal keys), labels, types,
    method names at call sites, fields, ``extern`` declarations and local prototypes are never renamed; JavaScript
    shorthand properties ``{x}`` become ``{x: new}``; TypeScript parameter properties are kept; functions holding
    preprocessor directives (C/C++), ``with`` or ``eval`` (JavaScript) are skipped.

``"dead_code"`` (:func:`insert_dead_code`)
    Inserts a statement that never runs or has no effect before a randomly chosen statement of a function body,
    with the indentation of that statement: Python ``if False:`` / ``while False:`` blocks or an unused assignment to
    a fresh name (never before a docstring); ``if (false) { ... }`` in JavaScript, TypeScript and Java (never before
    a ``"use strict"`` directive or a constructor's first statement: ``this(...)``/``super(...)`` must stay first;
    inserting *before* an existing statement never makes code unreachable); ``if (0) { ... }`` in C/C++ (never before
    a declaration, so C89 blocks stay valid; never directly in a ``switch`` body); ``if false { }`` / ``for false { }``
    in Go (no unused variables, which Go rejects); ``if false { }`` in Rust.

Every result is re-parsed with the same grammar (and, for Python, compiled with :mod:`ast`); an op that would
produce a syntax error, or finds nothing to do, is skipped and the reason is recorded in ``Augmented.skipped``. A
source that does not parse cleanly is returned unchanged.

Known limits: renaming parameters changes the keyword interface for callers outside the source (pass
``params=False`` to keep them); C/C++ macros defined elsewhere that name a local textually, Java/C++ code that
reaches a local by reflection, and Python code that reads local names from strings (``format(**locals())`` is
caught, ``frame.f_locals`` via an alias is not) can break; Rust is supported by ``dead_code`` only (its macros take
names inside format strings).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpte.code.parsing import encode_source, has_errors, parse

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tree_sitter import Node

    from gpte.code.chunking import Chunk

__all__ = [
    "OPS",
    "Augmented",
    "augment",
    "augment_chunk",
    "code_pairs",
    "insert_dead_code",
    "rename_identifiers",
]

logger = logging.getLogger(__name__)

OPS = ("rename", "dead_code")

_VOCAB = (
    "item", "value", "tmp", "acc", "node", "elem", "key", "data", "res", "obj", "arg", "val", "cur", "buf", "idx",
    "out", "entry", "state", "part", "count", "total", "seq", "ref", "src", "dst", "head", "rest", "pos", "step", "flag",
)
_PY_RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
_PY_DYNAMIC = frozenset({"locals", "vars", "dir", "eval", "exec", "_getframe", "currentframe", "f_locals"})


@dataclass(frozen=True)
class Augmented:
    """The result of :func:`augment` (or of one op)."""

    text: str  # the augmented source (the input, unchanged, when every op was skipped)
    ops_applied: tuple[str, ...] = ()  # ops that changed the source, in order
    renames: dict[str, str] = field(default_factory=dict)  # old name -> new name ("rename")
    skipped: dict[str, str] = field(default_factory=dict)  # op -> why it was skipped


# ------------------------------------------------------------------------------------------------------- helpers


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "surrogateescape")


def _field_of(parent: Node, child: Node) -> str | None:
    for i, c in enumerate(parent.children):
        if c == child:
            return parent.field_name_for_child(i)
    return None


def _walk(node: Node) -> Iterable[Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _contains(outer: Node, inner: Node) -> bool:
    return outer.start_byte <= inner.start_byte and inner.end_byte <= outer.end_byte


def _apply(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply non-overlapping byte-span edits right to left (so earlier offsets stay valid)."""
    out = data
    last = len(data) + 1
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        if end > last:
            raise ValueError(f"overlapping edits at byte {start}")
        out = out[:start] + new + out[end:]
        last = start
    return out


def _identifiers(root: Node) -> set[str]:
    return {_text(n) for n in _walk(root) if n.child_count == 0 and "identifier" in n.type}


class _Names:
    """Fresh names from a seeded generator, never one of ``taken``."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.taken = set(taken)
        self.words = list(_VOCAB)
        rng.shuffle(self.words)
        self.numbered = rng.random() < 0.3  # "v0, v1, ..." instead of words
        self.prefix = rng.choice(("v", "x", "t", "a"))
        self.counter = rng.randrange(10) if self.numbered else 0

    def new(self) -> str:
        while True:
            if self.numbered:
                name = f"{self.prefix}{self.counter}"
                self.counter += 1
            elif self.words:
                name = self.words.pop()
            else:
                name = f"{_VOCAB[self.counter % len(_VOCAB)]}{self.counter // len(_VOCAB) + 1}"
                self.counter += 1
            if name not in self.taken:
                self.taken.add(name)
                return name


def _rng(seed: int | str | random.Random) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def _py_compiles(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        pass
    except (ValueError, MemoryError, RecursionError):
        return False
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first[:1] in (" ", "\t"):  # an indented method cut out of its class
        try:
            ast.parse("if 1:\n" + text)
            return True
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return False
    return False


def _valid(data: bytes, language: str) -> bool:
    if has_errors(parse(data, language)):
        return False
    if language == "python":
        return _py_compiles(data.decode("utf-8", "surrogateescape"))
    return True


# ------------------------------------------------------------------------------------------- Python scope analysis

_PY_COMPREHENSIONS = frozenset({"list_comprehension", "set_comprehension", "dictionary_comprehension",
                                "generator_expression"})
_PY_TARGET_GROUPS = frozenset({"tuple", "list", "pattern_list", "tuple_pattern", "list_pattern",
                               "parenthesized_expression", "list_splat_pattern", "list_splat", "as_pattern_target",
                               "expression_list"})


class _Scope:
    __slots__ = ("binds", "frozen", "globals", "kind", "nonlocals", "parent", "params")

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind  # "module", "class", "function", "lambda", "comprehension"
        self.parent = parent
        self.binds: set[str] = set()
        self.params: set[str] = set()
        self.frozen: set[str] = set()  # bound here but never renamed
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()

    def resolve(self, name: str) -> _Scope | None:
        """The scope whose binding ``name`` refers to from here; None for globals and builtins."""
        scope: _Scope | None = self
        nested = False
        while scope is not None:
            if scope.kind == "module":
                return None
            if scope.kind == "class" and nested:  # class bodies are invisible to nested scopes
                scope = scope.parent
                continue
            if name in scope.globals:
                return None
            if name in scope.nonlocals:
                scope, nested = scope.parent, True
                continue
            if name in scope.binds:
                return scope
            scope, nested = scope.parent, True
        return None


class _PyScopes:
    """Every identifier in a variable position, with the scope it occurs in."""

    def __init__(self) -> None:
        self.occurrences: list[tuple[Node, _Scope]] = []
        self.frozen_occurrences: set[int] = set()  # indexes into occurrences whose binding must keep its name
        self.keyword_names: set[str] = set()
        self.scopes: list[_Scope] = []

    def scope(self, kind: str, parent: _Scope | None) -> _Scope:
        scope = _Scope(kind, parent)
        self.scopes.append(scope)
        return scope

    def use(self, node: Node, scope: _Scope) -> None:
        self.occurrences.append((node, scope))

    def bind(self, node: Node, scope: _Scope, frozen: bool = False) -> None:
        name = _text(node)
        scope.binds.add(name)
        if frozen:
            scope.frozen.add(name)
        self.occurrences.append((node, scope))

    def freeze_all(self, node: Node, scope: _Scope) -> None:
        for n in _walk(node):
            if n.type == "identifier":
                self.bind(n, scope, frozen=True)

    def targets(self, node: Node, scope: _Scope) -> None:
        if node.type == "identifier":
            self.bind(node, scope)
        elif node.type in _PY_TARGET_GROUPS:
            for child in node.named_children:
                self.targets(child, scope)
        else:  # attribute, subscript: their parts are uses
            self.visit(node, scope)

    def params(self, params: Node, outer: _Scope, inner: _Scope) -> None:
        for param in params.named_children:
            if param.type == "identifier":
                self.bind(param, inner)
                inner.params.add(_text(param))
                continue
            for i, child in enumerate(param.children):
                if param.field_name_for_child(i) in ("value", "type"):
                    self.visit(child, outer)  # defaults and annotations run in the enclosing scope
                elif child.is_named:
                    for n in _walk(child):
                        if n.type == "identifier":
                            self.bind(n, inner)
                            inner.params.add(_text(n))

    def visit(self, node: Node, scope: _Scope) -> None:  # noqa: C901 - one dispatch over node types
        t = node.type
        if t == "identifier":
            self.use(node, scope)
        elif t in ("function_definition", "class_definition"):
            name = node.child_by_field_name("name")
            if name is not None:
                self.bind(name, scope, frozen=True)
            inner = self.scope("function" if t == "function_definition" else "class", scope)
            for i, child in enumerate(node.children):
                f = node.field_name_for_child(i)
                if f == "name":
                    continue
                if f == "parameters":
                    self.params(child, scope, inner)
                elif f == "type_parameters":
                    self.freeze_all(child, inner)
                elif f == "body":
                    self.visit(child, inner)
                else:  # return annotation, base classes
                    self.visit(child, scope)
        elif t == "lambda":
            inner = self.scope("lambda", scope)
            params = node.child_by_field_name("parameters")
            if params is not None:
                self.params(params, scope, inner)
            body = node.child_by_field_name("body")
            if body is not None:
                self.visit(body, inner)
        elif t in _PY_COMPREHENSIONS:
            inner = self.scope("comprehension", scope)
            first = True
            for child in node.named_children:
                if child.type == "for_in_clause":
                    for i, part in enumerate(child.children):
                        f = child.field_name_for_child(i)
                        if f == "left":
                            self.targets(part, inner)
                        elif part.is_named:
                            self.visit(part, scope if first else inner)  # the first iterable runs outside
                    first = False
                else:
                    self.visit(child, inner)
        elif t == "named_expression":
            target = scope
            while target.kind == "comprehension" and target.parent is not None:
                target = target.parent
            name = node.child_by_field_name("name")
            if name is not None:
                self.bind(name, target)
            value = node.child_by_field_name("value")
            if value is not None:
                self.visit(value, scope)
        elif t in ("assignment", "augmented_assignment", "for_statement"):
            for i, child in enumerate(node.children):
                if node.field_name_for_child(i) == "left":
                    self.targets(child, scope)
                else:
                    self.visit(child, scope)
        elif t == "as_pattern":
            for i, child in enumerate(node.children):
                if node.field_name_for_child(i) == "alias":
                    self.targets(child, scope)
                else:
                    self.visit(child, scope)
        elif t == "delete_statement":
            for child in node.named_children:
                self.targets(child, scope)
        elif t in ("import_statement", "import_from_statement", "future_import_statement", "case_pattern",
                   "type_alias_statement"):
            self.freeze_all(node, scope)
        elif t in ("global_statement", "nonlocal_statement"):
            for child in node.named_children:
                if child.type == "identifier":
                    (scope.globals if t == "global_statement" else scope.nonlocals).add(_text(child))
                    self.use(child, scope)
        elif t == "attribute":
            obj = node.child_by_field_name("object")
            if obj is not None:
                self.visit(obj, scope)
        elif t == "keyword_argument":
            name = node.child_by_field_name("name")
            if name is not None:
                self.keyword_names.add(_text(name))
            value = node.child_by_field_name("value")
            if value is not None:
                self.visit(value, scope)
        elif t == "interpolation" and any(c.type == "=" for c in node.children):  # f"{x=}" prints the name
            start = len(self.occurrences)
            for child in node.children:
                self.visit(child, scope)
            self.frozen_occurrences.update(range(start, len(self.occurrences)))
        else:
            for child in node.children:
                self.visit(child, scope)


def _python_renames(root: Node, names: _Names, params: bool) -> tuple[list[tuple[int, int, bytes]], dict[str, str], str]:
    all_names = _identifiers(root)
    dynamic = sorted(all_names & _PY_DYNAMIC)
    if dynamic:
        return [], {}, f"reads names dynamically ({', '.join(dynamic)})"
    scopes = _PyScopes()
    module = scopes.scope("module", None)
    scopes.visit(root, module)
    resolved = [scope.resolve(_text(node)) for node, scope in scopes.occurrences]
    blocked: set[tuple[int, str]] = set()
    for i in scopes.frozen_occurrences:
        if resolved[i] is not None:
            blocked.add((id(resolved[i]), _text(scopes.occurrences[i][0])))
    renamable: set[tuple[int, str]] = set()
    for scope in scopes.scopes:
        if scope.kind not in ("function", "lambda", "comprehension"):
            continue
        for name in scope.binds - scope.frozen - scope.globals - scope.nonlocals:
            if name in scope.params and (not params or name in scopes.keyword_names):
                continue
            if name == "_" or name.startswith("__") and name.endswith("__") or (id(scope), name) in blocked:
                continue
            renamable.add((id(scope), name))
    mapping: dict[str, str] = {}
    edits: list[tuple[int, int, bytes]] = []
    for (node, _scope), target in zip(scopes.occurrences, resolved, strict=True):
        name = _text(node)
        if target is None or (id(target), name) not in renamable:
            continue
        if name not in mapping:
            mapping[name] = names.new()
        edits.append((node.start_byte, node.end_byte, mapping[name].encode()))
    return edits, mapping, "no local names to rename"


# ---------------------------------------------------------------------------------------- block-scoped languages


@dataclass(frozen=True)
class _Decl:
    scope: Node  # the node whose span the declaration is visible in
    start: int  # occurrences before this byte are not in scope


@dataclass(frozen=True)
class _BlockRules:
    """How a block-scoped language declares and uses local names (see the module doc)."""

    functions: frozenset[str]  # function-like nodes: regions to rename in, parameter scopes
    blocks: frozenset[str]  # nodes that open a lexical scope
    occurrence_types: frozenset[str]  # leaf node types that name a variable
    declare: Callable[[Node, _BlockRules], _Decl | str | None]  # a declaration, "unsafe" or None (a use)
    excluded: Callable[[Node], bool]  # identifier in a non-variable position (member, label, method name...)
    unsafe_region: frozenset[str] = frozenset()  # node types that make a whole function off limits
    unsafe_names: frozenset[str] = frozenset()  # names whose presence makes a whole function off limits
    shorthand: frozenset[str] = frozenset()  # JS shorthand properties: renamed as "old: new"

    def enclosing(self, node: Node, types: frozenset[str]) -> Node:
        cur = node.parent
        while cur is not None and cur.type not in types and cur.parent is not None:
            cur = cur.parent
        return cur if cur is not None else node

    def block_of(self, node: Node) -> Node:
        return self.enclosing(node, self.blocks | self.functions)


def _climb(node: Node, through: Callable[[str, str | None], bool]) -> tuple[Node, Node | None, str | None]:
    """Walk up from ``node`` while ``through(parent_type, field)`` holds; returns (child, parent, field)."""
    child, parent = node, node.parent
    while parent is not None:
        f = _field_of(parent, child)
        if not through(parent.type, f):
            return child, parent, f
        child, parent = parent, parent.parent
    return child, None, None


def _js_declare(node: Node, rules: _BlockRules) -> _Decl | str | None:
    def through(pt: str, f: str | None) -> bool:
        return (pt in ("object_pattern", "array_pattern", "rest_pattern")
                or (pt in ("assignment_pattern", "object_assignment_pattern") and f == "left")
                or (pt == "pair_pattern" and f == "value"))

    child, parent, f = _climb(node, through)
    if parent is None:
        return None
    pt = parent.type
    if pt in ("required_parameter", "optional_parameter") and f == "pattern":
        if any(c.type in ("accessibility_modifier", "override_modifier", "readonly") for c in parent.children):
            return "unsafe"  # TypeScript parameter property: also a field
        parent = parent.parent
        pt = parent.type if parent is not None else ""
        f = None
    if pt == "variable_declarator" and f == "name":
        decl = parent.parent
        if decl is not None and decl.type == "variable_declaration":  # var: the whole function
            return _Decl(rules.enclosing(decl, rules.functions | {"program"}), 0)
        return _Decl(rules.block_of(parent), 0)
    if pt == "formal_parameters" and parent.parent is not None:
        return _Decl(parent.parent, 0)
    if pt == "arrow_function" and f == "parameter":
        return _Decl(parent, 0)
    if pt == "catch_clause" and f == "parameter":
        return _Decl(parent, 0)
    if pt == "for_in_statement" and f == "left":
        kind = parent.child_by_field_name("kind")
        if kind is None:
            return None
        if _text(kind) == "var":
            return _Decl(rules.enclosing(parent, rules.functions | {"program"}), 0)
        return _Decl(parent, 0)
    if pt in ("function_declaration", "generator_function_declaration", "class_declaration", "function_expression",
              "generator_function", "class", "import_specifier", "namespace_import") and f in ("name", None):
        return "unsafe"
    return None


def _js_excluded(node: Node) -> bool:
    parent = node.parent
    return parent is not None and parent.type in ("labeled_statement", "break_statement", "continue_statement")


def _java_declare(node: Node, rules: _BlockRules) -> _Decl | str | None:
    parent = node.parent
    if parent is None:
        return None
    pt, f = parent.type, _field_of(parent, node)
    if pt == "variable_declarator" and f == "name":
        owner = parent.parent
        if owner is None:
            return None
        if owner.type == "local_variable_declaration":
            return _Decl(rules.block_of(owner), node.start_byte)
        if owner.type == "spread_parameter" and owner.parent is not None and owner.parent.parent is not None:
            return _Decl(owner.parent.parent, 0)
        return "unsafe"  # a field or constant
    if pt == "formal_parameter" and f == "name":
        fn = parent.parent.parent if parent.parent is not None else None
        if fn is None or fn.type not in rules.functions:
            return "unsafe"  # record components
        return _Decl(fn, 0)
    if pt == "inferred_parameters" and parent.parent is not None:
        return _Decl(parent.parent, 0)
    if pt == "lambda_expression" and f == "parameters":
        return _Decl(parent, 0)
    if pt == "catch_formal_parameter" and f == "name" and parent.parent is not None:
        return _Decl(parent.parent, 0)
    if pt == "resource" and f == "name":
        return _Decl(rules.enclosing(parent, frozenset({"try_with_resources_statement"})), node.start_byte)
    if pt == "enhanced_for_statement" and f == "name":
        return _Decl(parent, node.start_byte)
    if pt in ("instanceof_expression", "type_pattern", "record_pattern_component") and f in ("name", None):
        return _Decl(rules.block_of(parent), node.start_byte)
    if pt in ("class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
              "method_declaration", "constructor_declaration", "enum_constant", "annotation_type_declaration"):
        return "unsafe"
    return None


def _java_excluded(node: Node) -> bool:
    parent = node.parent
    if parent is None:
        return False
    pt = parent.type
    if pt in ("labeled_statement", "break_statement", "continue_statement", "switch_label", "scoped_identifier",
              "marker_annotation", "annotation", "element_value_pair", "module_declaration", "package_declaration",
              "import_declaration"):
        return True
    f = _field_of(parent, node)
    if (pt, f) in (("method_invocation", "name"), ("field_access", "field")):
        return True
    return pt == "method_reference" and parent.named_children[0] != node


def _go_declare(node: Node, rules: _BlockRules) -> _Decl | str | None:
    parent = node.parent
    if parent is None:
        return None
    pt, f = parent.type, _field_of(parent, node)
    if pt in ("parameter_declaration", "variadic_parameter_declaration") and f == "name":
        plist = parent.parent
        fn = plist.parent if plist is not None else None
        if fn is not None and fn.type in rules.functions:
            return _Decl(fn, 0)
        return None  # a function type's parameter names
    if pt == "expression_list" and parent.parent is not None:
        stmt = parent.parent
        sf = _field_of(stmt, parent)
        if stmt.type == "short_var_declaration" and sf == "left":
            return _Decl(rules.block_of(stmt), stmt.end_byte)
        if stmt.type in ("range_clause", "receive_statement") and sf == "left" and any(
                c.type == ":=" for c in stmt.children):
            return _Decl(rules.block_of(stmt), stmt.end_byte)
        if stmt.type == "type_switch_statement" and sf == "alias":
            value = stmt.child_by_field_name("value")
            return _Decl(stmt, value.end_byte if value is not None else node.end_byte)
        return None
    if pt in ("var_spec", "const_spec") and f == "name":
        return _Decl(rules.block_of(parent), parent.end_byte)
    if pt == "literal_element" and parent.parent is not None and parent.parent.type == "keyed_element":
        return "unsafe"  # T{X: 1}: X may be a struct field
    if pt in ("type_parameter_declaration", "function_declaration", "type_spec"):
        return "unsafe"
    return None


def _go_excluded(node: Node) -> bool:
    return False


_C_DECLARATORS = frozenset({"pointer_declarator", "array_declarator", "init_declarator", "parenthesized_declarator",
                            "attributed_declarator", "reference_declarator", "function_declarator"})


def _c_declare(node: Node, rules: _BlockRules) -> _Decl | str | None:
    def through(pt: str, f: str | None) -> bool:
        return pt in _C_DECLARATORS and (f == "declarator" or pt in ("parenthesized_declarator",
                                                                     "reference_declarator"))

    parent = node.parent
    if parent is not None and parent.type == "function_declarator" and _field_of(parent, node) == "declarator":
        return "unsafe"  # a function's or prototype's own name
    child, root, f = _climb(node, through)
    if root is None:
        return None
    rt = root.type
    if rt in ("parameter_declaration", "optional_parameter_declaration", "variadic_parameter_declaration"):
        plist = root.parent
        fn = plist.parent if plist is not None else None
        while fn is not None and fn.type in _C_DECLARATORS | {"abstract_function_declarator", "lambda_declarator"}:
            fn = fn.parent
        if fn is not None and fn.type in rules.functions:
            return _Decl(fn, 0)
        return _Decl(root, 0)  # prototype scope of a function-pointer parameter
    if rt == "declaration" and f == "declarator":
        if any(c.type == "storage_class_specifier" and _text(c) == "extern" for c in root.children):
            return "unsafe"
        if root.parent is None or root.parent.type == "translation_unit":
            return None
        return _Decl(rules.block_of(root), node.start_byte)
    if rt == "for_range_loop" and f == "declarator":
        return _Decl(root, node.start_byte)
    if rt in ("structured_binding_declarator",):
        return _Decl(rules.block_of(root), node.start_byte)
    if rt in ("field_declaration", "enumerator", "preproc_def", "preproc_function_def", "type_definition"):
        return "unsafe"
    return None


def _c_excluded(node: Node) -> bool:
    parent = node.parent
    if parent is None:
        return False
    if parent.type in ("qualified_identifier", "template_function", "namespace_definition"):
        return True
    return parent.type == "case_statement" and _field_of(parent, node) == "value"


_JS_FUNCTIONS = frozenset({"function_declaration", "function_expression", "arrow_function", "method_definition",
                           "generator_function_declaration", "generator_function", "function"})
_JS_RULES = _BlockRules(
    functions=_JS_FUNCTIONS,
    blocks=frozenset({"statement_block", "for_statement", "for_in_statement", "switch_body", "class_static_block",
                      "catch_clause", "program"}),
    occurrence_types=frozenset({"identifier", "shorthand_property_identifier", "shorthand_property_identifier_pattern"}),
    declare=_js_declare,
    excluded=_js_excluded,
    unsafe_region=frozenset({"with_statement"}),
    unsafe_names=frozenset({"eval"}),
    shorthand=frozenset({"shorthand_property_identifier", "shorthand_property_identifier_pattern"}),
)
_JAVA_FUNCTIONS = frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration",
                             "lambda_expression"})
_JAVA_RULES = _BlockRules(
    functions=_JAVA_FUNCTIONS,
    blocks=frozenset({"block", "constructor_body", "for_statement", "enhanced_for_statement", "catch_clause",
                      "try_with_resources_statement", "switch_block", "switch_block_statement_group", "switch_rule",
                      "class_body"}),
    occurrence_types=frozenset({"identifier"}),
    declare=_java_declare,
    excluded=_java_excluded,
)
_GO_FUNCTIONS = frozenset({"function_declaration", "method_declaration", "func_literal"})
_GO_RULES = _BlockRules(
    functions=_GO_FUNCTIONS,
    blocks=frozenset({"block", "if_statement", "for_statement", "expression_switch_statement",
                      "type_switch_statement", "select_statement", "communication_case", "expression_case",
                      "type_case", "default_case", "source_file"}),
    occurrence_types=frozenset({"identifier"}),
    declare=_go_declare,
    excluded=_go_excluded,
)
_C_FUNCTIONS = frozenset({"function_definition", "lambda_expression"})
_C_RULES = _BlockRules(
    functions=_C_FUNCTIONS,
    blocks=frozenset({"compound_statement", "for_statement", "for_range_loop", "if_statement", "while_statement",
                      "switch_statement", "catch_clause", "translation_unit"}),
    occurrence_types=frozenset({"identifier"}),
    declare=_c_declare,
    excluded=_c_excluded,
    unsafe_region=frozenset({"preproc_if", "preproc_ifdef", "preproc_def", "preproc_function_def", "preproc_call",
                             "preproc_include", "preproc_else", "preproc_elif"}),
)
_BLOCK_RULES: dict[str, _BlockRules] = {
    "javascript": _JS_RULES, "typescript": _JS_RULES, "tsx": _JS_RULES, "java": _JAVA_RULES, "go": _GO_RULES,
    "c": _C_RULES, "cpp": _C_RULES,
}


def _outermost(root: Node, types: frozenset[str]) -> list[Node]:
    found: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in types:
            found.append(node)
            continue
        stack.extend(reversed(node.children))
    return found


def _block_renames(root: Node, rules: _BlockRules, names: _Names,
                   params: bool) -> tuple[list[tuple[int, int, bytes]], dict[str, str], str]:
    edits: list[tuple[int, int, bytes]] = []
    mapping: dict[str, str] = {}
    reason = "no local names to rename"
    unsafe: set[str] = set()
    regions = _outermost(root, rules.functions)
    per_region: list[tuple[dict[str, list[Node]], dict[str, list[tuple[Node, _Decl]]]]] = []
    for region in regions:
        nodes = list(_walk(region))
        if any(n.type in rules.unsafe_region for n in nodes) or any(
                n.type == "identifier" and _text(n) in rules.unsafe_names for n in nodes):
            reason = "a function uses preprocessor directives, eval or with"
            continue
        occurrences: dict[str, list[Node]] = {}
        decls: dict[str, list[tuple[Node, _Decl]]] = {}
        for node in nodes:
            if node.type not in rules.occurrence_types or rules.excluded(node):
                continue
            name = _text(node)
            occurrences.setdefault(name, []).append(node)
            decl = rules.declare(node, rules)
            if decl == "unsafe":
                unsafe.add(name)
            elif isinstance(decl, _Decl):
                if not params and decl.start == 0 and decl.scope.type in rules.functions:
                    unsafe.add(name)
                decls.setdefault(name, []).append((node, decl))
        per_region.append((occurrences, decls))
    for occurrences, decls in per_region:
        for name in sorted(decls):
            if name in unsafe or name == "_":
                continue
            declared = {id(node) for node, _ in decls[name]}
            if not all(id(occ) in declared or any(
                    _contains(d.scope, occ) and occ.start_byte >= d.start for _, d in decls[name])
                    for occ in occurrences[name]):
                continue
            if name not in mapping:
                mapping[name] = names.new()
            new = mapping[name]
            for occ in occurrences[name]:
                text = f"{name}: {new}" if occ.type in rules.shorthand else new
                edits.append((occ.start_byte, occ.end_byte, text.encode()))
    return edits, mapping, reason


# ----------------------------------------------------------------------------------------------------------- ops


def _prepare(source: str | bytes, language: str) -> tuple[bytes, Any]:
    data = encode_source(source)
    tree = parse(data, language)
    return data, tree


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def rename_identifiers(
    source: str | bytes, language: str, seed: int | str | random.Random = 0, *, params: bool = True,
) -> Augmented:
    """Rename local variables (and, unless ``params=False``, parameters) consistently; see the module doc.

    Guarantees: the result parses without errors in the same grammar (Python: also compiles); every occurrence of a
    renamed local is renamed, to a name that occurs nowhere in the source; everything else is byte-for-byte kept.
    ``renames`` maps old to new names. Skipped (the source returned unchanged, the reason in ``skipped``) when the
    language has no rename rules (Rust, plain text), the source has syntax errors, or nothing is safe to rename.
    """
    rng = _rng(seed)
    data, tree = _prepare(source, language)
    original = _decode(data)
    if has_errors(tree):
        return Augmented(original, skipped={"rename": "source has syntax errors"})
    taken = _identifiers(tree.root_node)
    try:
        if language == "python":
            names = _Names(rng, taken | _PY_RESERVED)
            edits, mapping, reason = _python_renames(tree.root_node, names, params)
        elif language in _BLOCK_RULES:
            names = _Names(rng, taken)
            edits, mapping, reason = _block_renames(tree.root_node, _BLOCK_RULES[language], names, params)
        else:
            return Augmented(original, skipped={"rename": f"no rename rules for {language}"})
    except RecursionError:
        return Augmented(original, skipped={"rename": "source nested too deeply"})
    if not edits:
        return Augmented(original, skipped={"rename": reason})
    out = _apply(data, edits)
    if not _valid(out, language):
        logger.debug("rename skipped: the renamed %s source does not re-parse", language)
        return Augmented(original, skipped={"rename": "the result would not re-parse"})
    return Augmented(_decode(out), ("rename",), mapping)


_PY_DEAD = (
    "if False:\n{ind}    {name} = {k}",
    "while False:\n{ind}    pass",
    "if False:\n{ind}    raise AssertionError({k})",
    "{name} = {k}",
)
_DEAD: dict[str, tuple[str, ...]] = {
    "javascript": ("if (false) {{ let {name} = {k}; }}", "while (false) {{ }}", "if (false) {{ }}"),
    "java": ("if (false) {{ int {name} = {k}; }}", "if (false) {{ }}"),
    "c": ("if (0) {{ int {name} = {k}; (void){name}; }}", "if (0) {{ }}", "while (0) {{ }}"),
    "go": ("if false {{\n{ind}}}", "for false {{\n{ind}}}", "if false {{\n{ind}\t_ = {k}\n{ind}}}"),
    "rust": ("if false {{ let _{name} = {k}; }}", "if false {{ }}"),
}
_DEAD.update(typescript=_DEAD["javascript"], tsx=_DEAD["javascript"], cpp=_DEAD["c"], python=_PY_DEAD)
_DEAD_BLOCKS: dict[str, frozenset[str]] = {
    "python": frozenset({"block"}), "javascript": frozenset({"statement_block"}),
    "java": frozenset({"block", "constructor_body"}), "go": frozenset({"block"}), "c": frozenset({"compound_statement"}),
    "rust": frozenset({"block"}),
}
_DEAD_BLOCKS.update(typescript=_DEAD_BLOCKS["javascript"], tsx=_DEAD_BLOCKS["javascript"], cpp=_DEAD_BLOCKS["c"])
_FUNCTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition"}), "javascript": _JS_FUNCTIONS, "typescript": _JS_FUNCTIONS,
    "tsx": _JS_FUNCTIONS, "java": _JAVA_FUNCTIONS, "go": _GO_FUNCTIONS, "c": _C_FUNCTIONS, "cpp": _C_FUNCTIONS,
    "rust": frozenset({"function_item", "closure_expression"}),
}
_NOT_BEFORE = frozenset({"comment", "line_comment", "block_comment", "case_statement", "labeled_statement",
                         "else_clause", "elif_clause", "except_clause", "finally_clause"})


def _is_string_statement(node: Node) -> bool:
    return node.type == "expression_statement" and node.named_child_count == 1 and node.named_children[0].type in (
        "string", "template_string")


def _statement_slots(block: Node, language: str) -> list[Node]:
    """Statements of ``block`` before which dead code may go."""
    parent = block.parent
    if language in ("c", "cpp") and parent is not None and parent.type == "switch_statement":
        return []
    if language == "python":  # never in a class body
        cur = parent
        while cur is not None and cur.type not in ("function_definition", "class_definition"):
            cur = cur.parent
        if cur is None or cur.type != "function_definition":
            return []
    children = list(block.named_children)
    if language == "go" and len(children) == 1 and children[0].type == "statement_list":
        children = list(children[0].named_children)
    slots = []
    first = True
    for stmt in children:
        if stmt.type in _NOT_BEFORE:
            continue
        if first and (block.type == "constructor_body" or _is_string_statement(stmt)):
            first = False
            continue  # Java this()/super() must stay first; docstrings and "use strict" too
        first = False
        if language in ("c", "cpp") and stmt.type == "declaration":
            continue
        slots.append(stmt)
    return slots


def _line_prefix(data: bytes, offset: int) -> bytes:
    start = data.rfind(b"\n", 0, offset) + 1
    return data[start:offset]


def insert_dead_code(source: str | bytes, language: str, seed: int | str | random.Random = 0) -> Augmented:
    """Insert one statement that never runs (or has no effect) before a statement of a function body.

    Guarantees: the result parses without errors in the same grammar (Python: also compiles); the inserted code
    uses only a fresh name (or none), so it cannot change any value; it never goes before a docstring, a
    ``"use strict"`` directive, a Java constructor's first statement, a C declaration or into a switch body; it takes
    the indentation of the statement it precedes. Skipped when the source has syntax errors or no function body
    offers such a statement boundary. The position and the form are drawn from ``seed``.
    """
    rng = _rng(seed)
    data, tree = _prepare(source, language)
    original = _decode(data)
    if language not in _DEAD:
        return Augmented(original, skipped={"dead_code": f"no dead-code rules for {language}"})
    if has_errors(tree):
        return Augmented(original, skipped={"dead_code": "source has syntax errors"})
    regions = _outermost(tree.root_node, _FUNCTIONS[language])
    slots: list[Node] = []
    for region in regions:
        for node in _walk(region):
            if node.type in _DEAD_BLOCKS[language]:
                slots.extend(_statement_slots(node, language))
    if language == "python":
        slots = [s for s in slots if not _line_prefix(data, s.start_byte).strip()]
    if not slots:
        return Augmented(original, skipped={"dead_code": "no statement boundary in a function body"})
    taken = _identifiers(tree.root_node) | (_PY_RESERVED if language == "python" else frozenset())
    rng.shuffle(slots)
    templates = _DEAD[language]
    for stmt in slots[:5]:
        prefix = _line_prefix(data, stmt.start_byte)
        at_line_start = not prefix.strip()
        indent = prefix.decode("utf-8", "surrogateescape") if at_line_start else ""
        template = rng.choice(templates)
        name = _Names(rng, set(taken)).new()
        snippet = template.format(ind=indent, name=name, k=rng.randrange(100))
        if at_line_start:
            insert = f"{snippet}\n{indent}"
        elif language == "go":
            insert = "if false {}; "
        else:
            insert = snippet.replace("\n", " ") + " "
        out = _apply(data, [(stmt.start_byte, stmt.start_byte, insert.encode())])
        if _valid(out, language):
            return Augmented(_decode(out), ("dead_code",))
        logger.debug("dead code before byte %d would not re-parse; trying another place", stmt.start_byte)
    return Augmented(original, skipped={"dead_code": "the result would not re-parse"})


_OP_FUNCTIONS: dict[str, Callable[..., Augmented]] = {"rename": rename_identifiers, "dead_code": insert_dead_code}


def augment(
    source: str | bytes, language: str, ops: Sequence[str] = OPS, seed: int | str = 0, *, params: bool = True,
) -> Augmented:
    """Apply ``ops`` in order (each to the previous result); one seeded ``random.Random`` drives every choice.

    Same ``seed`` → same output. An op that finds nothing to do or would break the parse is skipped and recorded in
    ``skipped``; the text is always valid for the grammar when the input was. ``params`` is passed to
    :func:`rename_identifiers`.
    """
    unknown = [op for op in ops if op not in _OP_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; known: {', '.join(_OP_FUNCTIONS)}")
    rng = random.Random(seed)
    text = _decode(encode_source(source))
    applied: list[str] = []
    renames: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for op in ops:
        if op == "rename":
            result = rename_identifiers(text, language, rng, params=params)
        else:
            result = _OP_FUNCTIONS[op](text, language, rng)
        text = result.text
        applied.extend(result.ops_applied)
        renames.update(result.renames)
        skipped.update(result.skipped)
    return Augmented(text, tuple(applied), renames, skipped)


def augment_chunk(chunk: Chunk, ops: Sequence[str] = OPS, seed: int | str = 0, *, params: bool = True) -> str:
    """An augmented view of ``chunk.code`` (the code without a Python docstring) in ``chunk.language``."""
    return augment(chunk.code, chunk.language, ops, seed, params=params).text


def code_pairs(
    chunks: Iterable[Any], n_views: int = 1, seed: int = 0, ops: Sequence[str] = OPS, language: str = "python",
) -> list[dict[str, str]]:
    """Code→code training rows ``{"query": code, "positive": augmented code, "task": "code-code"}``.

    ``chunks`` are :class:`~gpte.code.chunking.Chunk` objects, or any objects with ``code`` (and optionally
    ``language``, else ``language`` is used, and ``id``), such as the standard-library functions of
    :mod:`gpte.data.stdlib`. Class outlines and windows are skipped. Each view is seeded by ``(seed, id, view)``, so
    the rows do not depend on the order of the chunks; a view identical to the original (every op skipped) is
    dropped.
    """
    rows: list[dict[str, str]] = []
    for index, chunk in enumerate(chunks):
        if getattr(chunk, "kind", "function") not in ("function", "method"):
            continue
        code = chunk.code
        lang = getattr(chunk, "language", None) or language
        ident = getattr(chunk, "id", None) or str(index)
        for view in range(n_views):
            result = augment(code, lang, ops, f"{seed}:{ident}:{view}")
            if result.text != code:
                rows.append({"query": code, "positive": result.text, "task": "code-code"})
    return rows

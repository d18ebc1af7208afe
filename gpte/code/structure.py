"""Structure as encoder input: code text plus a compact, budgeted summary of its tree-sitter syntax tree.

A language model reads code as text; what the tree adds is made explicit in a header the model reads first
(UniXcoder, Guo et al. 2022, feeds a flattened AST; SynCoBERT and TreeBERT likewise learn from node types)::

    name: load config | in: config loader | params: path | calls: open, tomllib load | ast: function_definition
    with_statement return_statement call attribute
    <the code>

* ``name``: the symbol split into words (``parseHTTPHeader`` → ``parse http header``, ``load_config`` → ``load config``);
  when none is given, the name of the code's first definition;
* ``in``: the enclosing class, impl or receiver type (the chunk's ``parent``), split; absent for top-level code;
* ``params``: parameter names, split; ``calls``: the functions and methods it calls, split, in order of first use;
* ``ast``: the named node types of the tree in pre-order, repeats removed, without the identifier/literal leaves;
* a token budget: the header keeps at most ``max_header_words`` words, filled in the order above (the most
  informative first), so the code body keeps the rest of the model's window.

``mode="text"`` gives the code alone (the plain baseline), ``"ast"`` the header alone, ``"text+ast"`` both. The
settings and the grammar versions are saved with a code model (:mod:`gpte.code.encoder`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["StructureConfig", "split_identifier", "structure_header", "render"]

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_IDENT_TYPES = {"identifier", "field_identifier", "property_identifier", "type_identifier", "shorthand_property_identifier"}
_CALL_TYPES = {"call", "call_expression", "method_invocation", "macro_invocation"}
_PARAM_PARENTS = {"parameters", "formal_parameters", "parameter_list", "lambda_parameters", "typed_parameter",
                  "default_parameter", "typed_default_parameter", "formal_parameter", "parameter_declaration",
                  "required_parameter", "optional_parameter", "parameter"}
_SKIP_TYPES = {"comment", "string", "string_content", "string_start", "string_end", "integer", "float", "number",
               "escape_sequence", "line_comment", "block_comment", "interpreted_string_literal", "string_literal",
               "raw_string_literal", "char_literal", "decimal_integer_literal", "expression_statement", "block",
               "statement_block", "compound_statement", "program", "module", "source_file", "translation_unit"}


@dataclass
class StructureConfig:
    mode: Literal["text", "ast", "text+ast"] = "text+ast"  # what the encoder reads
    max_header_words: int = 48  # budget of the structural header (words)
    max_ast_types: int = 24  # at most this many node types in the header's ast part
    include_doc: bool = True  # keep the doc comment in the text (False when the doc is the query, as in training)

    def __post_init__(self) -> None:
        if self.mode not in ("text", "ast", "text+ast"):
            raise ValueError(f"structure mode must be 'text', 'ast' or 'text+ast' (got {self.mode!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_identifier(name: str) -> list[str]:
    """``parseHTTPHeader_v2`` → ``["parse", "http", "header", "v", "2"]`` (snake_case, camelCase, acronyms, digits)."""
    words: list[str] = []
    for part in re.split(r"[_\W]+", name):
        words.extend(w.lower() for w in _CAMEL.findall(part))
    return words


def _walk(node: Any) -> Any:
    cursor = node.walk()
    visited_children = False
    while True:
        if not visited_children:
            yield cursor.node
            if cursor.goto_first_child():
                continue
        if cursor.goto_next_sibling():
            visited_children = False
            continue
        if not cursor.goto_parent():
            return
        visited_children = True


def _first_definition_name(root: Any) -> str:
    for node in _walk(root):
        if node.is_named and node.type.endswith(("_definition", "_declaration", "_item", "_specifier")):
            name = node.child_by_field_name("name")
            declarator = node.child_by_field_name("declarator")
            while name is None and declarator is not None:  # C/C++: int *f(...) nests the name in declarators
                if declarator.type in _IDENT_TYPES or declarator.type in ("qualified_identifier", "operator_name"):
                    name = declarator
                declarator = declarator.child_by_field_name("declarator")
            if name is not None:
                return name.text.decode("utf-8", "replace")
    return ""


def structure_header(source: bytes, language: str, symbol: str = "", config: StructureConfig | None = None,
                     scope: str | None = None) -> str:
    """The budgeted structural header of ``source`` (see the module docstring); ``scope``: the enclosing type."""
    from gpte.code.parsing import parse

    config = config or StructureConfig()
    tree = parse(source, language)
    if not symbol:  # a bare code string: name it after its first definition
        symbol = _first_definition_name(tree.root_node)
    params: list[str] = []
    calls: list[str] = []
    types: list[str] = []
    for node in _walk(tree.root_node):
        kind = node.type
        if not node.is_named:
            continue
        if kind in _IDENT_TYPES:
            parent = node.parent
            if kind == "identifier" and parent is not None and parent.type in _PARAM_PARENTS and len(params) < 16:
                params.append(node.text.decode("utf-8", "replace"))
            continue
        if kind in _CALL_TYPES:
            callee = node.child_by_field_name("function") or node.child_by_field_name("name") or node.child(0)
            if callee is not None:
                text = callee.text.decode("utf-8", "replace").rsplit(")", 1)[-1]  # a.b(x).c → .c
                name = [p for p in re.split(r"\.|::|->", text) if p][-2:]  # object and method, at most
                calls.append(" ".join(w for part in name for w in split_identifier(part)))
        literal = kind.endswith(("_content", "literal", "_comment"))
        if kind not in _SKIP_TYPES and not literal and (not types or types[-1] != kind):
            types.append(kind)
    seen: set[str] = set()
    calls = [c for c in calls if c and not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]
    budget = config.max_header_words
    parts: list[str] = []
    for label, words in (
        ("name", split_identifier(symbol)),
        ("in", split_identifier(scope or "")),
        ("params", [w for p in dict.fromkeys(params) for w in split_identifier(p)]),
        ("calls", [w for c in calls for w in c.split()]),
        ("ast", list(dict.fromkeys(types))[: config.max_ast_types]),
    ):
        if not words or budget <= 1:
            continue
        take = words[: budget - 1]
        budget -= len(take) + 1
        parts.append(f"{label}: {' '.join(take)}")
    return " | ".join(parts)


def render(code: str, language: str, symbol: str = "", config: StructureConfig | None = None,
           doc: str | None = None, scope: str | None = None) -> str:
    """What a code encoder embeds for ``code``: the header, the text, or both (``config.mode``)."""
    config = config or StructureConfig()
    body = f"{doc}\n{code}" if config.include_doc and doc and doc not in code else code
    if config.mode == "text":
        return body
    header = structure_header(code.encode("utf-8"), language, symbol, config, scope)
    return header if config.mode == "ast" else f"{header}\n{body}"

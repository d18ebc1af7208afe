"""Documented functions of the CPython standard library on this machine: a real offline text and code corpus.

Each record pairs a function's docstring with its source, CodeSearchNet-style (Husain et al. 2019): functions and
methods with a docstring of at least 3 words, outside test folders, whose body is more than the docstring and a
``pass``/``...``. Parsed with :mod:`ast` (no imports are executed). See ``data_cards/python-stdlib.md``.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["StdlibFunction", "stdlib_root", "stdlib_functions"]

logger = logging.getLogger(__name__)

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3"}


@dataclass(frozen=True)
class StdlibFunction:
    id: str  # "module:Qualified.name" (unique; a numeric suffix separates rare duplicates)
    module: str  # dotted module name, e.g. "json.decoder"
    qualname: str  # "JSONDecoder.decode"
    path: str  # file path relative to the standard-library root
    line: int  # 1-based first line of the definition
    end_line: int  # 1-based last line
    docstring: str  # cleaned docstring
    code: str  # source of the function, docstring included
    body: str  # source of the function with its docstring removed (what code search retrieves)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def name(self) -> str:
        """The function's own name."""
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def scope(self) -> str | None:
        """The enclosing class (innermost), or None for a module-level function."""
        parts = self.qualname.split(".")
        return parts[-2] if len(parts) > 1 else None

    @property
    def summary(self) -> str:
        """First paragraph of the docstring, on one line."""
        return " ".join(self.docstring.strip().split("\n\n")[0].split())


def stdlib_root() -> Path:
    """Folder of the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _trivial(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    if not body:
        return True
    if len(body) == 1:
        stmt = body[0]
        if isinstance(stmt, ast.Pass):
            return True
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis:
            return True
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.unparse(stmt):
            return True
    return False


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                stack.append((f"{prefix}{child.name}.", child))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{prefix}{child.name}", child
                stack.append((f"{prefix}{child.name}.<locals>.", child))


def stdlib_functions(root: str | Path | None = None, min_words: int = 3, limit: int | None = None) -> list[StdlibFunction]:
    """All documented, non-trivial functions under ``root`` (default: this interpreter's standard library).

    Sorted by id, so the list (and any split made from it by hashing ids) is the same on every machine with the same
    Python version. Files that do not parse or decode are skipped with a debug message.
    """
    root = Path(root) if root is not None else stdlib_root()
    seen: dict[str, int] = {}
    out: list[StdlibFunction] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith("test_") for part in rel.parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            logger.debug("skipping %s: %s", path, exc)
            continue
        lines = source.splitlines()
        module = _module_name(rel)
        for qualname, node in _functions(tree):
            doc = ast.get_docstring(node)
            if not doc or len(doc.split()) < min_words or _trivial(node) or "<locals>" in qualname:
                continue
            if node.name.startswith("test"):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            end = node.end_lineno or node.lineno
            ident = f"{module}:{qualname}"
            if ident in seen:
                seen[ident] += 1
                ident = f"{ident}#{seen[ident]}"
            else:
                seen[ident] = 0
            code_lines = lines[start - 1 : end]
            doc_node = node.body[0]
            cut_lo, cut_hi = doc_node.lineno - start, (doc_node.end_lineno or doc_node.lineno) - start + 1
            body = "\n".join(code_lines[:cut_lo] + code_lines[cut_hi:])
            out.append(StdlibFunction(ident, module, qualname, rel.as_posix(), start, end, doc,
                                      "\n".join(code_lines), body))
    out.sort(key=lambda f: f.id)
    return out[:limit] if limit is not None else out


def split_of(item_id: str, test_fraction: float = 0.1) -> str:
    """Deterministic 'train'/'test' split by hashing the id (stable across machines and runs)."""
    bucket = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:4], "big") / 2**32
    return "test" if bucket < test_fraction else "train"


def code_search_pairs(
    functions: list[StdlibFunction] | None = None, test_fraction: float = 0.15, test_size: int = 1000, seed: int = 0,
    structure: str | None = None,
) -> tuple[list[dict], list[dict]]:
    """Docstring → function pairs (CodeSearchNet-style), split by top-level module.

    Every function of a top-level module or package (``json``, ``email``, ``asyncio`` ...) lands on the same side,
    chosen by hashing the module name, so test functions come from modules never seen in training. The query is the
    docstring's first paragraph; the document is the function's source with the docstring removed. ``test_size``
    test pairs are drawn (seeded) from the held-out side: the candidate pool of the evaluation. ``structure``
    (``"text+ast"`` or ``"ast"``) renders each document with :func:`gpte.code.structure.render` (doc excluded), the
    input a structure-aware code encoder reads.
    """
    import random

    config = None
    if structure is not None:
        from gpte.code.structure import StructureConfig, render

        config = StructureConfig(mode=structure, include_doc=False)  # type: ignore[arg-type]
    functions = functions if functions is not None else stdlib_functions()
    train, test = [], []
    for fn in functions:
        doc = fn.body if config is None else render(fn.body, "python", fn.name, config, scope=fn.scope)
        row = {"query": fn.summary, "positive": doc, "id": fn.id, "module": fn.module}
        top = fn.module.split(".")[0]
        (test if split_of(top, test_fraction) == "test" else train).append(row)
    rng = random.Random(seed)
    rng.shuffle(test)
    return train, sorted(test[:test_size], key=lambda r: r["id"])


def code_code_pairs(
    functions: list[StdlibFunction] | None = None, test_fraction: float = 0.15, limit: int | None = 1000,
    seed: int = 0, structure: str | None = None,
) -> list[dict]:
    """Code → augmented-code pairs from the *training* side of :func:`code_search_pairs` (same module split).

    Each row is ``{"query": code, "positive": view, "task": "code-code", "id"}``: the function (docstring removed,
    dedented) and a view with its identifiers renamed and dead code inserted (:func:`gpte.code.augment.augment`,
    re-parsed to stay valid). Functions whose view equals the original are dropped; ``limit`` rows are drawn
    (seeded). With ``structure`` both sides are rendered through :func:`gpte.code.structure.render`, each from its own
    tree, so a renamed view also gets a renamed header.
    """
    import random
    import textwrap

    from gpte.code.augment import augment

    config = None
    if structure is not None:
        from gpte.code.structure import StructureConfig, render

        config = StructureConfig(mode=structure, include_doc=False)  # type: ignore[arg-type]
    functions = functions if functions is not None else stdlib_functions()
    pool = [fn for fn in functions if split_of(fn.module.split(".")[0], test_fraction) == "train"]
    random.Random(seed).shuffle(pool)
    rows: list[dict] = []
    for fn in pool:
        if limit is not None and len(rows) >= limit:
            break
        code = textwrap.dedent(fn.body)
        result = augment(code, "python", seed=f"{seed}:{fn.id}")
        view = result.text
        if view == code:
            continue
        if config is not None:
            code = render(code, "python", fn.name, config, scope=fn.scope)
            view = render(view, "python", result.renames.get(fn.name, fn.name), config, scope=fn.scope)
        rows.append({"query": code, "positive": view, "task": "code-code", "id": fn.id})
    return sorted(rows, key=lambda r: r["id"])

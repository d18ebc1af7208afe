"""``gpte train``, ``gpte eval`` and ``gpte data``: thin command-line layers over the trainer and evaluators.

    gpte data stdlib-code --out runs/data            docstring→function pairs from this Python's standard library
    gpte train recipes/code-search-stdlib.toml       run a recipe (resumes from its checkpoint)
    gpte eval runs/code-search-stdlib/model --data runs/data/stdlib-code-test.jsonl --output-dir runs/eval
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]

logger = logging.getLogger("gpte.cli")


def cmd_train(args: argparse.Namespace) -> int:
    from gpte.shared.recipe import load_recipe, recipe_kind
    from gpte.shared.trainer import Trainer

    kind = recipe_kind(args.recipe)
    if kind in ("image-text", "universal"):
        return _train_multimodal(args, kind)
    config = load_recipe(args.recipe)
    if args.output_dir:
        config.output_dir = args.output_dir
    if args.max_steps is not None:
        config.max_steps = args.max_steps
    if args.device:
        config.device = args.device
    metrics = Trainer(config).train(resume=not args.no_resume)
    print(json.dumps({k: v for k, v in metrics.items() if k in ("before", "after", "steps", "train_seconds")},
                     indent=2))
    print(f"model saved to {Path(config.output_dir) / 'model'}")
    return 0


def _train_multimodal(args: argparse.Namespace, kind: str) -> int:
    """Image–text (dual tower) and universal-embedder recipes: load, apply the command-line overrides, run."""
    if kind == "image-text":
        from gpte.multimodal.recipe import load_image_text_recipe as load
        from gpte.multimodal.recipe import run_image_text_recipe as run

        if args.max_steps is not None:
            raise SystemExit("--max-steps applies to text and universal recipes; set [train] epochs in an image-text "
                             "recipe")
    else:
        from gpte.multimodal.universal_recipe import load_universal_recipe as load
        from gpte.multimodal.universal_recipe import run_universal_recipe as run
    recipe = load(args.recipe)
    if args.output_dir:
        recipe.output_dir = args.output_dir
    if args.device:
        recipe.device = args.device
    if args.max_steps is not None:
        recipe.train.max_steps = args.max_steps
    results = run(recipe)
    print(json.dumps({k: v for k, v in results.items() if k not in ("recipe", "log")}, indent=2))
    print(f"model saved to {results['model']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import gpte
    from gpte.shared.data import DatasetSpec, load_jsonl
    from gpte.shared.evaluation import RetrievalEvaluator, STSEvaluator

    model = gpte.load(args.model, **({"device": args.device} if args.device else {}))
    ds = load_jsonl(DatasetSpec(args.data, limit=args.limit))
    out = Path(args.output_dir) if args.output_dir else None
    if all(ex.score is not None for ex in ds.examples):
        evaluator: Any = STSEvaluator([(ex.query, ex.positive) for ex in ds.examples],
                                      [float(ex.score) for ex in ds.examples])  # type: ignore[arg-type]
        kind = "sts"
    else:
        queries = {f"q{i}": ex.query for i, ex in enumerate(ds.examples)}
        corpus = {f"d{i}": ex.positive for i, ex in enumerate(ds.examples)}
        qrels = {f"q{i}": {f"d{i}": 1.0} for i in range(len(ds.examples))}
        evaluator = RetrievalEvaluator(queries, corpus, qrels, k_values=args.k, main_metric=args.main_metric)
        kind = "retrieval"
    scores = evaluator(model, output_dir=out) if out else evaluator(model)
    print(json.dumps({"task": kind, "model": str(args.model), "examples": len(ds), "scores": scores}, indent=2))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from gpte.data.stdlib import code_search_pairs
    from gpte.shared.fsio import atomic_writer

    train, test = code_search_pairs(test_fraction=args.test_fraction, test_size=args.test_size,
                                    structure=args.structure)
    out = Path(args.out)
    stem = "stdlib-code" if args.structure is None else f"stdlib-code-{args.structure.replace('+', '-')}"
    for name, rows in (("train", train), ("test", test)):
        with atomic_writer(out / f"{stem}-{name}.jsonl", "w") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"wrote {len(train)} training and {len(test)} held-out pairs to {out}/{stem}-{{train,test}}.jsonl")
    if args.code_pairs:
        from gpte.data.stdlib import code_code_pairs

        rows = code_code_pairs(test_fraction=args.test_fraction, limit=args.code_pairs, structure=args.structure)
        with atomic_writer(out / f"{stem}-code-code-train.jsonl", "w") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        print(f"wrote {len(rows)} code→code pairs to {out}/{stem}-code-code-train.jsonl")
    return 0


def add_parsers(sub: Any) -> None:
    """Register the subcommands on ``sub`` (an argparse sub-parser collection)."""
    p = sub.add_parser("train", help="fine-tune an embedder from a recipe file (TOML or JSON)")
    p.add_argument("recipe", help="recipe file; see gpte.shared.recipe for its keys")
    p.add_argument("--output-dir", help="override the recipe's output_dir")
    p.add_argument("--max-steps", type=int, default=None, help="override the recipe's step budget")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when present)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in output_dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate an embedder on JSONL pairs (retrieval) or graded pairs (STS)")
    p.add_argument("model", help="registered name or folder")
    p.add_argument("--data", required=True, help="JSONL: {query, positive} rows (retrieval: every positive is a "
                                                 "candidate) or {query, positive, score} rows (STS)")
    p.add_argument("--limit", type=int, default=None, help="use the first N rows")
    p.add_argument("-k", type=int, nargs="+", default=[1, 5, 10, 100], help="retrieval cut-offs")
    p.add_argument("--main-metric", default=None, help="e.g. mrr@10 (default: ndcg@10)")
    p.add_argument("--output-dir", help="write results.json and figures here")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("data", help="build the offline training and evaluation corpora")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="CORPUS")
    d = dsub.add_parser("stdlib-code", help="docstring→function pairs of this Python's standard library, split by "
                                            "top-level module")
    d.add_argument("--out", required=True, help="folder for stdlib-code-train.jsonl and stdlib-code-test.jsonl")
    d.add_argument("--test-fraction", type=float, default=0.15, help="fraction of top-level modules held out")
    d.add_argument("--test-size", type=int, default=1000, help="held-out pairs kept (the candidate pool)")
    d.add_argument("--structure", choices=["text+ast", "ast"], default=None,
                   help="render documents with the structural header (gpte.code.structure); default: plain code")
    d.add_argument("--code-pairs", type=int, default=0, metavar="N",
                   help="also write N code→augmented-code pairs from the training modules (renamed identifiers, "
                        "dead code)")
    d.set_defaults(func=cmd_data)

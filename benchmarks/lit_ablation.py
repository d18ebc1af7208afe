"""Ablations of the default image–text model on its cached frozen features: heads, loss, schedule.

    python benchmarks/lit_ablation.py [--recipe recipes/lit-lite0-minilm.toml]

Runs the recipe's data preparation (features are computed once and cached in its output folder), then trains the
heads of each variant on the same training split and reports the held-out figures: recall@1/5/10 both ways and
zero-shot emoji-category accuracy. Only the heads train (both towers frozen), so each variant takes seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VARIANTS: dict[str, dict[str, dict]] = {
    "recipe": {},
    "sigmoid loss": {"train": {"loss": "sigmoid"}},
    "10 epochs": {"train": {"epochs": 10}},
    "20 epochs": {"train": {"epochs": 20}},
    "80 epochs": {"train": {"epochs": 80}},
    "weight decay 0.5": {"train": {"weight_decay": 0.5}},
    "batch 1024": {"train": {"batch_size": 1024}},
    "mlp image head (adapter)": {"model": {"image_head": "mlp"}},
    "mlp heads both sides": {"model": {"image_head": "mlp", "text_head": "mlp"}},
    "dim 128": {"model": {"dim": 128}},
    "dim 512": {"model": {"dim": 512}},
    "mlp image head, 10 epochs": {"model": {"image_head": "mlp"}, "train": {"epochs": 10}},
    "mlp image head, 20 epochs": {"model": {"image_head": "mlp"}, "train": {"epochs": 20}},
    "mlp image head, batch 1024": {"model": {"image_head": "mlp"}, "train": {"batch_size": 1024}},
    "mlp image head, 20 ep, sigmoid": {"model": {"image_head": "mlp"}, "train": {"epochs": 20, "loss": "sigmoid"}},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/lit-lite0-minilm.toml")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from gpte.multimodal.recipe import load_image_text_recipe, prepare, train_and_evaluate

    recipe = load_image_text_recipe(args.recipe)
    recipe.install_data = False
    data = prepare(recipe)
    keys = ["text_to_image_R@1", "text_to_image_R@5", "text_to_image_R@10", "image_to_text_R@1",
            "image_to_text_R@5", "image_to_text_R@10", "emoji_category_zero_shot_acc"]
    rows = {}
    for name, change in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        model_cfg = dataclasses.replace(recipe.model, **change.get("model", {}))
        train_cfg = dataclasses.replace(recipe.train, **change.get("train", {}))
        _, result = train_and_evaluate(recipe, data, train_cfg.loss, model_cfg, train_cfg)
        rows[name] = {k: result["metrics"][k] for k in keys} | {"seconds": result["train_seconds"]}
        sys.stdout.write(f"{name:28s} " + " ".join(f"{rows[name][k]:.3f}" for k in keys) + "\n")
        sys.stdout.flush()
    sys.stdout.write(json.dumps({"n_train": len(data.train), "n_test": len(data.test), "columns": keys,
                                 "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

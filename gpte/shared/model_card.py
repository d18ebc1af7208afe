"""Model cards: what a trained model is, how it was made (the recipe), from which data, and how well it does."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from gpte.shared.fsio import atomic_write_bytes

__all__ = ["write_model_card"]


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| field | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows]])


def write_model_card(path: Path, config: Any, datasets: list[Any], metrics: dict[str, Any]) -> Path:
    """Write ``path/README.md`` (and ``path/recipe.json``) for a model trained from ``config``."""
    import gpte

    recipe = config.to_dict()
    data_rows = [(ds.name, f"{len(ds)} examples from `{ds.source}`; query instruction {ds.query_instruction!r}, "
                           f"document instruction {ds.document_instruction!r}") for ds in datasets]
    name = Path(path).parent.name if Path(path).name == "model" else Path(path).name  # the run's folder name
    lines = [
        f"# Model card: {name}",
        "",
        f"Fine-tuned from `{config.model}` with gpte {gpte.__version__} "
        f"({'LoRA adapter' if config.lora else 'full fine-tuning'}, {config.loss.name} loss).",
        "",
        "## Data",
        _table(data_rows),
        "",
        "## Training",
        _table([("steps", str(metrics.get("steps"))), ("time", f"{metrics.get('train_seconds')} s on "
                                                                 f"{metrics.get('device')} ({platform.machine()})"),
                ("batch size", str(config.batch_size)), ("learning rate", str(config.learning_rate)),
                ("epochs", str(config.epochs)), ("temperature", str(config.loss.temperature)),
                ("hard negatives", json.dumps(recipe.get("mining")))]),
        "",
        "## Evaluation",
    ]
    for when in ("before", "after"):
        if when in metrics:
            shown = {k: round(v, 4) for k, v in metrics[when].items() if "@" in k and k.split("@")[0] in (
                "mrr", "recall", "ndcg")}
            lines += [f"{when} training: " + ", ".join(f"{k} {v}" for k, v in sorted(shown.items())), ""]
    if "before" not in metrics and "after" not in metrics:
        lines += ["No held-out evaluation in the recipe.", ""]
    lines += ["## Recipe", "", "```json", json.dumps(recipe, indent=2), "```", ""]
    atomic_write_bytes(Path(path) / "README.md", "\n".join(lines).encode("utf-8"))
    return Path(path) / "README.md"

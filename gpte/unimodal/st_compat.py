"""Load a sentence-transformers model folder as a :class:`~gpte.unimodal.text.TextEncoder`.

Honoured: ``modules.json`` with the modules Transformer, Pooling, Dense (one), Normalize;
``sentence_bert_config.json`` (``max_seq_length``, ``do_lower_case``); ``1_Pooling/config.json`` (every single
pooling mode and ``include_prompt``); ``config_sentence_transformers.json`` prompts named ``query`` and
``document``. Anything else raises an error that names the module, instead of silently embedding differently.
Dense weights load from safetensors, or from ``pytorch_model.bin`` with ``weights_only=True`` (no unpickling).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from gpte.shared.pooling import PoolingConfig
from gpte.unimodal.text import TextEncoder, TextEncoderConfig

__all__ = ["is_sentence_transformers_folder", "load_sentence_transformers"]

_ST_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weighted_mean",
    "pooling_mode_lasttoken": "last",
}
_ST_POOLING_NAMES = {"cls": "cls", "mean": "mean", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len",
                     "weightedmean": "weighted_mean", "lasttoken": "last"}
_ACTIVATIONS = {"Tanh": "tanh", "Identity": "identity"}


def is_sentence_transformers_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "modules.json").is_file()


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _pooling(cfg: dict[str, Any], where: Path) -> PoolingConfig:
    if isinstance(cfg.get("pooling_mode"), str):
        modes = [_ST_POOLING_NAMES.get(cfg["pooling_mode"], cfg["pooling_mode"])]
    else:
        modes = [mode for key, mode in _ST_POOLING.items() if cfg.get(key)]
    if len(modes) != 1:
        raise NotImplementedError(f"{where}: gpte supports exactly one pooling mode, this model asks for {modes or 'none'}")
    return PoolingConfig(mode=modes[0], include_prompt=bool(cfg.get("include_prompt", True)))


def _max_length(st_cfg: dict[str, Any], backbone: Path) -> int:
    """``max_seq_length`` (sentence-transformers < 6) or the tokenizer's ``model_max_length`` (6.x), else 512."""
    if st_cfg.get("max_seq_length"):
        return int(st_cfg["max_seq_length"])
    tok_max = _read_json(backbone / "tokenizer_config.json").get("model_max_length")
    return int(tok_max) if isinstance(tok_max, int | float) and 1 < tok_max < 1_000_000 else 512


def _dense_state(folder: Path) -> dict[str, torch.Tensor]:
    st_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st_file.is_file():
        from safetensors.torch import load_file

        state = load_file(str(st_file), device="cpu")
    elif bin_file.is_file():
        state = torch.load(bin_file, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin for the Dense module")
    return {k.removeprefix("linear."): v for k, v in state.items()}


def load_sentence_transformers(
    path: str | os.PathLike[str], device: str | torch.device | None = None, dtype: torch.dtype | None = None,
    name: str | None = None,
) -> TextEncoder:
    """Build a :class:`TextEncoder` that embeds exactly as sentence-transformers does with the same folder."""
    root = Path(path)
    modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    backbone: Path | None = None
    pooling: PoolingConfig | None = None
    dense: tuple[dict[str, Any], Path] | None = None
    normalize = False
    st_cfg: dict[str, Any] = {}
    for module in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = module["type"].rsplit(".", 1)[-1]
        folder = root / module.get("path", "")
        if kind == "Transformer":
            backbone = folder
            st_cfg = _read_json(folder / "sentence_bert_config.json")
        elif kind == "Pooling":
            pooling = _pooling(_read_json(folder / "config.json"), folder)
        elif kind == "Dense":
            if dense is not None:
                raise NotImplementedError(f"{root}: more than one Dense module is not supported")
            dense = (_read_json(folder / "config.json"), folder)
        elif kind == "Normalize":
            normalize = True
        else:
            raise NotImplementedError(f"{root}: sentence-transformers module {module['type']!r} is not supported by gpte")
    if backbone is None or pooling is None:
        raise ValueError(f"{root}/modules.json has no Transformer or no Pooling module")
    prompts = _read_json(root / "config_sentence_transformers.json").get("prompts", {}) or {}
    config = TextEncoderConfig(
        backbone=str(backbone.resolve()),
        pooling=pooling,
        max_length=_max_length(st_cfg, backbone),
        normalize=normalize,
        query_prompt=prompts.get("query", ""),
        document_prompt=prompts.get("document", prompts.get("passage", "")),
        lowercase=bool(st_cfg.get("do_lower_case", False)),
        name=name or root.name,
    )
    if dense is not None:
        dcfg, folder = dense
        act = str(dcfg.get("activation_function", "torch.nn.modules.activation.Tanh")).rsplit(".", 1)[-1]
        if act not in _ACTIVATIONS:
            raise NotImplementedError(f"{folder}: Dense activation {act!r} is not supported (Tanh or Identity)")
        config.projection_dim = int(dcfg["out_features"])
        config.projection_bias = bool(dcfg.get("bias", True))
        config.projection_activation = _ACTIVATIONS[act]  # type: ignore[assignment]
    encoder = TextEncoder.from_backbone(backbone, config=config, device=device, dtype=dtype)
    if dense is not None and encoder.projection is not None:
        state = _dense_state(dense[1])
        encoder.projection[0].load_state_dict(state)
        encoder.projection.to(device=encoder.device, dtype=next(encoder.backbone.parameters()).dtype)
    # sentence-transformers pads on the tokenizer's side (left for most decoder embedders)
    encoder.config.padding_side = "left" if getattr(encoder.tokenizer, "padding_side", "right") == "left" else "right"
    return encoder

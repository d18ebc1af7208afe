"""Text encoders: a pretrained language model + pooling + optional projection + normalisation.

``TextEncoder`` wraps any Hugging Face encoder (BERT, RoBERTa, ...) or decoder (Llama, Qwen2, ...) backbone loaded from
a local folder. An embedding is computed as

    h = backbone(prompt ⊕ text)              token states [B, L, H] (or the top-K layers averaged)
    x = pool(h, mask)                         [B, H]   (gpte.shared.pooling)
    x = act(W x + b)                          [B, P]   (optional projection)
    x = x[:, :d]                              Matryoshka truncation at encode time (Kusupati et al. 2022)
    x = x / ‖x‖₂                              when ``normalize``

Saved as a folder: ``gpte.json`` (this config), ``backbone/`` (the HF model in safetensors and its tokenizer) and
``head.safetensors`` (the projection, when there is one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpte.shared.batching import length_sorted_batches, pad_batch, prefetch
from gpte.shared.errors import ModelNotFoundError
from gpte.shared.fsio import atomic_directory, atomic_write_json
from gpte.shared.inputs import validate_texts
from gpte.shared.pooling import Pooling, PoolingConfig

__all__ = ["TextEncoderConfig", "TextEncoder"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "gpte.json"
FORMAT = "gpte-text-encoder"
FORMAT_VERSION = 1
Output = Literal["numpy", "torch"]
Precision = Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"]


@dataclass
class TextEncoderConfig:
    backbone: str = "backbone"  # HF model folder, relative to the saved encoder folder or absolute
    pooling: PoolingConfig = field(default_factory=PoolingConfig)  # token states → one vector
    max_length: int = 512  # tokens per input, prompt and special tokens included
    normalize: bool = True  # L2-normalise embeddings (cosine similarity = dot product)
    projection_dim: int | None = None  # linear projection after pooling; None = none
    projection_bias: bool = True  # bias term of the projection
    projection_activation: Literal["identity", "tanh"] = "identity"  # applied after the projection
    query_prompt: str = ""  # prepended by encode_query (e.g. "query: " for E5, an instruction for decoders)
    document_prompt: str = ""  # prepended by encode_document
    padding_side: Literal["right", "left"] = "right"  # decoders are usually run with left padding
    append_eos: bool = False  # append the tokenizer's EOS token (decoders whose tokenizer does not add one)
    truncate_dim: int | None = None  # default Matryoshka truncation of encode(); None = full dimension
    lowercase: bool = False  # lower-case texts before tokenising (sentence-transformers' do_lower_case)
    base: str | None = None  # adapter-only saves: registry name or folder of the base encoder the adapter applies to
    name: str = ""  # display name (registry name or folder name)

    def __post_init__(self) -> None:
        if isinstance(self.pooling, dict):
            self.pooling = PoolingConfig(**self.pooling)
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (got {self.max_length})")
        if self.padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left' (got {self.padding_side!r})")
        if self.projection_activation not in ("identity", "tanh"):
            raise ValueError(f"projection_activation must be 'identity' or 'tanh' (got {self.projection_activation!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextEncoderConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown text-encoder config fields {unknown}; this gpte knows {sorted(known)}")
        return cls(**data)


def _activation(name: str) -> nn.Module:
    return nn.Tanh() if name == "tanh" else nn.Identity()


class _Tokens:
    """Token ids without padding, plus the special tokens a sequence starts and ends with.

    Wraps the tokenizer's Rust backend (``tokenizers``) directly when there is one: one batched call per chunk, no
    padding or truncation state shared with the user's tokenizer object.
    """

    def __init__(self, tokenizer: Any, append_eos: bool) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            self.fast = Tokenizer.from_str(backend.to_str())
            self.fast.no_padding()
            self.fast.no_truncation()
        else:  # pragma: no cover - slow (pure Python) tokenizers
            self.fast = None
        probe = self.ids(["hello"])[0]
        full = self._with_specials("hello")
        start = next((i for i in range(len(full) - len(probe) + 1) if full[i : i + len(probe)] == probe), None)
        if start is None:  # pragma: no cover - exotic post-processors
            self.prefix, self.suffix = [], []
        else:
            self.prefix, self.suffix = full[:start], full[start + len(probe) :]
        eos = getattr(tokenizer, "eos_token_id", None)
        if append_eos:
            if eos is None:
                raise ValueError("append_eos=True but the tokenizer has no eos_token")
            if not self.suffix or self.suffix[-1] != eos:
                self.suffix = self.suffix + [eos]
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = pad if pad is not None else (eos if eos is not None else 0)

    def _with_specials(self, text: str) -> list[int]:
        if self.fast is not None:
            return self.fast.encode(text, add_special_tokens=True).ids
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])  # pragma: no cover

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, no special tokens, no truncation."""
        if self.fast is not None:
            return [e.ids for e in self.fast.encode_batch(list(texts), add_special_tokens=False)]
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]  # pragma: no cover

    def ids_after_prompt(self, texts: Sequence[str], prompt_chars: int) -> tuple[list[list[int]], list[int]]:
        """Token ids of each ``prompt + text`` and how many leading tokens lie wholly inside the prompt.

        Counted from the character offsets of the joint tokenisation: with byte-level BPE or SentencePiece a prompt's
        trailing space merges into the text's first token ("Ġhello"), which then belongs to the text.
        """
        if self.fast is None:  # pragma: no cover - slow tokenizers: count the prompt tokenised alone
            ids = self.ids(texts)
            n = len(self.ids([texts[0][:prompt_chars]])[0]) if prompt_chars and texts else 0
            return ids, [n] * len(ids)
        encodings = self.fast.encode_batch(list(texts), add_special_tokens=False)
        counts = [sum(1 for _, end in e.offsets if end <= prompt_chars) if prompt_chars else 0 for e in encodings]
        return [e.ids for e in encodings], counts


@dataclass
class _Segments:
    """Token sequences to run through the model; a long text may own several (``long_texts='chunk'``)."""

    seqs: list[list[int]]  # full sequences, special tokens included
    owner: np.ndarray  # [S] index of the input text each sequence belongs to
    prompt_len: np.ndarray  # [S] leading tokens (specials + prompt) of each sequence
    weight: np.ndarray  # [S] text tokens a window adds to its text's average (1 for a whole text)
    truncated: int  # texts cut at max_length


class TextEncoder(nn.Module):
    """A text embedder: backbone → pooling → optional projection → normalise. See the module docstring."""

    modality = "text"

    def __init__(self, config: TextEncoderConfig, backbone: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = Pooling(config.pooling)
        hidden = int(backbone.config.hidden_size)
        self.projection: nn.Module | None = None
        if config.projection_dim is not None:
            self.projection = nn.Sequential(
                nn.Linear(hidden, config.projection_dim, bias=config.projection_bias),
                _activation(config.projection_activation),
            )
        full = config.projection_dim or hidden
        if config.truncate_dim is not None and not 1 <= config.truncate_dim <= full:
            raise ValueError(f"truncate_dim={config.truncate_dim} must lie in 1..{full}")
        self._tokens = _Tokens(tokenizer, config.append_eos)
        self._prompt_cache: dict[str, int] = {}
        self._weights_digest: str | None = None  # see fingerprint(); kept across dtype casts and device moves
        self.source = config.name  # what gpte.load was given (registry name or absolute folder); set by gpte.load

    # ------------------------------------------------------------------ properties
    @property
    def full_dim(self) -> int:
        """Dimension before Matryoshka truncation."""
        return int(self.config.projection_dim or self.backbone.config.hidden_size)

    @property
    def embed_dim(self) -> int:
        """Dimension of what :meth:`encode` returns by default."""
        return int(self.config.truncate_dim or self.full_dim)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def max_length(self) -> int:
        limit = getattr(self.backbone.config, "max_position_embeddings", None)
        return min(self.config.max_length, int(limit)) if limit else self.config.max_length

    # ------------------------------------------------------------------ tokenising
    def _prompt_tokens(self, prompt: str) -> int:
        if prompt not in self._prompt_cache:
            self._prompt_cache[prompt] = len(self._tokens.ids([prompt])[0]) if prompt else 0
        return self._prompt_cache[prompt]

    def _segments(self, texts: Sequence[str], prompt: str, long_texts: str) -> _Segments:
        """Token sequences for ``texts``: whole, truncated, or (``long_texts='chunk'``) overlapping windows.

        Windows step by 7/8 of their width and the last one is aligned to the end of the text; each window's weight
        is the number of text tokens it adds that no earlier window covered, so the weights of a text sum to its
        length and the average counts every token once.
        """
        tok = self._tokens
        budget = self.max_length - len(tok.prefix) - len(tok.suffix)  # tokens for prompt + text
        if budget - self._prompt_tokens(prompt) < 1:
            raise ValueError(f"the prompt {prompt!r} takes {self._prompt_tokens(prompt)} tokens, leaving no room in "
                             f"max_length={self.max_length}")
        seqs: list[list[int]] = []
        owner: list[int] = []
        plens: list[int] = []
        weights: list[float] = []
        truncated = 0
        joined = [prompt + t for t in texts]
        if self.config.lowercase:
            joined = [t.lower() for t in joined]
        all_ids, prompt_counts = tok.ids_after_prompt(joined, len(prompt))
        lead = len(tok.prefix)
        for i, (ids, n_prompt) in enumerate(zip(all_ids, prompt_counts, strict=True)):
            if len(ids) <= budget or long_texts == "truncate":
                truncated += len(ids) > budget
                seqs.append(tok.prefix + ids[:budget] + tok.suffix)
                owner.append(i)
                plens.append(lead + n_prompt)
                weights.append(1.0)
                continue
            truncated += 1
            head, body = ids[:n_prompt], ids[n_prompt:]
            width = budget - n_prompt
            step = max(1, width - width // 8)  # windows overlap by 1/8 so no sentence is cut without context
            starts = list(range(0, len(body) - width, step)) + [len(body) - width]
            covered = 0
            for start in starts:
                seqs.append(tok.prefix + head + body[start : start + width] + tok.suffix)
                owner.append(i)
                plens.append(lead + n_prompt)
                weights.append(float(start + width - covered))
                covered = start + width
        return _Segments(seqs, np.asarray(owner, dtype=np.int64), np.asarray(plens, dtype=np.int64),
                         np.asarray(weights, dtype=np.float32), truncated)

    def tokenize(self, texts: Sequence[str], prompt: str = "") -> dict[str, Tensor]:
        """Tokenise for training: ``input_ids``/``attention_mask`` ``[B, L]`` and ``prompt_lengths`` ``[B]``.

        Texts longer than ``max_length`` are truncated (training does not chunk).
        """
        items, _ = validate_texts(texts)
        seg = self._segments(items, prompt, "truncate")
        ids, mask = pad_batch(seg.seqs, self._tokens.pad_id, self.config.padding_side)
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "prompt_lengths": torch.from_numpy(seg.prompt_len),
        }

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: Tensor, attention_mask: Tensor, prompt_lengths: Tensor | None = None) -> Tensor:
        """Embed a tokenised batch → ``[B, full_dim]`` float32, normalised when the config says so."""
        return self._finish(self._pooled(input_ids, attention_mask, prompt_lengths), None, self.config.normalize)

    def _pooled(self, input_ids: Tensor, attention_mask: Tensor, prompt_lengths: Tensor | None) -> Tensor:
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.config.padding_side == "left":
            # positions count from the first real token, as if the row were not padded
            kwargs["position_ids"] = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        if self.pooling.needs_hidden_states:
            kwargs["output_hidden_states"] = True
        out = self.backbone(**kwargs)
        hidden = out.hidden_states if self.pooling.needs_hidden_states else out.last_hidden_state  # [B, L, H]
        x = self.pooling(hidden, attention_mask, prompt_lengths)  # [B, H]
        if self.projection is not None:
            x = self.projection(x)  # [B, P]
        return x

    @staticmethod
    def _finish(x: Tensor, truncate_dim: int | None, normalize: bool) -> Tensor:
        x = x.float()
        if truncate_dim is not None:
            x = x[:, :truncate_dim]
        return F.normalize(x, p=2, dim=-1) if normalize else x

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        prompt: str = "",
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        normalize: bool | None = None,
        truncate_dim: int | None = None,
        output: Output = "numpy",
        precision: Precision = "float32",
        show_progress: bool | None = None,
        long_texts: Literal["truncate", "chunk"] = "truncate",
        chunk_size: int = 16384,
        ranges: np.ndarray | None = None,
    ) -> np.ndarray | Tensor:
        """Embed ``texts`` (one string → one vector; a sequence → ``[N, D]``).

        Texts are tokenised in chunks of ``chunk_size`` by a background thread, sorted by length and padded per
        batch, so the model never waits on Python. A batch holds at most ``batch_size`` texts and at most
        ``max_batch_tokens`` padded tokens (defaults: 256 and 1,024 on a CPU, where small matrices stay in cache;
        1,024 and 65,536 on a GPU). ``long_texts='chunk'`` embeds a text longer than ``max_length``
        as overlapping windows whose pooled vectors are averaged, weighted by token count. ``precision`` other than
        float32 quantises for storage (``gpte.shared.quantize``). int8/uint8 need the same per-dimension ranges for
        every call, or codes of different calls would not compare: ``ranges`` (``(2, D)`` mins and maxs, e.g.
        ``compute_ranges`` of a calibration sample), else ``[-1, 1]`` for normalised embeddings (every component of a
        unit vector lies there). Rows come back in input order.
        """
        if long_texts not in ("truncate", "chunk"):
            raise ValueError(f"long_texts must be 'truncate' or 'chunk' (got {long_texts!r})")
        if output not in ("numpy", "torch"):
            raise ValueError(f"output must be 'numpy' or 'torch' (got {output!r})")
        items, single = validate_texts(texts)
        normalize = self.config.normalize if normalize is None else normalize
        truncate_dim = truncate_dim or self.config.truncate_dim
        if truncate_dim is not None and not 1 <= truncate_dim <= self.full_dim:
            raise ValueError(f"truncate_dim={truncate_dim} must lie in 1..{self.full_dim}")
        on_gpu = self.device.type != "cpu"
        batch_size = batch_size or (1024 if on_gpu else 256)
        max_batch_tokens = max_batch_tokens or (65536 if on_gpu else 1024)
        emb = self._encode_all(items, prompt, (batch_size, max_batch_tokens), show_progress, long_texts,
                               chunk_size)  # [N, full]
        emb = self._finish(emb, truncate_dim, normalize)  # [N, D] float32
        if precision != "float32" or output == "numpy":
            arr = emb.cpu().numpy()
            if precision != "float32":
                from gpte.shared.quantize import quantize_embeddings

                if precision in ("int8", "uint8") and ranges is None:
                    if not normalize:
                        raise ValueError(f"{precision} codes of unnormalised embeddings need ranges= (per-dimension "
                                         "[mins, maxs], e.g. gpte.shared.quantize.compute_ranges(calibration))")
                    ranges = np.stack([np.full(arr.shape[1], -1.0), np.full(arr.shape[1], 1.0)]).astype(np.float32)
                arr = quantize_embeddings(arr, precision, ranges=ranges)
            if output == "torch":
                return torch.from_numpy(arr[0] if single else arr)
            return arr[0] if single else arr
        return emb[0] if single else emb

    def encode_query(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray | Tensor:
        """:meth:`encode` with the configured query prompt (``config.query_prompt``)."""
        return self.encode(texts, prompt=kwargs.pop("prompt", self.config.query_prompt), **kwargs)

    def encode_document(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray | Tensor:
        """:meth:`encode` with the configured document prompt (``config.document_prompt``)."""
        return self.encode(texts, prompt=kwargs.pop("prompt", self.config.document_prompt), **kwargs)

    def _batches(
        self, items: list[str], prompt: str, batching: tuple[int, int], long_texts: str, chunk_size: int
    ) -> Iterator[tuple[Tensor, Tensor, np.ndarray, np.ndarray]]:
        """Yield padded CPU batches ``(ids [B, L], mask [B, L], prompt_len [B], owner [B], weight [B])``.

        Runs in the prefetch worker thread.
        """
        pin = self.device.type == "cuda"
        truncated = 0
        for lo in range(0, len(items), chunk_size):
            seg = self._segments(items[lo : lo + chunk_size], prompt, long_texts)
            truncated += seg.truncated
            lengths = np.fromiter((len(s) for s in seg.seqs), dtype=np.int64, count=len(seg.seqs))
            for rows in length_sorted_batches(lengths, *batching):
                ids, mask = pad_batch([seg.seqs[r] for r in rows], self._tokens.pad_id, self.config.padding_side)
                t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
                if pin:
                    t_ids, t_mask = t_ids.pin_memory(), t_mask.pin_memory()
                yield t_ids, t_mask, torch.from_numpy(seg.prompt_len[rows]), seg.owner[rows] + lo, seg.weight[rows]
        if truncated:
            hint = "they were embedded as overlapping windows" if long_texts == "chunk" else (
                "they were truncated; pass long_texts='chunk' to embed them as overlapping windows")
            (logger.info if long_texts == "chunk" else logger.warning)(
                "%d of %d texts are longer than max_length=%d tokens: %s", truncated, len(items), self.max_length, hint)

    @torch.inference_mode()
    def _encode_all(
        self, items: list[str], prompt: str, batching: tuple[int, int], show_progress: bool | None,
        long_texts: str, chunk_size: int,
    ) -> Tensor:
        from tqdm.auto import tqdm

        if show_progress is None:
            show_progress = len(items) >= 2048 and sys.stderr.isatty()
        device = self.device
        was_training = self.training
        self.eval()
        sums = torch.zeros(len(items), self.full_dim, dtype=torch.float32, device=device)  # [N, D]
        weights = torch.zeros(len(items), dtype=torch.float32, device=device)  # [N]
        bar = tqdm(total=len(items), unit="text", disable=not show_progress, desc="encode")
        try:
            for ids, mask, plen, owner, weight in prefetch(
                self._batches(items, prompt, batching, long_texts, chunk_size)
            ):
                ids = ids.to(device, non_blocking=True)
                mask = mask.to(device, non_blocking=True)
                pooled = self._pooled(ids, mask, plen.to(device)).float()  # [B, D]
                owner_t = torch.from_numpy(owner).to(device)
                w = torch.from_numpy(weight).to(device)  # [B] window weights (1 for whole texts)
                sums.index_add_(0, owner_t, pooled * w[:, None])
                weights.index_add_(0, owner_t, w)
                bar.update(len(np.unique(owner)))
        finally:
            bar.close()
            self.train(was_training)
        return sums / weights[:, None]  # one segment per text: the pooled vector itself

    # ------------------------------------------------------------------ identity and persistence
    def fingerprint(self) -> str:
        """Digest of the settings that shape document embeddings and of the weights.

        Two encoders with equal fingerprints embed identically (up to the dtype they run in). The weights part is the
        digest of the weight files a model was loaded from (:func:`weights_digest`), or of the in-memory tensors for a
        model built in-process; casting to float16 or moving devices keeps it, so an index built on a GPU opens on a
        CPU. Call :meth:`refresh_fingerprint` after changing weights in place (training).
        """
        if self._weights_digest is None:
            self._weights_digest = _state_digest(self)
        h = hashlib.blake2b(digest_size=16)
        settings = {k: v for k, v in self.config.to_dict().items() if k not in ("name", "backbone", "base")}
        h.update(json.dumps(settings, sort_keys=True).encode())
        h.update(self._weights_digest.encode())
        return h.hexdigest()

    def refresh_fingerprint(self) -> str:
        """Recompute the weights digest from the tensors in memory (after training or editing weights)."""
        self._weights_digest = _state_digest(self)
        return self.fingerprint()

    def identity(self) -> dict[str, Any]:
        """What an index records about the model that filled it (compared again when the index is loaded)."""
        return {"name": self.config.name, "source": self.source, "modality": self.modality, "dim": self.embed_dim,
                "normalize": self.config.normalize, "fingerprint": self.fingerprint()}

    def save(self, path: str | os.PathLike[str], adapter_only: bool = False) -> Path:
        """Save as ``gpte.json`` + ``backbone/`` (safetensors + tokenizer) + ``head.safetensors``; atomic.

        With an adapter attached (LoRA), ``adapter_only=True`` writes ``adapter/`` (the adapter weights, small) and
        records ``base`` = the registry name or folder the base encoder was loaded from; otherwise the adapter is
        merged into a copy of the backbone and the full model is written.
        """
        from safetensors.torch import save_file

        from gpte.shared.adapters import has_adapter, merged_copy

        path = Path(path)
        config = self.config.to_dict()
        adapter = has_adapter(self.backbone)
        if adapter_only and not adapter:
            raise ValueError("adapter_only=True but this encoder has no adapter attached")
        if adapter_only:
            base = self.config.base or self.source
            if not base:
                raise ValueError("an adapter-only save needs to know the base model: load it with gpte.load")
            config["base"], config["backbone"] = base, ""
        else:
            config["base"], config["backbone"] = None, "backbone"
        digest = _state_digest(self)  # what these weights are now (training may have changed them)
        with atomic_directory(path) as tmp:
            if adapter_only:
                self.backbone.save_pretrained(tmp / "adapter", safe_serialization=True)
            else:
                backbone = merged_copy(self.backbone) if adapter else self.backbone
                backbone.save_pretrained(tmp / "backbone", safe_serialization=True)
                self.tokenizer.save_pretrained(tmp / "backbone")
            if self.projection is not None:
                state = {k: v.detach().cpu().contiguous() for k, v in self.projection.state_dict().items()}
                save_file(state, str(tmp / "head.safetensors"))
            meta = {"format": FORMAT, "version": FORMAT_VERSION, "config": config, "weights_digest": digest}
            atomic_write_json(tmp / CONFIG_NAME, meta)
        self._weights_digest = digest  # the saved copy and this one share their identity
        logger.info("saved text encoder to %s%s", path, " (adapter only)" if adapter_only else "")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device | None = None,
             dtype: torch.dtype | None = None) -> TextEncoder:
        """Load a folder written by :meth:`save`."""
        path = Path(path)
        meta_file = path / CONFIG_NAME
        if not meta_file.is_file():
            raise ModelNotFoundError(f"{path} is not a gpte text encoder folder (no {CONFIG_NAME})")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_file}: format {meta.get('format')!r} is not {FORMAT!r}")
        if int(meta.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{meta_file}: format version {meta['version']} is newer than this gpte reads "
                             f"({FORMAT_VERSION}); upgrade gpte")
        config = TextEncoderConfig.from_dict(meta["config"])
        config.name = config.name or path.name
        if config.base:
            encoder = cls._from_adapter(path, config, device, dtype)
        else:
            backbone_dir = Path(config.backbone)
            if not backbone_dir.is_absolute():
                backbone_dir = path / backbone_dir
            encoder = cls.from_backbone(backbone_dir, config=config, device=device, dtype=dtype)
        head = path / "head.safetensors"
        if encoder.projection is not None:
            if not head.is_file():
                raise FileNotFoundError(f"{path}: config has a projection but {head.name} is missing")
            from safetensors.torch import load_file

            encoder.projection.load_state_dict(load_file(str(head), device="cpu"))
            encoder.projection.to(device=encoder.device, dtype=next(encoder.backbone.parameters()).dtype)
        if isinstance(meta.get("weights_digest"), str):
            encoder._weights_digest = meta["weights_digest"]
        return encoder

    @classmethod
    def _from_adapter(cls, path: Path, config: TextEncoderConfig, device: Any, dtype: Any) -> TextEncoder:
        """Load the base encoder named by ``config.base`` and merge the adapter saved in ``path/adapter``."""
        import gpte
        from gpte.shared.adapters import load_adapter

        adapter_dir = path / "adapter"
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path}: config names base {config.base!r} but {adapter_dir} holds no adapter")
        base = gpte.load(config.base, device=device, dtype=dtype)
        if not isinstance(base, TextEncoder):
            raise TypeError(f"{path}: base {config.base!r} is not a text encoder")
        backbone = load_adapter(base.backbone, str(adapter_dir), merge=True)
        config.backbone = base.config.backbone
        encoder = cls(config, backbone, base.tokenizer)
        encoder._weights_digest = hashlib.blake2b(
            f"{base._weights_digest}:{weights_digest(adapter_dir)}".encode(), digest_size=16).hexdigest()
        return encoder.to(device=base.device)

    @classmethod
    def from_backbone(
        cls,
        backbone: str | os.PathLike[str],
        config: TextEncoderConfig | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **config_overrides: Any,
    ) -> TextEncoder:
        """Build an encoder on a local Hugging Face model folder (``config.json`` + weights + tokenizer).

        Decoder-only backbones (``is_decoder`` or a causal-LM architecture) default to last-token pooling with left
        padding and an appended EOS; encoders to mean pooling.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        backbone = Path(backbone)
        if not (backbone / "config.json").is_file():
            raise ModelNotFoundError(f"{backbone} is not a Hugging Face model folder (no config.json)")
        hf_config = AutoConfig.from_pretrained(backbone, local_files_only=True)
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
        if config is None:
            decoder = _is_decoder(hf_config)
            config = TextEncoderConfig(
                backbone=str(backbone.resolve()),
                pooling=PoolingConfig(mode="last" if decoder else "mean"),
                padding_side="left" if decoder else "right",
                append_eos=decoder and getattr(tokenizer, "eos_token_id", None) is not None,
                name=backbone.name,
            )
        _apply_options(config, config_overrides)
        device = torch.device(device) if device is not None else default_device()
        dtype = dtype or default_dtype(device)
        auto = AutoModel
        if getattr(hf_config, "is_encoder_decoder", False):  # T5-style: embed with the encoder only (ST5, GTR)
            from transformers import AutoModelForTextEncoding
            from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES

            if hf_config.model_type not in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES:
                raise NotImplementedError(f"{backbone}: {hf_config.model_type} is an encoder-decoder model without an "
                                          "encoder-only class in transformers; gpte pools encoder states only")
            auto = AutoModelForTextEncoding
        with _quiet_transformers():
            model = auto.from_pretrained(backbone, local_files_only=True, attn_implementation="sdpa", dtype=dtype)
        encoder = cls(config, model, tokenizer)
        encoder._weights_digest = weights_digest(backbone)
        return encoder.to(device=device).to_dtype(dtype)

    def configure(self, **options: Any) -> TextEncoder:
        """Change encode-time settings (pooling, prompts, max_length, truncate_dim, normalize, ...) in place.

        Settings that change the weights' shapes (``projection_dim``, ``projection_bias``, ``backbone``) are fixed at
        construction and rejected here.
        """
        fixed = {"projection_dim", "projection_bias", "projection_activation", "backbone"} & set(options)
        if fixed:
            raise TypeError(f"{sorted(fixed)} are fixed when the encoder is built; build a new encoder instead")
        _apply_options(self.config, options)
        self.pooling.config = self.config.pooling
        self._tokens = _Tokens(self.tokenizer, self.config.append_eos)
        self._prompt_cache.clear()
        if self.config.truncate_dim is not None and not 1 <= self.config.truncate_dim <= self.full_dim:
            raise ValueError(f"truncate_dim={self.config.truncate_dim} must lie in 1..{self.full_dim}")
        return self

    def to_dtype(self, dtype: torch.dtype) -> TextEncoder:
        """Cast weights (backbone and projection) to ``dtype``; pooling and normalisation stay float32."""
        if self._weights_digest is None and next(self.parameters()).dtype != dtype:
            self._weights_digest = _state_digest(self)  # before the cast, so the identity survives it
        self.backbone.to(dtype=dtype)
        if self.projection is not None:
            self.projection.to(dtype=dtype)
        return self

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}, dim={self.embed_dim}, max_length={self.max_length}"


def _state_digest(module: nn.Module) -> str:
    """BLAKE2b of every tensor of ``module`` as float32 bytes (in-process models)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def weights_digest(folder: str | os.PathLike[str], samples: int = 16, block: int = 1 << 16) -> str:
    """Sampled content digest of a model folder's weight files (``*.safetensors``, ``*.bin``, ``*.pt``).

    Per file: its name, its size, its first MiB (the safetensors header with every tensor's name, dtype, shape and
    offset) and ``samples`` blocks of ``block`` bytes spread evenly over the rest. Reads about 2 MiB per file, so a
    7B-parameter checkpoint is fingerprinted as fast as a small one; any re-training changes the sampled bytes.
    """
    h = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file())
    for path in files:
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with path.open("rb") as fh:
            h.update(fh.read(1 << 20))
            for i in range(samples):
                fh.seek(max(0, (size - block) * i // max(1, samples - 1)))
                h.update(fh.read(block))
    return h.hexdigest()


def _apply_options(config: TextEncoderConfig, options: dict[str, Any]) -> None:
    for key, value in options.items():
        if key not in TextEncoderConfig.__dataclass_fields__:
            raise TypeError(f"unknown text-encoder option {key!r}; options are "
                            f"{', '.join(TextEncoderConfig.__dataclass_fields__)}")
        setattr(config, key, value)
    config.__post_init__()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-tensor loading bar (gpte shows its own progress where work is long)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _is_decoder(hf_config: Any) -> bool:
    """Decoder-only: flagged so, a causal-LM architecture, or a model type with a causal LM head and no masked one."""
    if getattr(hf_config, "is_decoder", False):
        return True
    archs = getattr(hf_config, "architectures", None) or []
    if getattr(hf_config, "is_encoder_decoder", False):
        return False
    if any(a.endswith("ForCausalLM") or a.endswith("ForConditionalGeneration") for a in archs):
        return True
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(hf_config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA (bfloat16 is accepted too), float32 on CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32

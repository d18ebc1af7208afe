"""TextEncoder on tiny random models built in-process (fast), plus parity with sentence-transformers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import gpte
from gpte.shared.errors import InvalidInputError, ModelNotFoundError
from gpte.shared.pooling import PoolingConfig
from gpte.unimodal.text import TextEncoder

TEXTS = ["a cat sits on the mat", "parse a JSON document", "hi", "read a file line by line and strip newlines"]


def test_encode_shapes_and_norms(test_bert):
    emb = test_bert.encode(TEXTS)
    assert emb.shape == (4, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    one = test_bert.encode("hi")
    assert one.shape == (32,)
    np.testing.assert_allclose(one, emb[2], atol=1e-5)
    as_torch = test_bert.encode(TEXTS, output="torch")
    assert isinstance(as_torch, torch.Tensor) and as_torch.shape == (4, 32)


def test_batch_independent_right_padding(test_bert):
    together = test_bert.encode(TEXTS, batch_size=4)
    alone = np.stack([test_bert.encode(t) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_last_token_pooling_under_left_padding(test_decoder):
    assert test_decoder.config.padding_side == "left" and test_decoder.config.pooling.mode == "last"
    together = test_decoder.encode(TEXTS, batch_size=4, normalize=False)
    # reference: each text alone, no padding at all, state of its last token
    tok = test_decoder._tokens
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([tok.prefix + tok.ids([text])[0] + tok.suffix])
        with torch.no_grad():
            hidden = test_decoder.backbone(input_ids=ids).last_hidden_state
        np.testing.assert_allclose(together[i], hidden[0, -1].numpy(), atol=1e-4)


def test_right_padding_on_decoder_is_also_correct(test_decoder):
    left = test_decoder.encode(TEXTS, batch_size=4)
    test_decoder.configure(padding_side="right")
    right = test_decoder.encode(TEXTS, batch_size=4)
    np.testing.assert_allclose(left, right, atol=1e-4)


def test_prompts_query_vs_document(test_bert):
    test_bert.configure(query_prompt="query: ", document_prompt="passage: ")
    q = test_bert.encode_query(TEXTS)
    d = test_bert.encode_document(TEXTS)
    plain = test_bert.encode(TEXTS)
    assert not np.allclose(q, d, atol=1e-3)
    np.testing.assert_allclose(q, test_bert.encode(TEXTS, prompt="query: "), atol=1e-6)
    assert not np.allclose(plain, q, atol=1e-3)


def test_prompt_excluded_from_mean_pooling(test_bert):
    test_bert.configure(pooling=PoolingConfig(mode="mean", include_prompt=False))
    got = test_bert.encode("the text", prompt="an instruction: ", normalize=False)
    tok = test_bert._tokens
    prompt_ids, text_ids = tok.ids(["an instruction: "])[0], tok.ids(["the text"])[0]
    ids = torch.tensor([tok.prefix + prompt_ids + text_ids + tok.suffix])
    with torch.no_grad():
        hidden = test_bert.backbone(input_ids=ids).last_hidden_state[0]
    skip = len(tok.prefix) + len(prompt_ids)
    np.testing.assert_allclose(got, hidden[skip:].mean(0).numpy(), atol=1e-5)


def test_top_layer_pooling_changes_output(test_bert):
    base = test_bert.encode(TEXTS)
    test_bert.configure(pooling={"mode": "mean", "layers": 2})
    multi = test_bert.encode(TEXTS)
    assert not np.allclose(base, multi, atol=1e-3)


def test_matryoshka_truncation(test_bert):
    full = test_bert.encode(TEXTS, normalize=False)
    cut = test_bert.encode(TEXTS, truncate_dim=8)
    assert cut.shape == (4, 8)
    np.testing.assert_allclose(cut, full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(ValueError, match="truncate_dim=64"):
        test_bert.encode(TEXTS, truncate_dim=64)


def test_quantised_output(test_bert):
    i8 = test_bert.encode(TEXTS * 4, precision="int8")
    assert i8.dtype == np.int8 and i8.shape == (16, 32)
    np.testing.assert_array_equal(test_bert.encode(TEXTS[0], precision="int8"), i8[0])  # batch-independent codes
    full = test_bert.encode(TEXTS)
    approx = (i8[:4].astype(np.float32) + 128) * (2 / 255) - 1  # buckets of [-1, 1]
    assert ((approx * full).sum(1) / np.linalg.norm(approx, axis=1) > 0.99).all()
    with pytest.raises(ValueError, match="ranges="):
        test_bert.encode(TEXTS, precision="int8", normalize=False)
    ub = test_bert.encode(TEXTS, precision="ubinary")
    assert ub.dtype == np.uint8 and ub.shape == (4, 4)
    signs = test_bert.encode(TEXTS) > 0
    np.testing.assert_array_equal(np.unpackbits(ub, axis=1).astype(bool), signs)


def test_bad_items_are_named(test_bert):
    with pytest.raises(InvalidInputError) as info:
        test_bert.encode(["fine", None, "", 3, "   "])
    assert set(info.value.problems) == {1, 2, 3, 4}
    assert "item 1: None" in str(info.value) and "item 3: expected str, got int" in str(info.value)
    with pytest.raises(TypeError, match="bytes"):
        test_bert.encode(b"raw")


def test_long_texts_warn_once_and_chunk(test_bert, caplog):
    long_text = " ".join(f"word{i}" for i in range(400))
    with caplog.at_level(logging.WARNING, logger="gpte"):
        truncated = test_bert.encode([long_text, long_text, "short"])
    warnings = [r for r in caplog.records if "longer than max_length" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 3" in warnings[0].getMessage()
    chunked = test_bert.encode([long_text, "short"], long_texts="chunk")
    assert chunked.shape == (2, 32)
    np.testing.assert_allclose(chunked[1], truncated[2], atol=1e-5)
    assert not np.allclose(chunked[0], truncated[0], atol=1e-3)  # windows beyond the first contribute


def test_save_load_round_trip_with_projection(tmp_path):
    enc = gpte.load("test-bert", device="cpu", projection_dim=16, projection_activation="tanh",
                    query_prompt="q: ")
    torch.nn.init.normal_(enc.projection[0].weight)
    before = enc.encode_query(TEXTS)
    enc.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} >= {"gpte.json", "backbone", "head.safetensors"}
    again = gpte.load(tmp_path / "model", device="cpu")
    assert again.config.query_prompt == "q: " and again.embed_dim == 16
    np.testing.assert_allclose(again.encode_query(TEXTS), before, atol=1e-6)
    assert again.fingerprint() == enc.fingerprint()


def test_failed_save_keeps_previous_model(tmp_path, test_bert, monkeypatch):
    target = tmp_path / "model"
    test_bert.save(target)
    before = sorted(p.name for p in target.rglob("*"))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(test_bert.tokenizer, "save_pretrained", boom)
    with pytest.raises(OSError, match="disk full"):
        test_bert.save(target)
    assert sorted(p.name for p in target.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    gpte.load(target, device="cpu")


def test_plain_hf_folders_pick_pooling_by_architecture(tmp_path, test_bert, test_decoder):
    test_bert.backbone.save_pretrained(tmp_path / "enc")
    test_bert.tokenizer.save_pretrained(tmp_path / "enc")
    enc = gpte.load(tmp_path / "enc", device="cpu")
    assert enc.config.pooling.mode == "mean" and enc.config.padding_side == "right"
    np.testing.assert_allclose(enc.encode(TEXTS), test_bert.encode(TEXTS), atol=1e-5)
    test_decoder.backbone.save_pretrained(tmp_path / "dec")
    test_decoder.tokenizer.save_pretrained(tmp_path / "dec")
    dec = gpte.load(tmp_path / "dec", device="cpu")
    assert dec.config.pooling.mode == "last" and dec.config.padding_side == "left"


def test_unknown_models_say_what_exists(tmp_path):
    with pytest.raises(ModelNotFoundError, match="minilm"):
        gpte.load("no-such-model")
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        gpte.load("BAAI/bge-small-en-v1.5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model"):
        gpte.load(tmp_path / "empty")


def test_registry_lists_real_and_test_models():
    names = [e.name for e in gpte.list_models()]
    assert "minilm" in names and "test-bert" not in names
    assert "test-bert" in [e.name for e in gpte.list_models(include_test=True)]


def test_sentence_transformers_folder_with_dense_and_prompts(tmp_path, test_bert):
    st = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    test_bert.backbone.save_pretrained(tmp_path / "hf")
    test_bert.tokenizer.save_pretrained(tmp_path / "hf")
    modules = [Transformer(str(tmp_path / "hf"), max_seq_length=64), Pooling(32, pooling_mode="cls"),
               Dense(32, 16), Normalize()]
    peer = st.SentenceTransformer(modules=modules, device="cpu",
                                  prompts={"query": "query: ", "document": "passage: "})
    peer.save(str(tmp_path / "st"))
    ours = gpte.load(tmp_path / "st", device="cpu")
    assert isinstance(ours, TextEncoder)
    assert ours.config.pooling.mode == "cls" and ours.embed_dim == 16 and ours.config.max_length == 64
    np.testing.assert_allclose(ours.encode_query(TEXTS), peer.encode_query(TEXTS), atol=1e-5)
    np.testing.assert_allclose(ours.encode_document(TEXTS), peer.encode_document(TEXTS), atol=1e-5)


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from gpte.unimodal.text_models import minilm_path

    peer = st.SentenceTransformer(str(minilm_path()), device="cpu")
    texts = TEXTS + ["How do I sort a list of dictionaries by a key?", "x " * 300]
    ours = minilm.encode(texts)
    theirs = peer.encode(texts, normalize_embeddings=True)
    cos = (ours * theirs).sum(1)
    assert cos.min() >= 0.9999
    assert minilm.embed_dim == 384 and minilm.config.max_length == 256


@pytest.mark.slow
def test_minilm_ranks_a_paraphrase_first(minilm):
    docs = ["Return the contents of a file as a list of lines.", "Compute the greatest common divisor of two integers.",
            "Start a web server that serves the current folder."]
    q = minilm.encode_query("read all lines of a text file")
    scores = minilm.encode_document(docs) @ q
    assert int(np.argmax(scores)) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_cuda_matches_cpu(dtype):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = gpte.load("test-bert", device="cpu").encode(TEXTS)
    gpu_model = gpte.load("test-bert", device="cuda", dtype=dtype)
    gpu = gpu_model.encode(TEXTS)
    assert gpu.dtype == np.float32
    assert ((cpu * gpu).sum(1) > 0.99).all()
    assert gpu_model.encode(TEXTS, output="torch").device.type == "cuda"


def test_fingerprint_survives_dtype_and_ignores_paths(tmp_path):
    a = gpte.load("test-bert", device="cpu")
    b = gpte.load("test-bert", device="cpu", dtype=torch.float16)
    assert a.fingerprint() == b.fingerprint()
    c = gpte.load("test-bert", device="cpu", seed=1)
    assert c.fingerprint() != a.fingerprint()
    a.save(tmp_path / "one")
    a.save(tmp_path / "two")
    assert gpte.load(tmp_path / "one").fingerprint() == gpte.load(tmp_path / "two").fingerprint() == a.fingerprint()
    before = a.fingerprint()
    a.configure(document_prompt="passage: ")  # settings that change document embeddings change the fingerprint
    assert a.fingerprint() != before
    with torch.no_grad():
        a.backbone.embeddings.word_embeddings.weight.add_(1.0)
    assert a.refresh_fingerprint() != gpte.load(tmp_path / "one").configure(document_prompt="passage: ").fingerprint()


@pytest.mark.slow
def test_minilm_fingerprint_same_by_name_and_by_folder():
    from gpte.unimodal.text_models import minilm_path

    by_name = gpte.load("minilm", device="cpu")
    by_path = gpte.load(minilm_path(), device="cpu")
    assert by_name.fingerprint() == by_path.fingerprint()


def _byte_level_bpe():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(["query: hello world", "hello there world", "a query about the world"] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


def test_prompt_boundary_with_byte_level_bpe(test_decoder):
    """A prompt's trailing space merges into the next word ('Ġhello'): that token belongs to the text."""
    from gpte.unimodal.text import TextEncoder, TextEncoderConfig

    tok = _byte_level_bpe()
    cfg = TextEncoderConfig(pooling=PoolingConfig(mode="mean", include_prompt=False), padding_side="left",
                            append_eos=True, max_length=64)
    enc = TextEncoder(cfg, test_decoder.backbone, tok)
    seg = enc._segments(["hello world"], "query: ", "truncate")
    pieces = tok.convert_ids_to_tokens(seg.seqs[0])
    n = int(seg.prompt_len[0])
    assert "".join(pieces[:n]).replace("Ġ", " ").strip() == "query:"
    assert "hello" in pieces[n]  # the first pooled token is the text's first word
    got = enc.encode("hello world", prompt="query: ", normalize=False)
    ids = torch.tensor([seg.seqs[0]])
    with torch.no_grad():
        hidden = test_decoder.backbone(input_ids=ids).last_hidden_state[0]
    np.testing.assert_allclose(got, hidden[n:].mean(0).numpy(), atol=1e-5)


def test_chunk_windows_cover_every_token_once(test_bert):
    long_text = " ".join(f"w{i}" for i in range(300))
    seg = test_bert._segments([long_text, "short"], "note: ", "chunk")
    tok = test_bert._tokens
    body_len = len(tok.ids(["note: " + long_text])[0]) - int(seg.prompt_len[0]) + len(tok.prefix)
    windows = seg.owner == 0
    assert windows.sum() >= 3 and seg.weight[windows].sum() == body_len  # every text token counted once
    assert all(len(s) <= test_bert.max_length for s in seg.seqs)
    last = seg.seqs[int(np.flatnonzero(windows)[-1])]
    assert last[len(last) - len(tok.suffix) :] == tok.suffix
    assert last[len(last) - len(tok.suffix) - 1] == tok.ids(["note: " + long_text])[0][-1]  # ends at the text's end
    assert seg.weight[seg.owner == 1].tolist() == [1.0]


def test_encoder_decoder_folder_embeds_with_its_encoder(tmp_path, test_bert):
    from transformers import T5Config, T5Model

    torch.manual_seed(0)
    t5 = T5Model(T5Config(vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                          decoder_start_token_id=0)).eval()
    t5.save_pretrained(tmp_path / "t5")
    test_bert.tokenizer.save_pretrained(tmp_path / "t5")
    enc = gpte.load(tmp_path / "t5", device="cpu")
    assert type(enc.backbone).__name__ == "T5EncoderModel" and enc.config.pooling.mode == "mean"
    emb = enc.encode(TEXTS, normalize=False)
    ids = torch.tensor([enc._tokens.prefix + enc._tokens.ids([TEXTS[0]])[0] + enc._tokens.suffix])
    with torch.no_grad():
        ref = t5.encoder(input_ids=ids).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(emb[0], ref.numpy(), atol=1e-5)


def test_lora_adapter_only_save_and_load_round_trip(tmp_path):
    from gpte.shared.adapters import LoraSpec, add_lora, has_adapter

    enc = gpte.load("test-bert", device="cpu", query_prompt="q: ")
    enc.backbone = add_lora(enc.backbone, LoraSpec(r=4, target_modules=["query", "value"]))
    assert has_adapter(enc.backbone)
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():  # LoRA's B starts at zero: give the adapter an effect
        for name, param in enc.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    enc.eval()
    before = enc.encode_query(TEXTS)
    enc.save(tmp_path / "adapter", adapter_only=True)
    files = {p.relative_to(tmp_path / "adapter").as_posix() for p in (tmp_path / "adapter").rglob("*") if p.is_file()}
    assert "adapter/adapter_model.safetensors" in files and not any(f.startswith("backbone") for f in files)
    size = sum((tmp_path / "adapter" / f).stat().st_size for f in files)
    assert size < 100_000  # the adapter alone, not the model
    again = gpte.load(tmp_path / "adapter", device="cpu")
    assert again.config.base == "test-bert" and not has_adapter(again.backbone)  # merged for inference
    np.testing.assert_allclose(again.encode_query(TEXTS), before, atol=1e-5)
    assert again.fingerprint() == enc.fingerprint()
    base = gpte.load("test-bert", device="cpu", query_prompt="q: ")
    assert not np.allclose(base.encode_query(TEXTS), before, atol=1e-3)  # the adapter changed the model
    enc.save(tmp_path / "merged")  # default: adapter merged, full model written
    np.testing.assert_allclose(gpte.load(tmp_path / "merged", device="cpu").encode_query(TEXTS), before, atol=1e-5)

"""Two processes on the gloo backend train to the same weights as one process on the global batch."""

from __future__ import annotations

import json

import torch
from _ranks import run_ranks
from safetensors.torch import load_file

from gpte.shared.data import DatasetSpec
from gpte.shared.recipe import LossSpec, TrainConfig

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
         "mike", "november", "oscar", "papa"]


def _model():
    from transformers import BertConfig

    from gpte.unimodal.text import TextEncoderConfig
    from gpte.unimodal.text_models import _tiny

    hf = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return _tiny(hf, TextEncoderConfig(max_length=128, name="test-bert"), 0, "cpu", None)


def _config(data, out, loss):
    return TrainConfig(data=[DatasetSpec(str(data))], model="test-bert", output_dir=str(out), batch_size=8, epochs=1,
                       learning_rate=1e-2, warmup_ratio=0.0, device="cpu", loss=LossSpec(name=loss), seed=0)


def _worker(rank, world, store, data, out, loss):
    from gpte.shared.distributed import shutdown
    from gpte.shared.trainer import Trainer

    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    completed = False
    try:
        torch.set_num_threads(1)
        Trainer(_config(data, out, loss), model=_model()).train(resume=False)
        completed = True
    finally:
        shutdown(completed=completed)


def _run(tmp_path, loss):
    from gpte.shared.trainer import Trainer

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"query": f"find {w}", "positive": f"the {w} note"}) + "\n" for w in WORDS))
    Trainer(_config(data, tmp_path / "one", loss), model=_model()).train(resume=False)
    two_done = tmp_path / "two" / "metrics.json"  # the trainer's last file, written atomically
    run_ranks(_worker, (2, tmp_path / "store", data, tmp_path / "two", loss), 2, lambda r: two_done.exists(), 300)
    one = load_file(str(tmp_path / "one" / "checkpoint" / "trainable.safetensors"))
    two = load_file(str(tmp_path / "two" / "checkpoint" / "trainable.safetensors"))
    assert one.keys() == two.keys()
    moved = 0
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=5e-5)  # Adam amplifies fp noise
        moved += int(not torch.equal(one[key], _model().state_dict().get(key.removeprefix("encoder."), one[key])))
    assert moved > 10  # the weights did train


def test_two_processes_match_one_infonce(tmp_path):
    _run(tmp_path, "infonce")


def test_two_processes_match_one_sigmoid(tmp_path):
    _run(tmp_path, "sigmoid")

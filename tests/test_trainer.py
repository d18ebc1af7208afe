"""The training loop on the tiny test model: it learns, resumes exactly, trains LoRA adapters, reads recipes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import gpte
from gpte.shared.adapters import LoraSpec
from gpte.shared.data import DatasetSpec
from gpte.shared.recipe import EvalSpec, LossSpec, RecipeError, TrainConfig, config_from_dict, load_recipe
from gpte.shared.trainer import Trainer

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
         "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
         "xray"]


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    shifted = WORDS[7:] + WORDS[:7]  # the positive names another word: zero-shot matching cannot help
    rows = [{"query": f"find {w}", "positive": f"the {v} document"} for w, v in zip(WORDS, shifted, strict=True)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(tmp_path, pairs, **kw):
    base = {"data": [DatasetSpec(str(pairs))], "model": "test-bert", "output_dir": str(tmp_path / "run"),
            "batch_size": 8, "epochs": 4, "learning_rate": 5e-3, "warmup_ratio": 0.0, "log_every": 1,
            "device": "cpu", "eval": EvalSpec(str(pairs), k_values=[1, 10])}
    base.update(kw)
    return TrainConfig(**base)


def test_training_improves_retrieval_and_writes_the_run(tmp_path, pairs):
    metrics = Trainer(_config(tmp_path, pairs)).train()
    assert metrics["after"]["mrr@10"] > metrics["before"]["mrr@10"] + 0.15  # measured: 0.07 -> 0.29
    run = tmp_path / "run"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13)) and log[-1]["lr"] == 0.0
    assert (run / "model" / "gpte.json").is_file() and "mrr@10" in (run / "model" / "README.md").read_text()
    model = gpte.load(run / "model", device="cpu")
    assert model.encode("find alpha").shape == (32,)


def test_resume_reproduces_the_uninterrupted_run(tmp_path, pairs, monkeypatch):
    full = Trainer(_config(tmp_path / "a", pairs, save_every=4, eval=None))
    full.train()
    reference = load_file(str(tmp_path / "a" / "run" / "checkpoint" / "trainable.safetensors"))

    calls = {"n": 0}
    real = Trainer._loss_fn

    def crash_on_step_six(self, batch, n_neg):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated crash")
        return real(self, batch, n_neg)

    monkeypatch.setattr(Trainer, "_loss_fn", crash_on_step_six)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(tmp_path / "b", pairs, save_every=4, eval=None)).train()
    progress = json.loads((tmp_path / "b" / "run" / "checkpoint" / "progress.json").read_text())
    assert progress["step"] == 4
    monkeypatch.setattr(Trainer, "_loss_fn", real)
    Trainer(_config(tmp_path / "b", pairs, save_every=4, eval=None)).train(resume=True)
    resumed = load_file(str(tmp_path / "b" / "run" / "checkpoint" / "trainable.safetensors"))
    assert reference.keys() == resumed.keys()
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6)


def test_lora_run_trains_only_the_adapter_and_saves_it_small(tmp_path, pairs):
    cfg = _config(tmp_path, pairs, lora=LoraSpec(r=4, target_modules=["query", "value"]), epochs=1,
                  gradient_checkpointing=True, precision="bf16",
                  loss=LossSpec(learnable_scale=True), eval=None)
    trainer = Trainer(cfg)
    query_weight = trainer.encoder.backbone.encoder.layer[0].attention.self.query.weight.detach().clone()
    trainer.train()
    trainable = [n for n, p in trainer.encoder.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(p.abs().sum() > 0 for n, p in trainer.encoder.backbone.named_parameters() if "lora_B" in n)  # B left 0
    base = trainer.encoder.backbone.get_base_model()
    torch.testing.assert_close(base.encoder.layer[0].attention.self.query.base_layer.weight, query_weight)
    saved = tmp_path / "run" / "model"
    assert (saved / "adapter" / "adapter_model.safetensors").stat().st_size < 50_000
    assert json.loads((saved / "gpte.json").read_text())["config"]["base"] == "test-bert"
    torch.testing.assert_close(torch.from_numpy(gpte.load(saved, device="cpu").encode(["find golf"])),
                               torch.from_numpy(trainer.encoder.encode(["find golf"])), rtol=0, atol=1e-5)


def test_hard_negatives_and_sigmoid_loss_run(tmp_path, pairs):
    from gpte.shared.recipe import MiningSpec

    cfg = _config(tmp_path, pairs, epochs=1, loss=LossSpec(name="sigmoid", temperature=0.1),
                  mining=MiningSpec(num_negatives=2, rank_window=[0, 10], relative_margin=None), eval=None,
                  grad_cache_chunk=3, batch_size=4)
    metrics = Trainer(cfg).train()
    assert metrics["steps"] >= 3
    mined = [json.loads(line) for line in (tmp_path / "run" / "mined.jsonl").read_text().splitlines()]
    assert all(len(r["negatives"]) == 2 and r["positive"] not in r["negatives"] for r in mined)


def test_recipes_name_unknown_keys(tmp_path, pairs):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "test-bert"\nlr = 0.1\n[[data]]\npath = "{pairs}"\n', encoding="utf-8")
    with pytest.raises(RecipeError, match="unknown key 'lr' in the recipe's top level"):
        load_recipe(recipe)
    with pytest.raises(RecipeError, match=r"unknown key 'rank' in \[lora\]"):
        config_from_dict({"data": [{"path": str(pairs)}], "lora": {"rank": 4}})
    with pytest.raises(RecipeError, match=r"unknown key 'file' in \[\[data\]\] #1"):
        config_from_dict({"data": [{"file": "x"}]})
    recipe.write_text(f'model = "test-bert"\nbatch_size = 4\n[loss]\nname = "infonce"\n[[data]]\npath = "{pairs}"\n',
                      encoding="utf-8")
    cfg = load_recipe(recipe)
    assert cfg.batch_size == 4 and cfg.loss.name == "infonce" and cfg.data[0].path == str(pairs)


def test_code_structure_saves_a_code_encoder_with_its_adapter(tmp_path, pairs):
    from gpte.code.encoder import CodeEncoder

    cfg = _config(tmp_path, pairs, epochs=1, eval=None, code_structure="text+ast",
                  lora=LoraSpec(r=2, target_modules=["query", "value"]))
    Trainer(cfg).train()
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "gpte-code.json").is_file() and (model_dir / "text" / "adapter").is_dir()
    model = gpte.load(model_dir, device="cpu")
    assert isinstance(model, CodeEncoder) and model.structure.mode == "text+ast"
    assert model.encode_document("def f(x):\n    return x + 1\n").shape == (32,)
    with pytest.raises(RecipeError, match="code_structure"):
        _config(tmp_path, pairs, code_structure="tree")

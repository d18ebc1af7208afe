"""gpte train / eval / data end to end on temporary folders with the tiny test model."""

from __future__ import annotations

import json

from gpte.cli import main

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def _pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"query": f"find {w}", "positive": f"a note on {w}"}) + "\n" for w in WORDS),
                    encoding="utf-8")
    return path


def test_train_then_eval(tmp_path, capsys):
    pairs = _pairs(tmp_path)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "test-bert"\nbatch_size = 4\nepochs = 1\nlog_every = 1\ndevice = "cpu"\n'
                      f'output_dir = "{tmp_path / "run"}"\n[lora]\nr = 2\ntarget_modules = ["query", "value"]\n'
                      f'[[data]]\npath = "{pairs}"\n[eval]\npath = "{pairs}"\nk_values = [1, 10]\n', encoding="utf-8")
    assert main(["-q", "train", str(recipe)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["steps"] == 3 and "mrr@10" in summary["after"]
    assert main(["eval", str(tmp_path / "run" / "model"), "--data", str(pairs), "-k", "1", "10",
                 "--main-metric", "mrr@10", "--output-dir", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "retrieval" and result["examples"] == len(WORDS)
    assert 0 < result["scores"]["mrr@10"] <= 1 and result["scores"]["main_score"] == result["scores"]["mrr@10"]
    assert (tmp_path / "eval" / "results.json").is_file()


def test_eval_graded_pairs_is_sts(tmp_path, capsys):
    path = tmp_path / "sts.jsonl"
    rows = [("a cat", "a kitten", 0.9), ("a cat", "stock prices", 0.1), ("rain today", "wet weather", 0.8),
            ("rain today", "a guitar", 0.0)]
    path.write_text("".join(json.dumps({"query": a, "positive": b, "score": s}) + "\n" for a, b, s in rows))
    assert main(["eval", "test-bert", "--data", str(path), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "sts" and "cosine_spearman" in result["scores"]


def test_bad_recipe_exits_1_naming_the_key(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "test-bert"\nepoch = 3\n[[data]]\npath = "x.jsonl"\n', encoding="utf-8")
    assert main(["train", str(recipe)]) == 1
    assert "unknown key 'epoch'" in capsys.readouterr().err


def test_data_stdlib_code(tmp_path, capsys):
    assert main(["data", "stdlib-code", "--out", str(tmp_path), "--test-size", "50"]) == 0
    train = [json.loads(x) for x in (tmp_path / "stdlib-code-train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (tmp_path / "stdlib-code-test.jsonl").read_text().splitlines()]
    assert len(test) == 50 and len(train) > 2000
    held_out = {r["module"].split(".")[0] for r in test}
    assert not held_out & {r["module"].split(".")[0] for r in train}  # split by top-level module
    assert all('"""' not in r["positive"][:200] or r["query"] not in r["positive"] for r in test)  # docstring removed


def test_data_stdlib_code_pairs_come_from_training_modules_and_stay_valid(tmp_path):
    assert main(["data", "stdlib-code", "--out", str(tmp_path), "--test-size", "50", "--code-pairs", "40"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "stdlib-code-code-code-train.jsonl").read_text().splitlines()]
    train = {json.loads(x)["id"] for x in (tmp_path / "stdlib-code-train.jsonl").read_text().splitlines()}
    assert len(rows) == 40 and all(r["task"] == "code-code" for r in rows)
    assert {r["id"] for r in rows} <= train  # never a held-out function
    for r in rows:
        assert r["query"] != r["positive"]
        compile(r["query"], r["id"], "exec")  # dedented functions: both sides are valid Python
        compile(r["positive"], r["id"], "exec")


def test_data_stdlib_code_pairs_with_structure_render_both_sides(tmp_path):
    from gpte.data.stdlib import code_code_pairs, stdlib_functions

    rows = code_code_pairs(stdlib_functions(limit=300), limit=10, structure="text+ast")
    assert rows and all(r["query"].startswith("name: ") and r["positive"].startswith("name: ") for r in rows)
    methods = [r for r in rows if "." in r["id"].split(":")[1]]
    assert methods and all(" | in: " in r["query"].split("\n")[0] for r in methods)

"""The command line end to end on temporary directories, with the tiny test model (and one run on MiniLM)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from gpte.cli import main
from gpte.shared.fsio import writer_lock

M = ["--model", "test-bert", "--device", "cpu"]


def test_embed_to_npy_and_jsonl(tmp_path, capsys):
    assert main(["-q", "embed", "first text", "second text", "-o", str(tmp_path / "v.npy"), *M]) == 0
    vec = np.load(tmp_path / "v.npy")
    assert vec.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert main(["-q", "embed", "first text", "--precision", "ubinary", *M]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["index"] == 0 and record["text"] == "first text" and len(record["embedding"]) == 4


def test_embed_reads_a_file_and_stdin_and_skips_blank_lines(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.txt"
    src.write_text("alpha\n\nbeta\n", encoding="utf-8")
    assert main(["-q", "embed", "--file", str(src), *M]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == [0, 2] and [r["text"] for r in rows] == ["alpha", "beta"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("gamma\ndelta\n"))
    assert main(["-q", "embed", "-", *M]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def _corpus(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("The cat sat on the mat.", encoding="utf-8")
    (docs / "sub" / "b.md").write_text("Quarterly revenue grew by four percent.", encoding="utf-8")
    (docs / "blob.txt").write_bytes(b"\0\1\2binary")
    (docs / "empty.txt").write_text("   ", encoding="utf-8")
    return docs


def test_index_build_and_search_a_folder(tmp_path, capsys):
    docs = _corpus(tmp_path)
    out = tmp_path / "idx"
    assert main(["-q", "index", "build", str(docs), "--out", str(out), *M]) == 0
    capsys.readouterr()
    assert main(["search", str(out), "The cat sat on the mat.", "-k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in result["hits"]] == ["a.txt", "sub/b.md"]  # binary and empty files skipped
    assert result["hits"][0]["metadata"]["path"] == "a.txt"
    assert main(["search", str(out), "revenue", "--filter", '{"path": "sub/b.md"}']) == 0
    table = capsys.readouterr().out
    assert "sub/b.md" in table and "a.txt" not in table


def test_index_build_jsonl_with_bad_lines_update_and_refusals(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "x", "text": "first doc", "lang": "en"}\nnot json\n{"id": "y", "text": ""}\n'
                      '{"text": "no id here"}\n', encoding="utf-8")
    out = tmp_path / "idx"
    assert main(["index", "build", str(corpus), "--out", str(out), "--backend", "exact", *M]) == 0
    err = capsys.readouterr().err
    assert "c.jsonl:2: skipped, not JSON" in err and "id 'y': empty" in err
    # an existing index is never replaced by accident
    assert main(["-q", "index", "build", str(corpus), "--out", str(out), *M]) == 2
    assert "--update" in capsys.readouterr().err
    more = tmp_path / "more.jsonl"
    more.write_text('{"id": "z", "text": "a third doc"}\n', encoding="utf-8")
    assert main(["-q", "index", "build", str(more), "--out", str(out), "--update"]) == 0
    capsys.readouterr()
    assert main(["search", str(out), "a third doc", "-k", "1", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["id"] == "z"
    assert main(["search", str(out), "first doc", "-k", "3", "--json"]) == 0
    assert {h["id"] for h in json.loads(capsys.readouterr().out)["hits"]} == {"x", "z", "c.jsonl:4"}


def test_locked_index_and_unknown_model_fail_cleanly(tmp_path, capsys):
    docs = _corpus(tmp_path)
    out = tmp_path / "idx"
    assert main(["-q", "index", "build", str(docs), "--out", str(out), *M]) == 0
    with writer_lock(out):
        assert main(["-q", "index", "build", str(docs), "--out", str(out), "--overwrite", *M]) == 1
    assert "locked" in capsys.readouterr().err
    assert main(["search", str(out), "cat", "-k", "1"]) == 0  # the index survived
    assert main(["embed", "x", "--model", "no-such-model"]) == 1
    assert "neither a registered model" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "missing"), "cat"]) == 1


def test_info_json(capsys):
    assert main(["info", "--json", "--all"]) == 0
    info = json.loads(capsys.readouterr().out)
    names = {m["name"] for m in info["models"]}
    assert {"minilm", "test-bert", "test-decoder"} <= names
    assert info["versions"]["gpte"]


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "gpte", "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "minilm" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "gpte", "frobnicate"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


@pytest.mark.slow
def test_minilm_end_to_end_search(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    rows = [("read", "Read and return the list of all lines remaining in the file."),
            ("gcd", "Greatest common divisor of two integers."),
            ("serve", "Start an HTTP server for the files in the current directory.")]
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows), encoding="utf-8")
    assert main(["-q", "index", "build", str(corpus), "--out", str(tmp_path / "idx"), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), "how do I read a file line by line", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "read"


def test_bad_and_repeated_ids_are_skipped_not_fatal(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": 1.5, "text": "float id"}\n{"id": null, "text": "null id"}\n'
                      '{"id": "a", "text": "first a"}\n{"id": "a", "text": "second a"}\n{"id": 7, "text": "int id"}\n',
                      encoding="utf-8")
    out = tmp_path / "idx"
    assert main(["index", "build", str(corpus), "--out", str(out), "--backend", "exact", *M]) == 0
    captured = capsys.readouterr()
    assert "c.jsonl:1: skipped, 'id' must be a string or an integer" in captured.err
    assert "c.jsonl:2: skipped" in captured.err and "id 'a' appears more than once" in captured.err
    assert "indexed 2 documents" in captured.out
    assert main(["search", str(out), "first a", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert {h["id"] for h in hits} == {"a", 7} and hits[0]["metadata"]["text"] == "first a"
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["-q", "index", "build", str(corpus), "--out", str(afile), *M]) == 2
    assert "is a file" in capsys.readouterr().err

"""The default models shipped inside the package load from a fresh install and rank held-out items right.

``code-minilm``: 32 functions from standard-library modules held out of its training (tests/data/code_heldout.jsonl:
docstring summary, code without the docstring, name and enclosing class); 8 of them, from 8 different modules, are
asked for by their docstring and must come first among all 32. ``lit-lite0-minilm``: clip-art pictures held out of
its training (tests/data/images, downscaled copies of openclipart-png files, public domain) must come first for their
own captions; ``universal-lite0-minilm`` must answer some of them by caption and by a category question.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import gpte

DATA = Path(__file__).with_name("data")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def code_model():
    return gpte.load("code-minilm", device="cpu")


def _chunks(rows):
    return [SimpleNamespace(code=r["code"], text=None, language="python", symbol=r["symbol"], doc=None,
                            parent=r["scope"]) for r in rows]


def test_code_minilm_ranks_held_out_functions_first(code_model):
    from gpte.code.encoder import CodeEncoder

    rows = [json.loads(line) for line in (DATA / "code_heldout.jsonl").read_text().splitlines()]
    assert isinstance(code_model, CodeEncoder) and code_model.structure.mode == "text+ast"
    docs = code_model.encode_chunks(_chunks(rows))
    asked = [i for i, r in enumerate(rows) if r["is_query"]]
    queries = code_model.encode_query([rows[i]["query"] for i in asked])
    best = (queries @ docs.T).argmax(1)
    assert [rows[j]["id"] for j in best] == [rows[i]["id"] for i in asked]


def test_code_minilm_is_minilm_plus_its_adapter(code_model):
    base = gpte.load("minilm", device="cpu")
    text = code_model.render("def add(a, b):\n    return a + b\n")
    assert text.startswith("name: add | params: a b")
    same_input = base.encode_document(text)
    ours = code_model.encode_document("def add(a, b):\n    return a + b\n")
    assert 0.5 < float(same_input @ ours) < 0.999  # the adapter moved the embedding, but not far
    assert code_model.identity()["fingerprint"] != base.identity()["fingerprint"]


def test_code_search_default_model_finds_functions(tmp_path):
    from gpte.code import CodeSearch

    (tmp_path / "config.py").write_text('def load_config(path):\n    import tomllib\n    with open(path, "rb") as fh:'
                                        '\n        return tomllib.load(fh)\n\n\ndef fnv1a(data):\n    h = 2166136261\n'
                                        '    for b in data:\n        h = ((h ^ b) * 16777619) & 0xFFFFFFFF\n'
                                        '    return h\n')
    cs = CodeSearch(tmp_path)
    cs.index()
    assert cs.search("read a TOML configuration file", k=1)[0].symbol == "load_config"
    assert cs.search("32-bit hash of a byte string", k=1)[0].symbol == "fnv1a"
    assert CodeSearch(tmp_path).collection.model.source == "code-minilm"  # reopened with the model it was built with


def test_lit_default_finds_held_out_pictures_by_caption(tmp_path):
    from gpte.multimodal import ImageSearch

    meta = json.loads((DATA / "images" / "captions.json").read_text())
    folder = tmp_path / "pictures"
    shutil.copytree(DATA / "images", folder)
    search = ImageSearch(folder, index_dir=tmp_path / "index")
    report = search.index()
    assert report.images_indexed == len(meta) and "captions.json" in report.skipped
    for item in meta:
        if item["query"]:
            assert search.search(item["caption"], k=1)[0].id == item["file"], item["caption"]
    model = search.model
    assert model.identity()["name"] == "lit-lite0-minilm" and model.embed_dim == 256
    first = folder / meta[0]["file"]
    assert search.search(first, k=1)[0].id == meta[0]["file"]  # by image: itself
    np.testing.assert_allclose(np.linalg.norm(model.encode([first, "a car"]), axis=1), 1.0, atol=1e-5)


def test_universal_default_answers_caption_and_category_queries():
    from gpte.multimodal.universal import UniversalEmbedder

    meta = json.loads((DATA / "images" / "captions.json").read_text())
    model = gpte.load("universal-lite0-minilm")
    assert isinstance(model, UniversalEmbedder) and model.embed_dim == 384
    assert model.identity()["name"] == "universal-lite0-minilm" and model.adapter.name == "composed"
    images = [DATA / "images" / item["file"] for item in meta]
    candidates = model.encode_document(images)  # [16, 384]
    by_caption = (model.encode_query([item["caption"] for item in meta], task="text-to-image") @ candidates.T).argmax(1)
    folders = [item["source_id"].split(":")[1].split("/")[0].replace("_", " ") for item in meta]  # one per picture
    answers = sorted(set(folders))
    asked = model.encode_query([(img, "Which category is this?") for img in images], task="image-question")
    by_category = (asked @ model.encode_document(answers).T).argmax(1)
    # measured when the model shipped: 8 of 16 by caption (the dual tower: 9 of 16), 6 of 16 by category question
    assert [i for i in (0, 3, 6, 7, 9, 11, 13, 14) if by_caption[i] != i] == []
    assert [i for i in (0, 3, 6, 7, 13, 14) if answers[by_category[i]] != folders[i]] == []

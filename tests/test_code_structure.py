"""The structural header and the code encoder on top of the tiny text model."""

from __future__ import annotations

import numpy as np

import gpte
from gpte.code.encoder import CodeEncoder
from gpte.code.structure import StructureConfig, render, split_identifier, structure_header

CODE = '''def load_config(path, *, strict=False):
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if strict and not data:
        raise ValueError("empty")
    return data
'''


def test_split_identifier():
    assert split_identifier("parseHTTPHeader_v2") == ["parse", "http", "header", "v", "2"]
    assert split_identifier("load_config") == ["load", "config"]
    assert split_identifier("XMLHttpRequest") == ["xml", "http", "request"]


def test_header_fields_in_priority_order_and_budget():
    header = structure_header(CODE.encode(), "python", "load_config")
    assert header.startswith("name: load config | params: path strict | calls: open tomllib load value error | ast: ")
    assert "with_statement" in header and "identifier" not in header.split("ast: ")[1].split()
    tight = structure_header(CODE.encode(), "python", "load_config", StructureConfig(max_header_words=8))
    assert len(tight.replace("|", " ").split()) <= 8 + 3  # words plus field labels
    assert tight.startswith("name: load config")  # the most informative part survives the budget
    js = structure_header(b"function f(a) { return http.createServer(h).listen(a); }", "javascript", "f")
    assert "calls: listen http create server" in js


def test_enclosing_scope_follows_the_name():
    header = structure_header(CODE.encode(), "python", "load_config", scope="ConfigLoader")
    assert header.startswith("name: load config | in: config loader | params: path strict")
    assert render(CODE, "python", "load_config", StructureConfig(mode="ast"), scope=None).startswith(
        "name: load config | params:")  # top-level code: no scope field


def test_render_modes():
    assert render(CODE, "python", "load_config", StructureConfig(mode="text")) == CODE
    both = render(CODE, "python", "load_config", StructureConfig(mode="text+ast"))
    assert both.startswith("name: load config") and both.endswith(CODE)
    assert "\n" not in render(CODE, "python", "load_config", StructureConfig(mode="ast"))
    with_doc = render(CODE, "python", "load_config", StructureConfig(mode="text"), doc="Read the config.")
    assert with_doc.startswith("Read the config.\n")


def test_code_encoder_save_load_round_trip(tmp_path):
    enc = CodeEncoder(gpte.load("test-bert", device="cpu"), StructureConfig(mode="text+ast"))
    vec = enc.encode_document(CODE)
    assert vec.shape == (32,)
    plain = CodeEncoder(enc.text, StructureConfig(mode="text")).encode_document(CODE)
    assert not np.allclose(vec, plain, atol=1e-4)  # the header changes what the model reads
    enc.save(tmp_path / "code-model")
    again = gpte.load(tmp_path / "code-model", device="cpu")
    assert isinstance(again, CodeEncoder) and again.structure.mode == "text+ast"
    np.testing.assert_allclose(again.encode_document(CODE), vec, atol=1e-5)
    assert again.identity()["fingerprint"] == enc.identity()["fingerprint"]
    meta = (tmp_path / "code-model" / "gpte-code.json").read_text()
    assert "tree-sitter-python" in meta  # grammar versions saved with the model


def test_bare_code_is_named_after_its_first_definition():
    assert structure_header(CODE.encode(), "python").startswith("name: load config | params:")
    assert structure_header(b"int addTwo(int a) { return a + 2; }", "c").startswith("name: add two")

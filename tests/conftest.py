"""Shared fixtures: tiny random models built once per session and handed out as deep copies; offline always."""

from __future__ import annotations

import copy
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402

import gpte  # noqa: E402


@pytest.fixture(scope="session")
def _test_bert():
    return gpte.load("test-bert", device="cpu")


@pytest.fixture(scope="session")
def _test_decoder():
    return gpte.load("test-decoder", device="cpu")


@pytest.fixture(scope="session")
def _minilm():
    return gpte.load("minilm", device="cpu")


@pytest.fixture
def test_bert(_test_bert):
    return copy.deepcopy(_test_bert)


@pytest.fixture
def test_decoder(_test_decoder):
    return copy.deepcopy(_test_decoder)


@pytest.fixture
def minilm(_minilm):
    return copy.deepcopy(_minilm)

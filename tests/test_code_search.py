"""CodeSearch over a small fixture workspace: index, search with filters, incremental updates, bad files."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import gpte
from gpte.code import CodeSearch

FILES = {
    "pkg/config.py": '''
def load_config(path):
    """Read a TOML configuration file and return it as a dict."""
    import tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


class Cache:
    """A least-recently-used cache."""

    def get(self, key):
        """Return the cached value for key."""
        return self._data.get(key)
''',
    "web/server.js": '''
/** Start an HTTP server on the given port. */
function startServer(port) {
  return require("http").createServer(handler).listen(port);
}
''',
    "native/hash.c": '''
/* Compute a 32-bit FNV-1a hash of a buffer. */
unsigned int fnv1a(const unsigned char *data, int n) {
  unsigned int h = 2166136261u;
  for (int i = 0; i < n; i++) { h ^= data[i]; h *= 16777619u; }
  return h;
}
''',
}


@pytest.fixture
def workspace(tmp_path, test_bert):
    root = tmp_path / "ws"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "blob.bin").write_bytes(b"\0\1\2" * 10)
    (root / "notes.xyz").write_text("unknown language")
    return root


def test_index_search_and_filters(workspace, test_bert):
    cs = CodeSearch(workspace, model=test_bert)
    report = cs.index()
    assert report.files_indexed == 3 and report.chunks_added >= 5
    assert report.skipped["blob.bin"] == "binary" and report.skipped["notes.xyz"] == "unknown language"
    hits = cs.search("load_config", k=10)
    assert {h.symbol for h in hits} >= {"load_config", "startServer", "fnv1a", "get", "Cache"}
    top = cs.search("Read a TOML configuration file", k=10, language="python")
    assert top and all(h.language == "python" for h in top)
    cfg = next(h for h in top if h.symbol == "load_config")
    assert (cfg.path, cfg.kind, cfg.start_line) == ("pkg/config.py", "function", 2)
    assert all(h.path.startswith("native/") for h in cs.search("hash", path_glob="native/*"))
    again = CodeSearch(workspace, model=test_bert)  # reopened from disk: nothing to redo
    rep2 = again.index()
    assert rep2.files_indexed == 0 and rep2.files_unchanged == 3
    assert len(again.search("server", k=20)) == len(hits)


def test_incremental_update_touches_only_the_changed_file(workspace, test_bert):
    cs = CodeSearch(workspace, model=test_bert)
    cs.index()
    before = {h.chunk_id for h in cs.search("x", k=50)}
    (workspace / "web" / "server.js").write_text(FILES["web/server.js"] + "\nfunction stopServer(s) { s.close(); }\n")
    report = cs.update(["web/server.js"])
    assert report.files_indexed == 1 and report.chunks_added == 2 and report.chunks_removed == 1
    after = {h.chunk_id: h for h in cs.search("x", k=50)}
    assert before <= set(after) and any(h.symbol == "stopServer" for h in after.values())
    (workspace / "native" / "hash.c").unlink()
    report = cs.index()
    assert report.files_removed == 1 and report.files_indexed == 0
    assert not any(h.path == "native/hash.c" for h in cs.search("hash", k=50))
    with pytest.raises(ValueError, match="outside the workspace"):
        cs.update(["../elsewhere.py"])


def test_an_edit_embeds_only_the_changed_definitions(workspace, test_bert, tmp_path):
    cs = CodeSearch(workspace, model=test_bert)
    first = cs.index()
    assert first.chunks_embedded == first.chunks_added
    source = FILES["pkg/config.py"].replace('return self._data.get(key)', 'return self._data.get(key, None)')
    (workspace / "pkg" / "config.py").write_text(source, encoding="utf-8")
    report = cs.update(["pkg/config.py"])
    assert report.files_indexed == 1 and report.chunks_embedded == 1  # only Cache.get changed
    # the kept vectors are exactly those of a fresh index of the edited workspace
    fresh = CodeSearch(workspace, model=test_bert, index_dir=tmp_path / "fresh")
    fresh.index()
    ids = sorted(cs.collection.index.ids())
    assert ids == sorted(fresh.collection.index.ids())
    np.testing.assert_allclose(cs.collection.index.vectors(ids), fresh.collection.index.vectors(ids), atol=1e-6)


def test_git_ignored_files_are_skipped(workspace, test_bert):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git not installed")
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / ".gitignore").write_text("web/\n")
    cs = CodeSearch(workspace, model=test_bert)
    cs.index()
    assert not any(h.path.startswith("web/") for h in cs.search("server", k=50))


@pytest.mark.slow
def test_minilm_finds_the_function_by_description(workspace):
    cs = CodeSearch(workspace, model=gpte.load("minilm", device="cpu"))
    cs.index()
    assert cs.search("parse a configuration file", k=1)[0].symbol == "load_config"
    assert cs.search("hash function for bytes", k=1)[0].symbol == "fnv1a"


def test_code_cli_index_and_search_json(workspace, capsys):
    import json

    from gpte.cli import main

    assert main(["code", "index", str(workspace), "--model", "test-bert", "--device", "cpu"]) == 0
    assert "3 files indexed" in capsys.readouterr().out
    assert main(["code", "search", str(workspace), "TOML configuration", "--model", "test-bert", "--device", "cpu",
                 "--language", "c", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(h["language"] == "c" and h["path"] == "native/hash.c" for h in hits)
    assert {"path", "symbol", "kind", "start_line", "end_line", "score", "snippet"} <= set(hits[0])


def test_file_table_commits_with_the_index(workspace, test_bert):
    from gpte.index.store import open_index

    cs = CodeSearch(workspace, model=test_bert)
    cs.index()
    assert not (cs.dir / "files.json").exists()
    table = open_index(cs.dir / "index").extras["code_files"]
    assert set(table) == {"pkg/config.py", "web/server.js", "native/hash.c"}
    ids = {cid for entry in table.values() for cid in entry["chunks"]}
    assert ids == {h.chunk_id for h in cs.search("x", k=50)}  # the table names exactly the stored chunks

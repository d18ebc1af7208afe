"""End to end with a real editor: Neovim's built-in LSP client (0.7 API) starts ``gpte ide serve --stdio`` with the
shipped code model on a fixture repository, asks ``workspace/symbol`` in plain words, and the right function comes
first. The Lua side writes what it received to a JSON file; Python checks it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from _ide_workspace import gpte_command, server_env, write_workspace

pytestmark = pytest.mark.slow

QUERIES = {
    "compute the area enclosed by a polygon given its corner points": ("polygon_area", "app/geometry.py"),
    "fetch a web page and store it on disk": ("download_file", "app/net.py"),
    "make a url-friendly version of a title": ("slugify", "app/text.py"),
}

LUA = r"""
local result = {answers = {}}
local ok, err = pcall(function()
  local root = vim.env.GPTE_TEST_ROOT
  local id = vim.lsp.start_client({name = "gpte", cmd = vim.fn.json_decode(vim.env.GPTE_TEST_CMD), root_dir = root})
  assert(id, "vim.lsp.start_client failed")
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/app/config.py"))
  assert(vim.lsp.buf_attach_client(0, id), "buf_attach_client failed")
  result.ready = false
  for _ = 1, 480 do
    local replies = vim.lsp.buf_request_sync(0, "workspace/executeCommand", {command = "gpte.status", arguments = {}}, 5000)
    for _, reply in pairs(replies or {}) do
      local st = reply.result
      if st and st.state == "ready" and not st.partial then result.ready = true end
    end
    if result.ready then break end
    vim.wait(500)
  end
  for _, query in ipairs(vim.fn.json_decode(vim.env.GPTE_TEST_QUERIES)) do
    local replies = vim.lsp.buf_request_sync(0, "workspace/symbol", {query = query}, 60000)
    local symbols = {}
    for _, reply in pairs(replies or {}) do
      for _, s in ipairs(reply.result or {}) do
        table.insert(symbols, {name = s.name, uri = s.location.uri, line = s.location.range.start.line})
      end
    end
    table.insert(result.answers, {query = query, symbols = symbols})
  end
  vim.lsp.stop_client(id)
end)
result.ok = ok
if not ok then result.error = tostring(err) end
vim.fn.writefile({vim.fn.json_encode(result)}, vim.env.GPTE_TEST_OUT)
vim.cmd("qa!")
"""


@pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed (apt-get install neovim)")
def test_neovim_finds_functions_by_description(tmp_path):
    root = write_workspace(tmp_path / "ws")
    script, out = tmp_path / "client.lua", tmp_path / "answers.json"
    script.write_text(LUA, encoding="utf-8")
    env = server_env() | {"GPTE_TEST_ROOT": str(root), "GPTE_TEST_OUT": str(out),
                          "GPTE_TEST_CMD": json.dumps(gpte_command("ide", "serve", "--stdio")),
                          "GPTE_TEST_QUERIES": json.dumps(list(QUERIES)), "XDG_STATE_HOME": str(tmp_path / "state"),
                          "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(["nvim", "--headless", "--clean", "-c", f"luafile {script}"], cwd=root, env=env,
                          capture_output=True, timeout=300)
    assert out.exists(), f"Neovim wrote no answers (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
    result = json.loads(out.read_text())
    assert result["ok"], result.get("error")
    assert result["ready"], "the server never finished indexing"
    for answer in result["answers"]:
        name, rel = QUERIES[answer["query"]]
        first = answer["symbols"][0]
        assert (first["name"], first["uri"]) == (name, (root / rel).as_uri()), answer
        lines = (root / rel).read_text().splitlines()
        assert lines[first["line"]].startswith(f"def {name}")  # 0-based LSP line of the definition

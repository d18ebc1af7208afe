"""The Gradio demo: its services without a browser, then every endpoint of the running app through gradio_client.

Tiny random test models keep this fast (``test-lit``, ``test-bert``): assertions are about what does not depend on
a trained model (the picture itself first when searching by it, an identical text first, folders refused, errors
named). The browser test (tests/test_demo_browser.py) checks ranking quality with the shipped models.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from gpte.demo import DemoConfig, DemoError
from gpte.demo.codesearch import CodeService
from gpte.demo.config import index_dir_for, resolve_folder
from gpte.demo.images import THUMBNAIL_SIDE, ImageService
from gpte.demo.models import ModelCache, model_choices
from gpte.demo.texts import TextService, parse_texts

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "images"
CODE = {
    "pkg/config.py": 'def load_config(path):\n    """Read a TOML configuration file."""\n    import tomllib\n'
                     '    with open(path, "rb") as fh:\n        return tomllib.load(fh)\n\n\n'
                     'class Cache:\n    """A least-recently-used cache."""\n\n    def get(self, key):\n'
                     '        return self._data.get(key)\n',
    "native/hash.c": "/* FNV-1a hash of a buffer. */\nunsigned int fnv1a(const unsigned char *d, int n) {\n"
                     "  unsigned int h = 2166136261u;\n  for (int i = 0; i < n; i++) { h ^= d[i]; h *= 16777619u; }\n"
                     "  return h;\n}\n",
}
TEST_MODELS = {"include_test_models": True, "image_model": "test-lit", "code_model": "test-bert",
               "text_model": "test-bert"}


def _pictures(root: Path) -> Path:
    root.mkdir(parents=True)
    Image.new("RGB", (40, 30), (220, 20, 20)).save(root / "red.png")
    Image.new("RGB", (1000, 500), (20, 200, 20)).save(root / "big-green.png")
    (root / "sub").mkdir()
    Image.new("RGB", (32, 32), (20, 20, 230)).save(root / "sub" / "blue.png")
    shutil.copy(root / "red.png", root / "sub" / "red-copy.png")
    (root / "broken.png").write_bytes((root / "red.png").read_bytes()[:50])
    return root


def _workspace(root: Path) -> Path:
    for rel, text in CODE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def env(tmp_path):
    config = DemoConfig(image_folders=[_pictures(tmp_path / "pics")], code_folders=[_workspace(tmp_path / "ws")],
                        cache_dir=tmp_path / "cache", max_upload_bytes=200_000, image_batch_size=2,
                        **TEST_MODELS)  # batches of 2: progress between batches
    return config, ModelCache(include_test=True)


# ---------------------------------------------------------------------------------------------------- folders
def test_only_named_folders_and_folders_inside_them_are_read(tmp_path):
    root = _pictures(tmp_path / "pics")
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    assert resolve_folder(str(root), [root], "--images") == root
    assert resolve_folder(str(root / "sub"), [root], "--images") == root / "sub"
    assert resolve_folder(str(root / "sub" / ".."), [root], "--images") == root
    for outside in (tmp_path / "secret", root / "escape", root / ".." / "secret", Path("/etc")):
        with pytest.raises(DemoError, match="outside the folders this demo was started with.*--images"):
            resolve_folder(str(outside), [root], "--images")
    with pytest.raises(DemoError, match=r"/missing: no such folder"):
        resolve_folder(str(root / "missing"), [root], "--images")
    with pytest.raises(DemoError, match="red.png: not a folder"):
        resolve_folder(str(root / "red.png"), [root], "--images")
    with pytest.raises(DemoError, match="start the demo with --code FOLDER"):
        resolve_folder(str(root), [], "--code")
    with pytest.raises(DemoError, match="no folder given"):
        resolve_folder("  ", [root], "--images")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder_is_named_with_the_reason(tmp_path):
    root = _pictures(tmp_path / "pics")
    (root / "sub").chmod(0)
    try:
        with pytest.raises(DemoError, match="sub: cannot be read \\(permission denied\\)"):
            resolve_folder(str(root / "sub"), [root], "--images")
    finally:
        (root / "sub").chmod(0o755)


def test_model_picker_offers_models_of_the_right_kind():
    images, code, text = model_choices("image"), model_choices("code"), model_choices("text")
    assert "lit-lite0-minilm" in images and "minilm" not in images and "test-lit" not in images
    assert {"code-minilm", "minilm"} <= set(code) and "lit-lite0-minilm" not in code
    assert "minilm" in text and "lit-lite0-minilm" not in text and "code-minilm" not in text
    assert "test-lit" in model_choices("image", include_test=True)
    cache = ModelCache(include_test=True)
    assert cache.get("test-bert", "text") is cache.get("test-bert", "code")  # loaded once, shared by the tabs
    with pytest.raises(DemoError, match="cannot be used for image search"):
        cache.get("test-bert", "image")
    with pytest.raises(DemoError, match="'nope' cannot be used"):
        cache.get("nope", "text")


# ---------------------------------------------------------------------------------------------------- services
def test_image_service_indexes_into_the_cache_with_progress_and_searches(env):
    config, models = env
    service = ImageService(config, models)
    folder = config.image_folders[0]
    steps: list[tuple[float, str]] = []
    summary = service.index(str(folder), "test-lit", lambda f, d: steps.append((f, d)))
    assert (summary.images, summary.indexed, summary.duplicates) == (4, 4, 1)
    assert "broken.png" in summary.skipped and "broken.png" in summary.message()
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and any(0 < f < 1 for f in fractions)
    assert not (folder / ".gpte").exists()  # nothing written into the named folder
    assert (index_dir_for(config.cache_dir, "images", folder, "test-lit") / "CURRENT").is_file()

    results, again = service.search(str(folder), "test-lit", image=folder / "big-green.png", k=3)
    assert (again.indexed, again.unchanged) == (0, 4)  # cached engine, incremental: nothing re-embedded
    assert results[0].id == "big-green.png" and results[0].score == pytest.approx(1.0, abs=1e-4)
    assert [r.rank for r in results] == [1, 2, 3] and results[0].score >= results[1].score >= results[2].score
    assert max(results[0].thumbnail.size) == THUMBNAIL_SIDE and results[0].metadata["width"] == 1000
    red = next(r for r in service.search(str(folder), "test-lit", image=folder / "red.png", k=4)[0]
               if r.id in {"red.png", "sub/red-copy.png"})
    assert red.metadata["duplicates"] in (["sub/red-copy.png"], ["red.png"])  # one hit for both copies
    assert len(service.search(str(folder), "test-lit", text="a green field", k=10)[0]) == 3
    pair = service.search(str(folder / "sub"), "test-lit", "but red", folder / "big-green.png", k=2)[0]
    assert {r.id for r in pair} <= {"blue.png", "red-copy.png"}  # a subfolder is its own index
    with pytest.raises(DemoError, match="nothing to search for"):
        service.search(str(folder), "test-lit", "  ", None)


def test_bad_uploads_are_refused_with_the_reason(env, tmp_path):
    config, models = env
    service = ImageService(config, models)
    fake = tmp_path / "notes.png"
    fake.write_text("just some text")
    with pytest.raises(DemoError, match="notes.png: not a usable image"):
        service.load_query_image(fake)
    with pytest.raises(DemoError, match="broken.png: not a usable image .*(truncated|corrupt)"):
        service.load_query_image(config.image_folders[0] / "broken.png")
    big = tmp_path / "huge.bmp"
    Image.new("RGB", (400, 400)).save(big)  # 480 KB, over the 200 KB limit of this config
    with pytest.raises(DemoError, match=r"huge.bmp: too large \(0.5 MB; the limit is 0.2 MB\)"):
        service.load_query_image(big)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DemoError, match="empty.jpg: the file is empty"):
        service.load_query_image(tmp_path / "empty.jpg")
    with pytest.raises(DemoError, match="notes.png: not a usable image"):
        service.search(str(config.image_folders[0]), "test-lit", "red", fake)


def test_code_service_returns_locations_symbols_and_code(env):
    config, models = env
    service = CodeService(config, models)
    root = config.code_folders[0]
    results, summary = service.search(str(root), "test-bert", "read a configuration file", k=10)
    assert summary.files == 2 and summary.chunks >= 3 and not (root / ".gpte").exists()
    assert {r.symbol for r in results} >= {"load_config", "Cache.get", "fnv1a"}
    for r in results:
        lines = (root / r.path).read_text().splitlines()
        assert r.code.splitlines()[0] == lines[r.start_line - 1]  # the code read back is the definition's lines
        assert r.location == f"{r.path}:{r.start_line}"
    only_c = service.search(str(root), "test-bert", "hash", k=10, language="c")[0]
    assert [r.symbol for r in only_c] == ["fnv1a"] and only_c[0].language == "c"
    with pytest.raises(DemoError, match="unknown language 'cobol'"):
        service.search(str(root), "test-bert", "hash", language="cobol")
    with pytest.raises(DemoError, match="outside the folders.*--code"):
        service.search(str(root.parent), "test-bert", "hash")


def test_code_indexing_reports_progress_and_follows_edits(env):
    config, models = env
    service = CodeService(config, models)
    root = config.code_folders[0]
    for i in range(40):
        (root / "many" / f"m{i:02d}.py").parent.mkdir(exist_ok=True)
        (root / "many" / f"m{i:02d}.py").write_text(f"def f{i}(x):\n    return x + {i}\n", encoding="utf-8")
    steps: list[float] = []
    summary = service.index(str(root), "test-bert", lambda f, d: steps.append(f))
    assert (summary.files, summary.indexed, summary.removed) == (42, 42, 0)
    assert len(steps) >= 4 and steps == sorted(steps) and steps[-1] == 1.0
    (root / "many" / "m07.py").unlink()
    (root / "many" / "m08.py").write_text("def renamed(y):\n    return y\n", encoding="utf-8")
    summary = service.index(str(root), "test-bert")
    assert (summary.files, summary.indexed, summary.unchanged, summary.removed) == (41, 1, 40, 1)
    symbols = {r.symbol for r in service.search(str(root / "many"), "test-bert", "renamed", k=100)[0]}
    assert "renamed" in symbols and not {"f7", "f8"} & symbols and len(symbols) == 39  # a subfolder: its own index


def test_text_service_ranks_pasted_and_uploaded_texts(env, tmp_path):
    config, models = env
    service = TextService(config, models)
    upload = tmp_path / "more.txt"
    upload.write_text("\ufeffsort a list in place\n\nparse a JSON document\n", encoding="utf-8")
    items = parse_texts("read a file\n\n  trains leave hourly  \n", [upload])
    assert [(i.source, i.text) for i in items] == [("line 1", "read a file"), ("line 3", "trains leave hourly"),
                                                  ("more.txt:1", "sort a list in place"),
                                                  ("more.txt:3", "parse a JSON document")]
    results = service.search("read a file\ntrains leave hourly", [upload], "parse a JSON document", "test-bert", k=3)
    assert (results[0].source, results[0].text) == ("more.txt:3", "parse a JSON document")
    assert results[0].score == pytest.approx(1.0, abs=1e-4) and results[0].score > results[1].score >= results[2].score
    assert len(results) == 3
    assert service.similarity("a cat", "a cat", "test-bert") == pytest.approx(1.0, abs=1e-4)
    ab, ba = service.similarity("a cat", "stock prices", "test-bert"), service.similarity("stock prices", "a cat",
                                                                                         "test-bert")
    assert ab == pytest.approx(ba, abs=1e-5) and ab < 0.9999
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DemoError, match=r"latin1.txt: not UTF-8 text \(byte 0xe9 at offset 3\)"):
        parse_texts("", [tmp_path / "latin1.txt"])
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(DemoError, match="blob.txt: not a text file"):
        parse_texts("", [tmp_path / "blob.txt"])
    with pytest.raises(DemoError, match="3 texts given; the demo embeds at most 2"):
        parse_texts("a\nb\nc", max_texts=2)
    with pytest.raises(DemoError, match="no texts to search"):
        service.search("\n \n", None, "query", "test-bert")
    with pytest.raises(DemoError, match="the second text is empty"):
        service.similarity("a", " ", "test-bert")


def test_cli_refuses_a_missing_folder_before_starting(tmp_path, capsys):
    from gpte.cli import main

    assert main(["demo", "--images", str(tmp_path / "nowhere"), "--code", str(tmp_path)]) == 1
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- the running app
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from gradio_client import Client

    from gpte.demo.app import build_app, launch

    tmp = tmp_path_factory.mktemp("demo")
    config = DemoConfig(image_folders=[_pictures(tmp / "pics")], code_folders=[_workspace(tmp / "ws")],
                        cache_dir=tmp / "cache", max_upload_bytes=200_000, **TEST_MODELS)
    app = build_app(config)
    port = _free_port()
    launch(app, port=port, block=False, quiet=True)
    try:
        yield config, Client(f"http://127.0.0.1:{port}/", verbose=False), f"http://127.0.0.1:{port}"
    finally:
        app.close()


def test_every_event_has_a_stable_api_name(served):
    _, client, _ = served
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/image_index", "/image_preview", "/image_search", "/image_search_submit", "/code_index",
                     "/code_search", "/code_search_submit", "/code_show", "/text_search", "/text_search_submit",
                     "/text_similarity"}


def test_image_endpoints(served, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    config, client, _ = served
    folder = str(config.image_folders[0])
    status = client.predict(folder, "test-lit", api_name="/image_index")
    assert status.startswith(f"{folder}: 4 images in the index") and "skipped broken.png" in status
    gallery, table, _ = client.predict(folder, "test-lit", "", handle_file(str(Path(folder) / "big-green.png")), 3,
                                       api_name="/image_search")
    rows = table["data"]
    assert table["headers"] == ["rank", "score", "file", "pixels", "KB", "duplicates"]
    assert rows[0][2] == "big-green.png" and rows[0][3] == "1000×500" and rows[0][1] == pytest.approx(1, abs=1e-3)
    assert [r[0] for r in rows] == [1, 2, 3] and rows[0][1] >= rows[1][1] >= rows[2][1]
    assert len(gallery) == 3 and gallery[0]["caption"].startswith("1. 1.000  big-green.png")
    with Image.open(gallery[0]["image"]) as thumb:  # a thumbnail rendered by the demo, not the file itself
        assert max(thumb.size) == THUMBNAIL_SIDE
    gallery, table, _ = client.predict(folder, "test-lit", "something red", None, 2, api_name="/image_search_submit")
    assert len(table["data"]) == 2 == len(gallery)
    preview = client.predict(handle_file(str(Path(folder) / "red.png")), api_name="/image_preview")
    with Image.open(preview) as im:
        assert im.size == (40, 30)
    fake = tmp_path / "photo.png"
    fake.write_text("not really a picture")
    with pytest.raises(AppError, match="photo.png: not a usable image"):
        client.predict(handle_file(str(fake)), api_name="/image_preview")
    with pytest.raises(AppError, match="photo.png: not a usable image"):
        client.predict(folder, "test-lit", "red", handle_file(str(fake)), 3, api_name="/image_search")
    with pytest.raises(AppError, match="/etc: outside the folders this demo was started with"):
        client.predict("/etc", "test-lit", "red", None, 3, api_name="/image_search")
    with pytest.raises(AppError, match="nope: no such folder"):
        client.predict(f"{folder}/nope", "test-lit", "red", None, 3, api_name="/image_search")
    with pytest.raises(AppError, match="test-bert is not in the list of choices"):  # the picker's own check
        client.predict(folder, "test-bert", "red", None, 3, api_name="/image_search")


def test_uploads_over_the_size_limit_are_refused(served, tmp_path):
    import httpx
    from gradio_client import handle_file

    _, client, url = served
    big = tmp_path / "big.bmp"
    Image.new("RGB", (400, 400)).save(big)  # 480 KB > max_file_size 200 KB
    with pytest.raises(ValueError, match="exceeds the maximum file size of 200000 bytes"):  # the client checks...
        client.predict(handle_file(str(big)), api_name="/image_preview")
    answer = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.bmp", big.read_bytes())}, timeout=30)
    assert answer.status_code == 413 and "200000 bytes" in answer.text  # ...and so does the server
    small = httpx.post(f"{url}/gradio_api/upload", files={"files": ("s.png", b"x" * 1000)}, timeout=30)
    assert small.status_code == 200


def test_code_and_text_endpoints(served, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    config, client, _ = served
    root = str(config.code_folders[0])
    assert "definitions from 2 files" in client.predict(root, "test-bert", api_name="/code_index")
    table, code, status = client.predict(root, "test-bert", "hash of a buffer", "c", 5, api_name="/code_search")
    assert table["data"] == [[1, pytest.approx(table["data"][0][1]), "native/hash.c:2-6", "fnv1a", "function", "c"]]
    assert code["value"].startswith("unsigned int fnv1a(") and code["language"] == "c"
    assert status.startswith(root)
    table, code, _ = client.predict(root, "test-bert", "cache", "any", 10, api_name="/code_search_submit")
    assert {row[3] for row in table["data"]} >= {"load_config", "Cache.get", "fnv1a"}
    with pytest.raises(AppError, match="nothing to search for"):
        client.predict(root, "test-bert", " ", "any", 5, api_name="/code_search")

    upload = tmp_path / "facts.txt"
    upload.write_text("water boils at 100 degrees\nthe moon orbits the earth\n", encoding="utf-8")
    table = client.predict("a cat sleeps\nstocks fell", [handle_file(str(upload))], "the moon orbits the earth",
                           "test-bert", 3, api_name="/text_search")
    rows = table["data"]
    assert rows[0][2:] == ["facts.txt:2", "the moon orbits the earth"] and rows[0][1] == pytest.approx(1, abs=1e-3)
    assert len(rows) == 3 and rows[0][1] >= rows[1][1] >= rows[2][1]
    assert client.predict("a cat", "a cat", "test-bert", api_name="/text_similarity") == pytest.approx(1, abs=1e-4)
    assert client.predict("a cat", "tax law", "test-bert", api_name="/text_similarity") < 0.9999
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(AppError, match="latin1.txt: not UTF-8 text"):
        client.predict("", [handle_file(str(tmp_path / "latin1.txt"))], "q", "test-bert", 3, api_name="/text_search")


def test_no_file_on_disk_is_served(served):
    config, _, url = served
    for path in (config.image_folders[0] / "red.png", REPO / "README.md", Path("/etc/passwd")):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/gradio_api/file={path}", timeout=10)
        assert err.value.code == 403, path


def test_file_inputs_take_only_uploaded_files(served, tmp_path):
    """A raw API call naming a file on the server's disk instead of uploading it is refused, not read."""
    import httpx

    _, _, url = served
    secret = tmp_path / "secret.txt"
    secret.write_text("the password is hunter2\n", encoding="utf-8")
    named = {"path": str(secret), "orig_name": "secret.txt", "meta": {"_type": "gradio.FileData"}}
    call = httpx.post(f"{url}/gradio_api/call/text_search", json={"data": ["", [named], "password", "test-bert", 3]},
                      timeout=30)
    with httpx.stream("GET", f"{url}/gradio_api/call/text_search/{call.json()['event_id']}", timeout=60) as answer:
        events = "\n".join(answer.iter_lines())
    assert "event: error" in events and "not uploaded by a user" in events and "hunter2" not in events


def test_launcher_serves_the_cli_command_on_loopback(tmp_path):
    """demos/app.py → gpte demo → the app, as a user starts it; bound to 127.0.0.1 only."""
    port = _free_port()
    cmd = [sys.executable, str(REPO / "demos" / "app.py"), "--images", str(_pictures(tmp_path / "pics")), "--code",
           str(_workspace(tmp_path / "ws")), "--port", str(port), "--cache-dir", str(tmp_path / "cache"),
           "--test-models", "--image-model", "test-lit", "--code-model", "test-bert", "--text-model", "test-bert"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        deadline, page = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert page is not None, proc.stdout.read().decode() if proc.poll() is not None else "no answer in 90 s"
        config = json.loads(page)
        assert (config["title"], config["analytics_enabled"], config["max_file_size"]) == ("gpte demo", False, 20e6)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        if listening:  # ss (iproute2) present: the only listener is the loopback address
            assert all(line.split()[3].startswith("127.0.0.1:") for line in listening.splitlines()), listening
    finally:
        proc.terminate()
        proc.wait(timeout=30)

"""WorkspaceService: background indexing, partial answers, incremental updates (explicit and watched), consistent
snapshots under concurrent updates, the workspace boundary, deleted files, the server lock and restarts."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from _ide_workspace import ADDED, FILES, write_workspace

from gpte.ide import OutsideWorkspaceError, WorkspaceService

SYMBOLS = {"load_config", "polygon_area", "download_file", "slugify", "sha256_of_file"}


def _symbols(service: WorkspaceService, k: int = 50, **kw) -> set[str]:
    return {h.symbol for h in service.search("function", k=k, **kw).hits}


def _until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def ws(tmp_path):
    return write_workspace(tmp_path / "ws")


def test_indexes_in_background_respects_gitignore_and_ignores_its_cache(ws, test_bert):
    with WorkspaceService(ws, model=test_bert, watch=False) as service:
        assert service.wait_idle(60)
        status = service.status()
        assert (status["state"], status["partial"], status["files"]) == ("ready", False, 5)
        assert _symbols(service) == SYMBOLS  # ignored/secret.py is git-ignored
        assert _symbols(service, path_glob="app/geo*") == {"polygon_area"}
        assert _symbols(service, language="javascript") == set()
    assert (ws / ".gpte" / ".gitignore").read_text().strip().endswith("*")
    porcelain = subprocess.run(["git", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert ".gpte" not in porcelain and "app/" in porcelain


def test_answers_during_the_first_pass_are_partial(ws, test_bert):
    seen: list = []

    def during(event):  # runs in the worker between two embedded batches
        if event.kind == "report" and not seen:
            seen.append(service.search("function", k=50))

    service = WorkspaceService(ws, model=test_bert, watch=False, group_chunks=1, on_progress=during)
    with service:
        assert service.wait_idle(60)
        final = service.search("function", k=50)
    assert seen and seen[0].partial and seen[0].state == "indexing"
    assert 1 <= len({h.path for h in seen[0].hits}) < 5
    assert not final.partial and len({h.path for h in final.hits}) == 5


def test_progress_events_begin_report_end(ws, test_bert):
    events = []
    with WorkspaceService(ws, model=test_bert, watch=False, group_chunks=2, on_progress=events.append) as service:
        assert service.wait_idle(60)
    kinds = [e.kind for e in events]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("report") >= 2
    assert [e.percentage for e in events if e.kind == "report"][-1] == 100


def test_saved_file_is_reindexed_alone(ws, test_bert):
    with WorkspaceService(ws, model=test_bert, watch=False) as service:
        assert service.wait_idle(60)
        (ws / "app" / "text.py").write_text(FILES["app/text.py"] + ADDED, encoding="utf-8")
        assert service.notify_changed([(ws / "app" / "text.py").as_uri()]) == ["app/text.py"]
        assert service.wait_idle(60)
        last = service.status()["last_update"]
        assert (last["files_indexed"], last["files_unchanged"]) == (1, 0)
        assert "merge_sorted_lists" in _symbols(service)
        hit = next(h for h in service.search("merge", k=50).hits if h.symbol == "merge_sorted_lists")
        lines = (ws / "app" / "text.py").read_text().splitlines()
        assert lines[hit.start_line - 1].startswith("def merge_sorted_lists")


def test_watcher_sees_changes_made_outside_the_editor(ws, test_bert):
    with WorkspaceService(ws, model=test_bert, poll_interval=0.2) as service:
        assert service.wait_idle(60)
        (ws / "app" / "sorting.py").write_text(ADDED.lstrip(), encoding="utf-8")
        (ws / "app" / "net.py").unlink()
        assert _until(lambda: "merge_sorted_lists" in _symbols(service) and "download_file" not in _symbols(service))
        assert service.wait_idle(30) and service.status()["files"] == 5


def test_searches_during_updates_see_each_file_whole(ws, test_bert):
    versions = [FILES["app/text.py"], FILES["app/text.py"] + ADDED]
    expected = [{"slugify"}, {"slugify", "merge_sorted_lists"}]
    with WorkspaceService(ws, model=test_bert, watch=False) as service:
        assert service.wait_idle(60)
        cs = service.code_search
        stop, bad, seen = threading.Event(), [], set()

        def hammer():
            while not stop.is_set():
                got = frozenset(h.symbol for h in service.search("x", k=50).hits if h.path == "app/text.py")
                seen.add(got)
                if got not in map(frozenset, expected):
                    bad.append(got)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            for i in range(12):
                (ws / "app" / "text.py").write_text(versions[i % 2], encoding="utf-8")
                cs.update(["app/text.py"])
        finally:
            stop.set()
            thread.join()
    assert not bad, f"a search saw a half-updated file: {bad[:3]}"
    assert len(seen) == 2  # both versions were observed: the searches really ran during the updates


def test_workspace_boundary(ws, tmp_path, test_bert):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text('def exfiltrate_credentials():\n    """Send secrets away."""\n    return 1\n')
    (ws / "app" / "link.py").symlink_to(outside / "evil.py")
    (ws / "linked_dir").symlink_to(outside, target_is_directory=True)
    with WorkspaceService(ws, model=test_bert, watch=False) as service:
        for bad in ("../outside/evil.py", str(outside / "evil.py"), (outside / "evil.py").as_uri(),
                    "app/link.py", "linked_dir/evil.py", "https://example.com/app/net.py", "file://host/etc/x"):
            with pytest.raises(OutsideWorkspaceError):
                service.resolve(bad)
        with pytest.raises(OutsideWorkspaceError, match="outside the workspace"):
            service.notify_changed(["app/net.py", "/etc/passwd"])
        with pytest.raises(OutsideWorkspaceError):
            service.search("x", path_glob="../*")
        with pytest.raises(ValueError):
            service.search("  ")
        with pytest.raises(ValueError):
            service.search("x", k=0)
        assert service.resolve((ws / "app" / "net.py").as_uri()) == "app/net.py"
        assert service.wait_idle(60)
        assert "exfiltrate_credentials" not in _symbols(service)


def test_deleted_file_is_dropped_from_answers_then_from_the_index(ws, test_bert):
    with WorkspaceService(ws, model=test_bert, watch=False) as service:
        assert service.wait_idle(60)
        (ws / "app" / "net.py").unlink()
        result = service.search("download", k=10)
        assert result.missing == ["app/net.py"] and all(h.path != "app/net.py" for h in result.hits)
        assert len(result.hits) == 4 and all(h.snippet for h in result.hits)
        assert service.wait_idle(30) and service.status()["files"] == 4


def test_second_server_is_read_only_reloads_and_takes_over(ws, test_bert):
    first = WorkspaceService(ws, model=test_bert, watch=False).start()
    try:
        assert first.wait_idle(60)
        with WorkspaceService(ws, model=test_bert, watch=False, poll_interval=0.2) as second:
            assert second.wait_idle(60)
            status = second.status()
            assert status["state"] == "read-only" and status["read_only"] and ".lock" in status["reason"]
            assert _symbols(second) == SYMBOLS and not second.search("x").partial
            (ws / "app" / "sorting.py").write_text(ADDED.lstrip(), encoding="utf-8")
            first.notify_changed(["app/sorting.py"])
            assert first.wait_idle(60)
            assert _until(lambda: "merge_sorted_lists" in _symbols(second))  # reloaded after the first one saved
            first.close()
            assert _until(lambda: not second.read_only and second.status()["state"] == "ready")
    finally:
        first.close()


def test_restart_answers_from_the_saved_index(ws, test_bert):
    with WorkspaceService(ws, model=test_bert, watch=False) as service:
        assert service.wait_idle(60)
    again = WorkspaceService(ws, model=test_bert, watch=False)
    with again:
        assert _until(lambda: again.code_search is not None, 30)
        assert _symbols(again) == SYMBOLS  # answered from disk, whatever the rescan is doing
        assert again.wait_idle(60)
        assert again.status()["last_update"]["files_indexed"] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: an unreadable folder cannot be made")
def test_unreadable_folder_is_skipped_and_reported(tmp_path, test_bert):
    ws = write_workspace(tmp_path / "ws", git=False)
    (ws / "locked").mkdir()
    (ws / "locked" / "hidden.py").write_text("def f():\n    return 1\n")
    os.chmod(ws / "locked", 0)
    messages = []
    try:
        with WorkspaceService(ws, model=test_bert, watch=False, on_message=lambda lvl, m: messages.append((lvl, m))) \
                as service:
            assert service.wait_idle(60)
            assert _symbols(service) == SYMBOLS
    finally:
        os.chmod(ws / "locked", 0o755)
    assert any(lvl == "warning" and "locked" in m and "unreadable" in m for lvl, m in messages)

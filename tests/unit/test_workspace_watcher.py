"""The watcher over real inotify: changes delivered on the loop, and the index and cache follow."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentls.workspace import watcher as watcher_module
from agentls.workspace.cache import CachedFile, FileCache
from agentls.workspace.index import WorkspaceIndex
from agentls.workspace.roots import WorkspaceRoots
from agentls.workspace.watcher import Watcher

FAST = {"debounce_ms": 100, "step_ms": 10, "timeout_ms": 50}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = Path(os.path.realpath(tmp_path)) / "ws"
    folder.mkdir()
    return folder


class Collector:
    """Records batches and which thread delivered them."""

    def __init__(self) -> None:
        self.batches: list[set[Path]] = []
        self.threads: set[int] = set()
        self.arrived = asyncio.Event()

    def __call__(self, paths: set[Path]) -> None:
        self.batches.append(paths)
        self.threads.add(threading.get_ident())
        self.arrived.set()

    @property
    def paths(self) -> set[Path]:
        return set().union(*self.batches) if self.batches else set()

    async def wait_for(self, check: Callable[[set[Path]], bool], timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.paths):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not delivered in time; got {self.paths}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)


async def test_a_write_after_start_is_delivered_on_the_loop(root: Path) -> None:
    got = Collector()
    watcher = Watcher([root], got, **FAST)
    await watcher.start()
    try:
        assert watcher.running
        started = time.monotonic()
        (root / "a.py").write_text("x = 1\n")
        await got.wait_for(lambda paths: root / "a.py" in paths)
        assert time.monotonic() - started < 10  # a hang bound; delivery takes ~0.1 s
        assert got.threads == {threading.get_ident()}  # the callback ran on the loop's thread
    finally:
        await watcher.stop()
    assert not watcher.running


async def test_git_internals_are_filtered_out(root: Path) -> None:
    (root / ".git" / "objects").mkdir(parents=True)
    got = Collector()
    watcher = Watcher([root], got, **FAST)
    await watcher.start()
    try:
        (root / ".git" / "objects" / "ab12").write_bytes(b"blob")
        (root / ".git" / "index.lock").write_bytes(b"lock")
        (root / "real.txt").write_text("x")
        await got.wait_for(lambda paths: root / "real.txt" in paths)
        await asyncio.sleep(0.1)
        assert not any(".git" in p.parts for p in got.paths)
    finally:
        await watcher.stop()


async def test_index_and_cache_see_external_edits(root: Path) -> None:
    """hardening F5: write -> event -> read returns the new content, every time."""
    (root / "src").mkdir()
    target = root / "src" / "mod.py"
    target.write_text("version = 0\n")
    roots = WorkspaceRoots([root])
    index = WorkspaceIndex(roots, max_file_bytes=1 << 20)
    await index.scan()
    cache = FileCache(max_bytes=1 << 20)
    events: list[set[Path]] = []
    arrived = asyncio.Event()

    def on_changes(paths: set[Path]) -> None:  # what the service facade does
        cache.invalidate(paths)
        index.note_changes(paths)
        events.append(paths)
        arrived.set()

    watcher = Watcher([root], on_changes, **FAST)
    await watcher.start()
    try:
        time.sleep(0.05)
        await cache.read_many([target], max_file_bytes=1 << 20)
        assert cache.get(target) is not None
        for i in range(1, 21):
            content = f"version = {i}\n" + "#" * i
            arrived.clear()
            target.write_text(content)
            await asyncio.wait_for(arrived.wait(), 3)
            while target not in set().union(*events):
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 3)
            events.clear()
            entry = index.entry(target)
            assert entry is not None and entry.size == len(content)
            got = (await cache.read_many([target], max_file_bytes=1 << 20))[target]
            assert isinstance(got, CachedFile) and got.data == content.encode()
        # a new file and a deletion reach the index too
        (root / "src" / "new.py").write_text("new\n")
        target.unlink()
        deadline = time.monotonic() + 3
        while index.entry(root / "src" / "new.py") is None or index.entry(target) is not None:
            assert time.monotonic() < deadline, "index did not converge"
            await asyncio.sleep(0.02)
        assert cache.get(target) is None
    finally:
        await watcher.stop()


async def test_a_storm_of_changes_converges(root: Path) -> None:
    """hardening F5: many creates and deletes in a burst; the index converges within 2 s."""
    roots = WorkspaceRoots([root])
    index = WorkspaceIndex(roots, max_file_bytes=1 << 20)
    await index.scan()
    watcher = Watcher([root], index.note_changes, **FAST)
    await watcher.start()
    try:
        for i in range(800):
            (root / f"s{i % 8}").mkdir(exist_ok=True)
            (root / f"s{i % 8}" / f"f{i}.txt").write_text(str(i))
        for i in range(0, 800, 2):
            (root / f"s{i % 8}" / f"f{i}.txt").unlink()
        deadline = time.monotonic() + 2.0
        while True:
            files = {e.rel for e in index.match(root, ["**"])[0]}
            if len(files) == 400 and all(int(r.split("/f")[1][:-4]) % 2 for r in files):
                break
            assert time.monotonic() < deadline, f"{len(files)} files after 2 s"
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()


async def test_callback_errors_do_not_stop_the_watch(root: Path) -> None:
    seen: list[set[Path]] = []
    arrived = asyncio.Event()

    def flaky(paths: set[Path]) -> None:
        seen.append(paths)
        arrived.set()
        if len(seen) == 1:
            raise RuntimeError("handler bug")

    watcher = Watcher([root], flaky, **FAST)
    await watcher.start()
    try:
        (root / "one.txt").write_text("1")
        await asyncio.wait_for(arrived.wait(), 3)
        await asyncio.sleep(0.15)
        arrived.clear()
        (root / "two.txt").write_text("2")
        await asyncio.wait_for(arrived.wait(), 3)
        assert any(root / "two.txt" in b for b in seen)
    finally:
        await watcher.stop()


async def test_set_folders_moves_the_watch(root: Path, tmp_path: Path) -> None:
    other = Path(os.path.realpath(tmp_path)) / "other"
    other.mkdir()
    got = Collector()
    watcher = Watcher([root], got, **FAST)
    await watcher.start()
    try:
        await watcher.set_folders([other])
        assert watcher.folders == (other,) and watcher.running
        (root / "old.txt").write_text("old")
        (other / "new.txt").write_text("new")
        await got.wait_for(lambda paths: other / "new.txt" in paths)
        assert root / "old.txt" not in got.paths
    finally:
        await watcher.stop()


async def test_missing_folders_are_skipped(root: Path, tmp_path: Path) -> None:
    got = Collector()
    watcher = Watcher([Path(os.path.realpath(tmp_path)) / "nope", root], got, **FAST)
    await watcher.start()
    try:
        (root / "x.txt").write_text("x")
        await got.wait_for(lambda paths: root / "x.txt" in paths)
    finally:
        await watcher.stop()
    nothing = Watcher([Path(os.path.realpath(tmp_path)) / "nope"], got, **FAST)
    await nothing.start()  # returns; nothing to watch
    await nothing.stop()


async def test_a_failing_watch_is_restarted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_awatch = watcher_module.awatch
    calls = 0

    def failing_once(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(28, "inotify watch limit reached")
        return real_awatch(*args, **kwargs)

    monkeypatch.setattr(watcher_module, "awatch", failing_once)
    got = Collector()
    watcher = Watcher([root], got, **FAST)
    await watcher.start()  # returns after the first failure, the restart happens in background
    try:
        assert watcher.restarts == 1
        deadline = time.monotonic() + 3
        while calls < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the new watch register
        (root / "after.txt").write_text("x")
        await got.wait_for(lambda paths: root / "after.txt" in paths)
    finally:
        await watcher.stop()


async def test_stop_is_prompt_and_idempotent(root: Path) -> None:
    watcher = Watcher([root], lambda paths: None, debounce_ms=200, step_ms=20, timeout_ms=3000)
    started = time.monotonic()
    await watcher.start()  # live after the first quiet timeout
    assert 2.9 < time.monotonic() - started < 30
    began = time.monotonic()
    await watcher.stop()  # a new 3 s wait has just begun: stop must not sit it out
    assert time.monotonic() - began < 2.5  # stopping takes one 20 ms step, not the 3 s wait
    await watcher.stop()
    with pytest.raises(ValueError):
        Watcher([root], lambda paths: None, step_ms=0)


async def test_a_storm_of_five_thousand_changes_converges(root: Path) -> None:
    """Issue 4: a checkout-sized burst (5,000 changes) leaves index and cache exactly current."""
    roots = WorkspaceRoots([root])
    index = WorkspaceIndex(roots, max_file_bytes=1 << 20)
    cache = FileCache(max_bytes=64 << 20)
    for i in range(2500):
        (root / f"d{i % 25}").mkdir(exist_ok=True)
        (root / f"d{i % 25}" / f"f{i}.txt").write_text(f"old {i}\n")
    await index.scan()
    paths = [root / f"d{i % 25}" / f"f{i}.txt" for i in range(2500)]
    await cache.read_many(paths, max_file_bytes=1 << 20)

    def changed(batch: set[Path]) -> None:
        cache.invalidate(batch)
        index.note_changes(batch)

    watcher = Watcher([root], changed, **FAST)
    await watcher.start()
    try:
        for i in range(2500):  # 2,500 rewrites (odd ones) and deletions (even ones)...
            if i % 2:
                paths[i].write_text(f"new {i}\n")
            else:
                paths[i].unlink()
        for i in range(2500):  # ...and 2,500 new files
            (root / f"d{i % 25}" / f"n{i}.txt").write_text(f"added {i}\n")
        expected = {f"d{i % 25}/f{i}.txt" for i in range(1, 2500, 2)}
        expected |= {f"d{i % 25}/n{i}.txt" for i in range(2500)}
        deadline = time.monotonic() + 10.0
        while {e.rel for e in index.match(root, ["**"])[0]} != expected:
            assert time.monotonic() < deadline, "the index did not converge within 10 s"
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
    got = await cache.read_many(paths, max_file_bytes=1 << 20)
    for i, path in enumerate(paths):
        if i % 2:
            value = got[path]
            assert isinstance(value, CachedFile) and value.data == f"new {i}\n".encode()
        else:
            assert got[path] == "missing"

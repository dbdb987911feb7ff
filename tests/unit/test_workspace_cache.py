"""The file cache: bounded by real bytes, LRU with counters, and never a stale read."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path

import psutil
import pytest

from agentls.workspace import loader as loader_module
from agentls.workspace.cache import ENTRY_OVERHEAD_BYTES, CachedFile, FileCache

MAX_FILE = 1024 * 1024
RACY_WAIT = 0.05
"""Longer than the loader's racy window: reads after this are trusted by the cache."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return Path(os.path.realpath(tmp_path))


def settle() -> None:
    time.sleep(RACY_WAIT)


async def test_hits_come_from_memory_and_are_counted(root: Path) -> None:
    paths = []
    for i in range(10):
        p = root / f"f{i}.txt"
        p.write_text(f"file {i}\n")
        paths.append(p)
    settle()
    cache = FileCache(max_bytes=1024 * 1024)
    first = await cache.read_many(paths, max_file_bytes=MAX_FILE)
    assert [v.data for v in first.values() if isinstance(v, CachedFile)] == [
        f"file {i}\n".encode() for i in range(10)
    ]
    assert cache.stats()["misses"] == 10 and cache.stats()["hits"] == 0
    for _ in range(9):
        again = await cache.read_many(paths, max_file_bytes=MAX_FILE)
        assert again == first
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (90, 10, 10)
    assert stats["hit_rate"] == pytest.approx(0.9)
    assert stats["bytes"] == sum(len(f"file {i}\n") + ENTRY_OVERHEAD_BYTES for i in range(10))


async def test_byte_bound_holds_with_non_ascii_content(root: Path) -> None:
    # 3 and 4 byte characters: a str cache counting len() would undercount 3-4x
    chunk = "中文😀é" * 3000  # 12,000 characters, 3+3+4+2 = 12 bytes per 4 of them
    data = chunk.encode("utf-8")
    paths = []
    for i in range(40):
        p = root / f"u{i}.txt"
        p.write_bytes(data)
        paths.append(p)
    settle()
    budget = 10 * (len(data) + ENTRY_OVERHEAD_BYTES) + 100
    cache = FileCache(max_bytes=budget)
    got = await cache.read_many(paths, max_file_bytes=MAX_FILE)
    assert all(isinstance(v, CachedFile) and v.data == data for v in got.values())
    stats = cache.stats()
    assert stats["bytes"] <= budget
    assert stats["entries"] == 10
    assert stats["evictions"] == 30
    assert len(data) == 36_000  # UTF-8 bytes are what is counted, not 12,000 characters


async def test_lru_evicts_the_least_recently_used(root: Path) -> None:
    paths = {}
    for name in "abcd":
        p = root / name
        p.write_bytes(name.encode() * 1000)
        paths[name] = p
    settle()
    cache = FileCache(max_bytes=3 * (1000 + ENTRY_OVERHEAD_BYTES))
    await cache.read_many([paths["a"], paths["b"], paths["c"]], max_file_bytes=MAX_FILE)
    assert cache.get(paths["a"]) is not None  # "a" is now the most recently used
    await cache.read_many([paths["d"]], max_file_bytes=MAX_FILE)
    assert cache.stats()["evictions"] == 1
    assert cache.get(paths["b"]) is None  # evicted
    assert cache.get(paths["a"]) is not None
    assert cache.get(paths["c"]) is not None
    assert cache.get(paths["d"]) is not None


async def test_revalidation_after_external_writes_never_reads_stale(root: Path) -> None:
    """hardening F5: 200 write -> read iterations, zero stale reads (no watcher involved).

    Half the writes also set an old mtime (as ``git checkout`` or ``tar`` do), so their reads are
    trusted and kept; the next write must then be caught by the ``(mtime_ns, size)`` check.
    """
    path = root / "edited.py"
    cache = FileCache(max_bytes=1024 * 1024)
    stale = 0
    kept = 0
    base = time.time_ns() - 10**12
    for i in range(200):
        # same size every other time: only the mtime can tell those versions apart
        content = f"v{i:05d}\n" if i % 2 else f"value = {i}\n" * (1 + i % 5)
        path.write_text(content)
        if i % 4 in (1, 2):
            os.utime(path, ns=(base + i * 10**9, base + i * 10**9))
        got = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
        assert isinstance(got, CachedFile)
        if got.data != content.encode():
            stale += 1
        kept += cache.get(path) is not None
    assert stale == 0
    # The settled half is kept; a fresh write is kept too once it is older than the racy window
    # by the time it is read, which a loaded machine can make happen.
    assert kept >= 100


async def test_a_restored_mtime_with_a_new_size_is_not_served_stale(root: Path) -> None:
    """``cp -p``, ``tar``, ``rsync -t`` and coarse timestamps bring back an old mtime: the size
    must still tell the versions apart, so revalidating by ``mtime_ns`` alone is not enough."""
    path = root / "restored.py"
    path.write_text("old = 1\n")
    old = time.time_ns() - 10**12  # settled: the read is trusted and kept
    os.utime(path, ns=(old, old))
    cache = FileCache(max_bytes=1024 * 1024)
    first = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
    assert isinstance(first, CachedFile) and cache.get(path) is first
    path.write_text("new = 'a longer content'\n")
    os.utime(path, ns=(old, old))  # the same mtime as the cached read, another size
    assert os.stat(path).st_mtime_ns == first.mtime_ns
    assert cache.get(path) is None
    got = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
    assert isinstance(got, CachedFile) and got.data == b"new = 'a longer content'\n"
    assert cache.stats()["stale"] == 1


async def test_a_same_size_edit_with_an_old_mtime_is_not_served_stale(root: Path) -> None:
    """A checkout or ``tar -x`` writes same-size content with an old mtime: only the mtime tells
    the versions apart, so revalidating by size alone is not enough either."""
    path = root / "same-size.py"
    old = time.time_ns() - 10**12
    path.write_text("value = 1\n")
    os.utime(path, ns=(old, old))
    cache = FileCache(max_bytes=1024 * 1024)
    first = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
    assert isinstance(first, CachedFile) and cache.get(path) is first
    path.write_text("value = 2\n")
    os.utime(path, ns=(old + 10**9, old + 10**9))  # still old enough to be trusted once read
    assert os.stat(path).st_size == first.size
    assert cache.get(path) is None
    got = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
    assert isinstance(got, CachedFile) and got.data == b"value = 2\n"


async def test_a_racy_read_is_never_served_and_a_settled_one_is(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "hot.txt"
    path.write_text("one\n")
    cache = FileCache(max_bytes=1024 * 1024)
    # The write and the read must fall in one racy window (20 ms): on a loaded machine the
    # test can be descheduled longer than that between the two, so the window is widened.
    with monkeypatch.context() as m:
        m.setattr(loader_module, "_racy_window_ns", lambda mtime_ns: 60_000_000_000)
        got = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
    assert isinstance(got, CachedFile) and got.racy
    assert cache.get(path) is None  # not kept: a same-size write in the same tick would hide
    settle()
    await cache.read_many([path], max_file_bytes=MAX_FILE)
    assert cache.get(path) is not None


async def test_changed_deleted_and_too_large_entries(root: Path) -> None:
    a, b = root / "a.txt", root / "b.txt"
    a.write_text("a" * 100)
    b.write_text("b" * 100)
    settle()
    cache = FileCache(max_bytes=1024 * 1024)
    await cache.read_many([a, b], max_file_bytes=MAX_FILE)
    b.unlink()
    assert cache.get(b) is None
    assert (await cache.read_many([b], max_file_bytes=MAX_FILE))[b] == "missing"
    # a lower limit applies to what is already cached
    assert (await cache.read_many([a], max_file_bytes=50))[a] == "too_large"
    assert cache.stats()["stale"] == 1


async def test_invalidate_and_clear(root: Path) -> None:
    paths = [root / f"{i}.txt" for i in range(5)]
    for p in paths:
        p.write_text("x")
    settle()
    cache = FileCache(max_bytes=1024 * 1024)
    await cache.read_many(paths, max_file_bytes=MAX_FILE)
    assert cache.invalidate([paths[0], paths[1], root / "unknown"]) == 2
    assert cache.stats()["entries"] == 3
    assert cache.clear() == 3
    stats = cache.stats()
    assert (stats["entries"], stats["bytes"], stats["evictions"]) == (0, 0, 0)
    assert stats["misses"] == 5  # counters survive a clear


def test_an_entry_bigger_than_the_budget_is_not_kept(root: Path) -> None:
    cache = FileCache(max_bytes=100)
    item = CachedFile(data=b"x" * 200, mtime_ns=1, size=200, hash=0)
    cache.put(root / "big", item)
    assert cache.stats()["entries"] == 0
    with pytest.raises(ValueError):
        FileCache(max_bytes=-1)
    with pytest.raises(ValueError):
        FileCache(max_bytes=10, workers=0)


async def test_resident_memory_follows_the_byte_budget(root: Path) -> None:
    """RSS stays within the cache budget, even for emoji text (docs/performance.md)."""
    budget = 16 * 1024 * 1024
    text = ("😀 emoji line with 中文 and é\n" * 6000).encode()  # about 200 KB per file
    paths = []
    for i in range(48 * 1024 * 1024 // len(text)):
        p = root / f"e{i}.txt"
        p.write_bytes(text)
        paths.append(p)
    settle()
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    cache = FileCache(max_bytes=budget)
    for start in range(0, len(paths), 20):
        await cache.read_many(paths[start : start + 20], max_file_bytes=MAX_FILE)
    gc.collect()
    grown = proc.memory_info().rss - before
    stats = cache.stats()
    assert stats["bytes"] <= budget
    assert stats["evictions"] > 0
    assert grown < budget * 1.5 + 8 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB"


async def test_io_figures_count_what_was_loaded(root: Path) -> None:
    paths = []
    for i in range(40):
        p = root / f"f{i}.txt"
        p.write_text("é" * 100 + str(i))  # non-ASCII: bytes, not characters, are counted
        paths.append(p)
    (root / "bin.dat").write_bytes(b"\x00\x01" * 10)
    cache = FileCache(max_bytes=1024 * 1024)
    await cache.read_many([*paths, root / "bin.dat", root / "missing"], max_file_bytes=MAX_FILE)
    io = cache.stats()["io"]
    assert io["loads"] == 1
    assert io["files"] == 42
    assert io["files_loaded"] == 40
    assert io["bytes"] == sum(len(p.read_bytes()) for p in paths)
    assert io["max_workers"] >= 1
    assert sum(io["by_strategy"].values()) == 1
    assert io["load_ms"]["count"] == 1 and io["last"]["files"] == 42
    settle()
    await cache.read_many(paths, max_file_bytes=MAX_FILE)  # all from memory: no new load
    assert cache.stats()["io"]["loads"] in (1, 2)  # racy first reads are read again once
    settle()
    await cache.read_many(paths, max_file_bytes=MAX_FILE)
    loads = cache.stats()["io"]["loads"]
    await cache.read_many(paths, max_file_bytes=MAX_FILE)
    assert cache.stats()["io"]["loads"] == loads


async def test_trusting_the_watcher_alone_would_serve_stale_reads(root: Path) -> None:
    """Why every hit is revalidated: without the stat check, a write not yet reported is missed."""
    path = root / "edited.py"
    trusting = FileCache(max_bytes=1024 * 1024, revalidate=False)
    checking = FileCache(max_bytes=1024 * 1024)
    base = time.time_ns() - 10**12
    stale = {"trusting": 0, "checking": 0}
    for i in range(20):
        path.write_text(f"version {i}\n" * (1 + i % 3))
        os.utime(path, ns=(base + i * 10**9, base + i * 10**9))  # settled: trusted once read
        for name, cache in (("trusting", trusting), ("checking", checking)):
            got = (await cache.read_many([path], max_file_bytes=MAX_FILE))[path]
            assert isinstance(got, CachedFile)
            stale[name] += got.data != path.read_bytes()
    assert stale["checking"] == 0
    assert stale["trusting"] == 19  # every write after the first, until someone invalidates


async def test_warming_loads_the_most_wanted_files_within_a_limit_and_yields(root: Path) -> None:
    old = time.time_ns() - 10**11
    paths = []
    for i in range(600):
        p = root / f"w{i:03d}.txt"
        p.write_text(f"{i:03d}" + "x" * 997)  # 1,000 bytes each
        os.utime(p, ns=(old, old))
        paths.append(p)
    (root / "bin.dat").write_bytes(b"\x00" * 100)
    cache = FileCache(max_bytes=10 << 20)
    assert cache.get(paths[0]) is None
    ticks = 0
    stop = False

    async def other_requests() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_requests())
    loaded = await cache.warm(
        [*paths, root / "bin.dat"], max_file_bytes=MAX_FILE, max_bytes=300_000, batch=100
    )
    stop = True
    await other
    assert loaded == 300  # three batches of 100 reached the limit
    assert ticks >= 3  # the loop ran other work between batches
    assert all(cache.get(p) is not None for p in paths[:300])
    assert cache.stats()["misses"] == 1  # only the lookup above: warming is not a lookup
    assert all(cache.get(p) is None for p in paths[300:])
    again = await cache.warm(paths[:300], max_file_bytes=MAX_FILE, max_bytes=10**9)
    assert again == 0  # already cached: nothing read


async def test_kept_entries_are_revalidated_all_or_nothing(root: Path) -> None:
    """``still_holds``: what the builder's reuse relies on; counts hits only when all hold."""
    paths = []
    for i in range(3):
        p = root / f"k{i}.txt"
        p.write_text(f"kept {i}\n")
        paths.append(p)
    settle()
    cache = FileCache(max_bytes=3 * (ENTRY_OVERHEAD_BYTES + 16))
    got = await cache.read_many(paths, max_file_bytes=MAX_FILE)
    kept = [(p, v) for p, v in got.items() if isinstance(v, CachedFile)]
    assert len(kept) == 3 and cache.stats()["hits"] == 0
    assert cache.still_holds(kept)
    assert cache.stats()["hits"] == 3
    # the refresh is a real LRU touch: k0 is now the most recent, so a newcomer evicts k1
    assert cache.still_holds(kept[:1])
    extra = root / "extra.txt"
    extra.write_text("extra\n")
    settle()
    await cache.read_many([extra], max_file_bytes=MAX_FILE)
    assert cache.get(paths[0]) is not None and cache.get(paths[1]) is None
    hits = cache.stats()["hits"]
    # one changed file: no, and nothing counted for the ones checked before it
    paths[2].write_text("kept 2 changed\n")
    assert not cache.still_holds([kept[0], kept[2]])
    assert cache.stats()["hits"] == hits
    # an entry that is no longer the cache's own (cleared) is not held either
    cache.clear()
    assert not cache.still_holds(kept[:1])

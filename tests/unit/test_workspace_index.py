"""The workspace index over real trees: what the walk keeps, leaves out and why, and updates."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agentls.errors import InvalidArguments
from agentls.workspace import index as index_module
from agentls.workspace.index import LARGE_BATCH, WorkspaceIndex
from agentls.workspace.roots import WorkspaceRoots

MAX = 4096


def write(root: Path, rel: str, text: str | bytes = "x\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    base = Path(os.path.realpath(tmp_path))
    root = base / "proj"
    write(root, ".gitignore", "*.log\nnode_modules/\nbuild/\n")
    write(root, "src/.gitignore", "gen/\n")
    write(root, ".agentlsignore", "docs/private/\n")
    write(root, "src/app.py", "print('app')\n")
    write(root, "src/util/helpers.py", "def f(): ...\n")
    write(root, "src/vendor/lib.py", "v = 1\n")
    write(root, "src/gen/out.py", "generated\n")
    write(root, "README.md", "# proj\n")
    write(root, "docs/guide.md", "guide\n")
    write(root, "docs/private/plan.md", "plan\n")
    write(root, "debug.log", "log\n")
    write(root, "node_modules/pkg/index.js", "module.exports = 1\n")
    write(root, "build/out.js", "x\n")
    write(root, ".env", "API_KEY=sk-canary\n")
    write(root, "certs/server.pem", "-----BEGIN PRIVATE KEY-----\n")
    write(root, ".ssh/id_ed25519", "key\n")
    write(root, "data/huge.csv", "y" * (MAX + 1))
    write(root, ".git/HEAD", "ref: refs/heads/main\n")
    outside = write(base, "outside/secret.txt", "outside\n")
    (root / "escape.txt").symlink_to(outside)
    (root / "rootlink").symlink_to("/")
    (root / "alias.py").symlink_to(root / "src" / "app.py")
    os.mkfifo(root / "src" / "pipe")
    return root


async def scanned(ws: Path, *folders: Path) -> WorkspaceIndex:
    idx = WorkspaceIndex(WorkspaceRoots([ws, *folders]), max_file_bytes=MAX)
    assert idx.state == "empty"
    await idx.scan()
    assert idx.state == "ready"
    return idx


def rels(idx: WorkspaceIndex, folder: Path, *patterns: str) -> set[str]:
    return {e.rel for e in idx.match(folder, patterns or ("**",))[0]}


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_walk_keeps_usable_files_and_records_why_others_are_left_out(ws: Path) -> None:
    idx = await scanned(ws)
    assert rels(idx, ws) == {
        ".gitignore",
        ".agentlsignore",
        "src/.gitignore",
        "src/app.py",
        "src/util/helpers.py",
        "src/vendor/lib.py",
        "README.md",
        "docs/guide.md",
    }
    excluded = dict(idx.match(ws, ["**"])[1])
    assert excluded == {
        ws / "debug.log": "gitignored",
        ws / ".env": "secret",
        ws / "certs" / "server.pem": "secret",
        ws / "data" / "huge.csv": "too_large",
        ws / "escape.txt": "outside_workspace",
        ws / "rootlink": "outside_workspace",
        ws / "src" / "pipe": "not_a_file",
    }
    entry = idx.entry(ws / "src" / "app.py")
    assert entry is not None
    assert (entry.folder, entry.rel, entry.size) == (ws, "src/app.py", len("print('app')\n"))
    assert entry.mtime_ns == os.stat(ws / "src" / "app.py").st_mtime_ns
    assert idx.known_size(ws / "data" / "huge.csv") == MAX + 1
    stats = idx.stats()
    assert stats["state"] == "ready" and stats["files"] == 8 and stats["folders"] == 1
    assert stats["bytes"] == sum(e.size for e in idx.match(ws, ["**"])[0])
    # excluded: 7 files + node_modules, build, src/gen, docs/private, .ssh directories
    assert stats["excluded"] == 12


async def test_ignored_and_secret_directories_are_not_entered(ws: Path, monkeypatch) -> None:
    listed: list[str] = []
    real_scandir = os.scandir

    def spying_scandir(path):  # type: ignore[no-untyped-def]
        listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(index_module.os, "scandir", spying_scandir)
    await scanned(ws)
    entered = {Path(p).relative_to(ws).as_posix() for p in listed}
    assert "src" in entered and "docs" in entered
    for never in (
        "node_modules",
        "node_modules/pkg",
        "build",
        ".ssh",
        ".git",
        "src/gen",
        "docs/private",
        "rootlink",
    ):
        assert never not in entered


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("src/app.py", None),
        ("src/new_after_scan.py", "missing"),
        (".env", "secret"),
        (".ssh/id_ed25519", "secret"),
        ("node_modules/pkg/index.js", "gitignored"),
        ("src/gen/out.py", "gitignored"),
        ("docs/private/plan.md", "agentlsignored"),
        ("data/huge.csv", "too_large"),
        ("src", "not_a_file"),
        ("src/pipe", "not_a_file"),
        (".git/HEAD", "gitignored"),
    ],
)
async def test_exclusion_of_one_path(ws: Path, rel: str, expected: str | None) -> None:
    idx = await scanned(ws)
    assert idx.exclusion(ws / rel) == expected
    # the same verdicts before any scan, from the ancestors' ignore files alone
    fresh = WorkspaceIndex(WorkspaceRoots([ws]), max_file_bytes=MAX)
    assert fresh.exclusion(ws / rel) == expected


async def test_exclusion_of_paths_the_walk_never_saw(ws: Path, tmp_path: Path) -> None:
    idx = await scanned(ws)
    write(ws, "src/late.py", "late\n")
    assert idx.exclusion(ws / "src" / "late.py") is None
    assert idx.exclusion(Path("/etc/passwd")) == "outside_workspace"
    assert idx.exclusion(ws / "escape.txt") == "outside_workspace"  # link resolved, judged
    assert idx.exclusion(ws) == "not_a_file"


async def test_match_globs(ws: Path) -> None:
    idx = await scanned(ws)
    assert rels(idx, ws, "src/**/*.py", "!src/vendor/**") == {"src/app.py", "src/util/helpers.py"}
    assert rels(idx, ws, "*.md") == {"README.md", "docs/guide.md"}  # no slash: any depth
    assert rels(idx, ws, "/*.md") == {"README.md"}
    assert rels(idx, ws, "src/**", "!src/vendor/**", "src/vendor/lib.py") == {
        "src/.gitignore",
        "src/app.py",
        "src/util/helpers.py",
        "src/vendor/lib.py",
    }
    assert idx.match(ws, []) == ([], [])
    assert idx.match(ws, ["!**"]) == ([], [])
    # excluded files are reported only when the positive patterns select them
    assert idx.match(ws, ["*.py"])[1] == []
    assert sorted(idx.match(ws, ["*.log", "certs/*"])[1]) == [
        (ws / "certs" / "server.pem", "secret"),
        (ws / "debug.log", "gitignored"),
    ]
    with pytest.raises(InvalidArguments) as info:
        idx.match(ws, ["src/**", "\\"])
    assert info.value.field == "context"
    # an unknown folder has nothing
    assert idx.match(ws / "src", ["**"]) == ([], [])


async def test_files_in_an_excluded_directory_are_listed_only_when_named(ws: Path) -> None:
    idx = await scanned(ws)
    write(ws, "build/sub/deep.js", "x\n")
    assert sorted(idx.match(ws, ["build/**"])[1]) == [
        (ws / "build" / "out.js", "gitignored"),
        (ws / "build" / "sub" / "deep.js", "gitignored"),
    ]
    assert idx.match(ws, ["build/sub/*.js"])[1] == [
        (ws / "build" / "sub" / "deep.js", "gitignored")
    ]
    assert idx.match(ws, ["docs/private/plan.md"])[1] == [
        (ws / "docs" / "private" / "plan.md", "agentlsignored")
    ]
    assert idx.match(ws, [".ssh/*"])[1] == [(ws / ".ssh" / "id_ed25519", "secret")]
    # globs that do not name the directory stay out of it
    assert idx.match(ws, ["**/*.js"])[1] == []
    assert idx.match(ws, ["src/**/*.py"])[1] == []
    assert idx.match(ws, ["build/**", "!build/sub/**"])[1] == [
        (ws / "build" / "out.js", "gitignored")
    ]


async def test_listing_an_excluded_directory_is_bounded(ws: Path) -> None:
    for i in range(index_module.MAX_LISTED_IN_EXCLUDED_DIRS + 200):
        write(ws, f"node_modules/many/f{i}.js", "")
    idx = await scanned(ws)
    listed = idx.match(ws, ["node_modules/**"])[1]
    assert len(listed) == index_module.MAX_LISTED_IN_EXCLUDED_DIRS
    assert {reason for _, reason in listed} == {"gitignored"}


async def test_note_changes_creates_modifies_and_deletes(ws: Path) -> None:
    idx = await scanned(ws)
    new = write(ws, "src/new.py", "a = 1\n")
    idx.note_changes({new})
    assert "src/new.py" in rels(idx, ws, "src/*.py")  # the cached glob result is refreshed
    write(ws, "src/new.py", "a = 1000000\n")
    idx.note_changes([new])
    entry = idx.entry(new)
    assert entry is not None and entry.size == len("a = 1000000\n")
    write(ws, "src/new.py", "z" * (MAX + 10))
    idx.note_changes([new])
    assert idx.entry(new) is None and idx.exclusion(new) == "too_large"
    new.unlink()
    idx.note_changes([new])
    assert idx.entry(new) is None and idx.known_size(new) is None
    secret = write(ws, "src/.env.local", "TOKEN=1\n")
    idx.note_changes([secret])
    assert dict(idx.match(ws, ["src/*"])[1])[secret] == "secret"
    # events outside the workspace or inside .git are ignored
    idx.note_changes([Path("/etc/hosts"), ws / ".git" / "index"])
    assert idx.entry(ws / ".git" / "index") is None


async def test_a_new_or_removed_directory(ws: Path) -> None:
    idx = await scanned(ws)
    write(ws, "pkg/a.py", "a\n")
    write(ws, "pkg/sub/b.py", "b\n")
    idx.note_changes([ws / "pkg"])  # a directory moved in arrives as one event
    await eventually(lambda: {"pkg/a.py", "pkg/sub/b.py"} <= rels(idx, ws))
    for p in (ws / "pkg" / "sub" / "b.py", ws / "pkg" / "a.py"):
        p.unlink()
    (ws / "pkg" / "sub").rmdir()
    (ws / "pkg").rmdir()
    idx.note_changes([ws / "pkg"])
    assert not any(r.startswith("pkg/") for r in rels(idx, ws))
    # a new directory that is ignored is recorded, not walked
    write(ws, "build2/x.js", "x\n")
    write(ws, ".gitignore", "*.log\nnode_modules/\nbuild/\nbuild2/\n")
    idx.note_changes([ws / ".gitignore"])
    await eventually(lambda: idx.exclusion(ws / "build2" / "x.js") == "gitignored")
    await eventually(lambda: "build2/x.js" not in rels(idx, ws))


async def test_an_ignore_file_change_rewalks_the_folder(ws: Path) -> None:
    idx = await scanned(ws)
    assert "docs/guide.md" in rels(idx, ws)
    write(ws, ".agentlsignore", "docs/\n")
    idx.note_changes([ws / ".agentlsignore"])
    await eventually(lambda: "docs/guide.md" not in rels(idx, ws))
    assert idx.exclusion(ws / "docs" / "guide.md") == "agentlsignored"
    write(ws, "src/.gitignore", "")  # un-ignore src/gen
    idx.note_changes([ws / "src" / ".gitignore"])
    await eventually(lambda: "src/gen/out.py" in rels(idx, ws))


async def test_a_large_batch_is_answered_with_a_walk(ws: Path) -> None:
    idx = await scanned(ws)
    paths = [write(ws, f"bulk/f{i}.txt", f"{i}\n") for i in range(LARGE_BATCH + 50)]
    idx.note_changes(paths)
    await eventually(lambda: len([r for r in rels(idx, ws) if r.startswith("bulk/")]) == len(paths))


async def test_a_change_noted_during_a_walk_is_not_lost(ws: Path, monkeypatch) -> None:
    walked = threading.Event()
    release = threading.Event()
    real_walk = index_module._walk_folders

    def slow_walk(*args):  # type: ignore[no-untyped-def]
        result = real_walk(*args)  # the walk sees the disk as it was...
        walked.set()
        release.wait(5)  # ...and is held before its result is swapped in
        return result

    monkeypatch.setattr(index_module, "_walk_folders", slow_walk)
    idx = WorkspaceIndex(WorkspaceRoots([ws]), max_file_bytes=MAX)
    scan = asyncio.create_task(idx.scan())
    await asyncio.to_thread(walked.wait, 5)
    assert idx.state == "scanning"
    late = write(ws, "src/late.py", "late\n")
    (ws / "README.md").unlink()
    idx.note_changes([late, ws / "README.md"])
    release.set()
    await scan
    assert idx.entry(late) is not None
    assert idx.entry(ws / "README.md") is None


async def test_wait_ready_and_rescan_after_folder_change(ws: Path, tmp_path: Path) -> None:
    roots = WorkspaceRoots([ws])
    idx = WorkspaceIndex(roots, max_file_bytes=MAX)
    assert await idx.wait_ready(timeout=0.05) is False
    waiter = asyncio.create_task(idx.wait_ready())
    await idx.scan()
    assert await waiter is True
    other = Path(os.path.realpath(tmp_path)) / "other"
    write(other, "lib.py", "lib\n")
    roots.set_folders([other])
    await idx.scan()
    assert idx.stats()["folders"] == 1
    assert idx.entry(ws / "src" / "app.py") is None
    assert idx.entry(other / "lib.py") is not None
    await idx.close()


async def test_nested_workspace_folder_is_indexed_once_under_itself(ws: Path) -> None:
    nested = ws / "src"
    idx = await scanned(ws, nested)
    assert not any(r.startswith("src/") for r in rels(idx, ws))
    assert "app.py" in rels(idx, nested)
    entry = idx.entry(nested / "app.py")
    assert entry is not None and entry.folder == nested


async def test_an_unreadable_or_vanished_folder_does_not_break_the_scan(tmp_path: Path) -> None:
    gone = Path(os.path.realpath(tmp_path)) / "gone"
    idx = WorkspaceIndex(WorkspaceRoots([gone]), max_file_bytes=MAX)
    await idx.scan()
    assert idx.stats() == {"state": "ready", "files": 0, "bytes": 0, "excluded": 0, "folders": 1}


async def test_usable_files_come_newest_first_across_folders(tmp_path: Path) -> None:
    a = Path(os.path.realpath(tmp_path)) / "a"
    b = Path(os.path.realpath(tmp_path)) / "b"
    base = 1_700_000_000 * 10**9
    for i, (root, rel) in enumerate([(a, "old.py"), (b, "mid.py"), (a, "new.py"), (b, ".env")]):
        path = write(root, rel)
        os.utime(path, ns=(base + i * 10**9, base + i * 10**9))
    index = WorkspaceIndex(WorkspaceRoots([a, b]), max_file_bytes=1 << 20)
    await index.scan()
    assert [e.rel for e in index.usable()] == ["new.py", "mid.py", "old.py"]  # no secret file

"""The safe reader on real files: every hostile kind of path is a reason, never a read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentls.workspace.reader import RawFile, judge, read_regular

CAP = 4096


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    (root / ".agents").mkdir(parents=True)
    (root / "notes.md").write_text("inside\n")
    (root / ".env").write_text("TOKEN=x\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = Path(os.path.realpath(tmp_path)) / "outside.txt"
    path.write_text("outside\n")
    return path


def _read(path: Path, ws: Path, follow: bool = True) -> RawFile | str:
    return read_regular(path, max_bytes=CAP, within=(ws,), follow_symlink=follow)


def test_a_link_inside_the_workspace_is_read_by_its_target(ws: Path) -> None:
    link = ws / ".agents" / "ok.md"
    link.symlink_to("../notes.md")
    got = _read(link, ws)
    assert isinstance(got, RawFile)
    assert got.data == b"inside\n"
    assert _read(link, ws, follow=False) == "not_a_file"  # a realpath was promised


def test_links_out_of_the_workspace_or_to_secrets_are_refused(ws: Path, outside: Path) -> None:
    cases = {
        "out.md": outside,
        "zero.md": Path("/dev/zero"),
        "stdin.md": Path("/dev/stdin"),
        "env.md": ws / ".env",
        "key.md": ws / "deploy.pem",
    }
    (ws / "deploy.pem").write_text("key\n")
    got = {}
    for name, target in cases.items():
        (ws / ".agents" / name).symlink_to(target)
        got[name] = _read(ws / ".agents" / name, ws)
    assert got == {
        "out.md": "outside_workspace",
        "zero.md": "outside_workspace",
        "stdin.md": "outside_workspace",
        "env.md": "secret",
        "key.md": "secret",
    }
    # The name counts too: a secret's name pointing at an ordinary file is still refused.
    (ws / "creds.pem").symlink_to(ws / "notes.md")
    assert judge(ws / "creds.pem", (ws,)) == "secret"
    assert _read(outside, ws, follow=False) == "outside_workspace"


def test_special_and_huge_files_are_not_read(ws: Path) -> None:
    os.mkfifo(ws / "pipe.md")
    (ws / "big.md").write_bytes(b"x" * (CAP + 1))
    (ws / "exact.md").write_bytes(b"x" * CAP)
    with open(ws / "sparse.md", "wb") as f:
        f.truncate(400 * 1024 * 1024)
    got = {p: _read(ws / p, ws) for p in ("pipe.md", "big.md", "sparse.md", "nothing.md")}
    assert got == {
        "pipe.md": "not_a_file",
        "big.md": "too_large",
        "sparse.md": "too_large",
        "nothing.md": "missing",
    }
    exact = _read(ws / "exact.md", ws)
    assert isinstance(exact, RawFile) and len(exact.data) == CAP
    assert _read(ws, ws) == "not_a_file"


def test_a_directory_swapped_for_a_link_out_is_refused(ws: Path, tmp_path: Path) -> None:
    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("inside\n")
    assert isinstance(_read(ws / "src" / "a.py", ws, follow=False), RawFile)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.py").write_text("stolen\n")
    (ws / "src").rename(ws / "src-real")
    (ws / "src").symlink_to(elsewhere)
    assert _read(ws / "src" / "a.py", ws, follow=False) == "unreadable"
    assert _read(ws / "src" / "a.py", ws, follow=True) == "outside_workspace"


def test_nested_folders_judge_by_the_deepest(ws: Path) -> None:
    inner = ws / "inner"
    inner.mkdir()
    (inner / "x.txt").write_text("x\n")
    assert judge(inner / "x.txt", (ws, inner)) is None
    assert judge(ws.parent / "ws-other" / "x.txt", (ws,)) == "outside_workspace"

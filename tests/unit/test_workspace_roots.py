"""Workspace folders and containment: every escape route a path or URI can take is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentls.errors import InvalidArguments, OutsideWorkspace
from agentls.workspace.roots import WorkspaceRoots


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path)) / "app"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print(1)\n")
    return root


def test_relative_absolute_and_file_uri_resolve_to_the_same_realpath(ws: Path) -> None:
    roots = WorkspaceRoots([ws])
    target = ws / "src" / "main.py"
    assert roots.resolve("src/main.py") == target
    assert roots.resolve(str(target)) == target
    assert roots.resolve(target) == target
    assert roots.resolve(target.as_uri()) == target
    assert roots.resolve(f"file://localhost{target}") == target
    # a file that does not exist yet is still a path inside
    assert roots.resolve("src/new.py") == ws / "src" / "new.py"


def test_percent_encoded_uri_is_decoded(ws: Path) -> None:
    (ws / "my file#1.txt").write_text("x")
    roots = WorkspaceRoots([ws])
    uri = (ws / "my file#1.txt").as_uri()
    assert "%20" in uri and "%231" in uri
    assert roots.resolve(uri) == ws / "my file#1.txt"


@pytest.mark.parametrize(
    "ref",
    [
        "../outside.txt",
        "src/../../outside.txt",
        "/etc/passwd",
        "file:///etc/passwd",
        "/proc/self/root/etc/passwd",
        "src/%2e%2e/%2e%2e/etc/passwd",  # a plain path keeps "%2e" literally: inside, allowed
    ],
)
def test_paths_that_leave_the_workspace_are_refused(ws: Path, ref: str) -> None:
    roots = WorkspaceRoots([ws])
    if ref.startswith("src/%2e"):
        assert roots.resolve(ref) == ws / "src" / "%2e%2e" / "%2e%2e" / "etc" / "passwd"
        return
    with pytest.raises(OutsideWorkspace) as info:
        roots.resolve(ref)
    assert "outside the workspace" in str(info.value)


def test_percent_encoded_traversal_in_a_uri_is_refused(ws: Path) -> None:
    roots = WorkspaceRoots([ws])
    with pytest.raises(OutsideWorkspace):
        roots.resolve(f"file://{ws}/src/%2e%2e/%2e%2e/%2e%2e/etc/passwd")


def test_a_sibling_with_the_folder_name_as_prefix_is_outside(ws: Path) -> None:
    sibling = ws.parent / "app-secrets"
    sibling.mkdir()
    (sibling / "token.txt").write_text("s3cr3t")
    roots = WorkspaceRoots([ws])
    with pytest.raises(OutsideWorkspace):
        roots.resolve(str(sibling / "token.txt"))
    assert roots.folder_of(sibling / "token.txt") is None


def test_symlinks_are_judged_by_their_target(ws: Path, tmp_path: Path) -> None:
    outside = Path(os.path.realpath(tmp_path)) / "home"
    (outside / ".ssh").mkdir(parents=True)
    (outside / ".ssh" / "id_rsa").write_text("-----BEGIN KEY-----")
    (ws / "key").symlink_to(outside / ".ssh" / "id_rsa")
    (ws / "rootdir").symlink_to("/")
    (ws / "alias.py").symlink_to(ws / "src" / "main.py")
    roots = WorkspaceRoots([ws])
    with pytest.raises(OutsideWorkspace):
        roots.resolve("key")
    with pytest.raises(OutsideWorkspace):
        roots.resolve("rootdir/etc/passwd")
    with pytest.raises(OutsideWorkspace):
        roots.resolve((ws / "key").as_uri())
    # a link that stays inside resolves to its target
    assert roots.resolve("alias.py") == ws / "src" / "main.py"


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("", "empty"),
        ("src/a\x00b.py", "NUL"),
        ("file:///tmp/a%00b", "NUL"),
        ("http://example.com/x.py", "only file: URIs"),
        ("untitled:Untitled-1", "only file: URIs"),
        ("file://fileserver/share/x.py", "another host"),
        ("file://", "names no file"),
    ],
)
def test_bad_references_are_invalid_arguments(ws: Path, ref: str, needle: str) -> None:
    roots = WorkspaceRoots([ws])
    with pytest.raises(InvalidArguments) as info:
        roots.resolve(ref)
    assert info.value.field == "uri"
    assert needle in str(info.value)


def test_relative_path_without_folders_is_outside() -> None:
    roots = WorkspaceRoots([])
    with pytest.raises(OutsideWorkspace):
        roots.resolve("a.py")


def test_folders_are_realpaths_in_order_without_duplicates(ws: Path, tmp_path: Path) -> None:
    other = Path(os.path.realpath(tmp_path)) / "lib"
    other.mkdir()
    link = Path(os.path.realpath(tmp_path)) / "app-link"
    link.symlink_to(ws)
    roots = WorkspaceRoots([link, other, ws, other / "."])
    assert roots.folders == (ws, other)
    # a path spelled through the symlinked folder is inside
    assert roots.resolve(str(link / "src" / "main.py")) == ws / "src" / "main.py"
    roots.set_folders([other])
    assert roots.folders == (other,)
    with pytest.raises(OutsideWorkspace):
        roots.resolve(str(ws / "src" / "main.py"))


def test_nested_folders_pick_the_deepest_and_display_by_folder(ws: Path, tmp_path: Path) -> None:
    lib = Path(os.path.realpath(tmp_path)) / "lib"
    lib.mkdir()
    nested = ws / "src"
    roots = WorkspaceRoots([ws])
    assert roots.display(ws / "src" / "main.py") == "src/main.py"
    assert roots.display(Path("/etc/passwd")) == "/etc/passwd"
    roots = WorkspaceRoots([ws, lib, nested])
    assert roots.folder_of(ws / "src" / "main.py") == nested
    assert roots.folder_of(ws / "README.md") == ws
    assert roots.display(ws / "src" / "main.py") == "src/main.py"  # folder "src", rel "main.py"
    assert roots.display(lib / "x" / "y.py") == "lib/x/y.py"
    assert roots.display(ws / "README.md") == "app/README.md"
    assert roots.display_rel(lib, "x/y.py") == roots.display(lib / "x" / "y.py")

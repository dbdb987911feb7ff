"""The agent registry over real folders: loading, cross-file rules, reloads, and hostile files."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from agentls.agents import registry as registry_module
from agentls.agents.registry import AgentRegistry, scan_folder
from agentls.errors import InvalidAgent, UnknownAgent

GOOD = "---\nname: {name}\ndescription: {name} agent\n---\nYou are {name}.\n"


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return Path(os.path.realpath(root))


def names(reg: AgentRegistry) -> list[str]:
    return [e.name for e in reg.agents()]


def test_files_are_found_only_in_the_four_locations(folder: Path) -> None:
    write(folder, ".agents/reviewer.md", GOOD.format(name="reviewer"))
    write(folder, ".agents/team/planner.md", GOOD.format(name="planner"))
    write(folder, ".claude/agents/tester.md", GOOD.format(name="tester"))
    write(folder, ".claude/agents/nested/deep.md", GOOD.format(name="deep"))
    write(folder, ".github/agents/docs.agent.md", GOOD.format(name="docs"))
    write(folder, ".github/agents/plain.md", GOOD.format(name="plain"))
    write(folder, ".github/prompts/fix.prompt.md", "---\ndescription: Fix\n---\nFix it.\n")
    # none of these are definitions
    write(folder, ".agents/notes.txt", "x")
    write(folder, ".agents/.draft.md", GOOD.format(name="draft"))
    write(folder, ".agents/.hidden/secret.md", GOOD.format(name="secret"))
    write(folder, ".claude/agents/.cache/hidden.md", GOOD.format(name="hidden"))
    write(folder, ".claude/agents/README.md", GOOD.format(name="readme-in-agents"))
    write(folder, ".claude/agents/tools/CLAUDE.md", GOOD.format(name="claude-md"))
    write(folder, ".agents/AGENTS.md", GOOD.format(name="agents-md"))
    write(folder, ".claude/other.md", GOOD.format(name="other"))
    write(folder, ".github/agents/deeper/nested.agent.md", GOOD.format(name="nested"))
    write(folder, ".github/prompts/plain.md", GOOD.format(name="plain-prompt"))
    write(folder, "docs/.agents/elsewhere.md", GOOD.format(name="elsewhere"))
    write(folder, "README.md", GOOD.format(name="readme"))

    reg = AgentRegistry()
    changed = reg.load_folder(folder)
    assert changed == set()  # nothing has problems
    assert names(reg) == ["deep", "docs", "fix", "plain", "planner", "reviewer", "tester"]
    assert reg.files() == sorted(
        [
            folder / ".agents/reviewer.md",
            folder / ".agents/team/planner.md",
            folder / ".claude/agents/tester.md",
            folder / ".claude/agents/nested/deep.md",
            folder / ".github/agents/docs.agent.md",
            folder / ".github/agents/plain.md",
            folder / ".github/prompts/fix.prompt.md",
        ],
        key=str,
    )
    assert reg.get("planner").body == "You are planner.\n"


def test_a_broken_file_next_to_good_ones(folder: Path) -> None:
    write(folder, ".agents/a-good.md", GOOD.format(name="first"))
    broken = write(folder, ".agents/broken.md", "---\nname: broken\ntimeout: soon\n---\nBody\n")
    bad_yaml = write(folder, ".agents/bad-yaml.md", "---\nname: x\ncontext: [\n---\n")
    write(folder, ".agents/z-good.md", GOOD.format(name="last"))

    reg = AgentRegistry()
    changed = reg.load_folder(folder)
    assert changed == {broken, bad_yaml}
    entries = {e.name: e for e in reg.agents()}
    assert set(entries) == {"first", "broken", "bad-yaml", "last"}
    assert entries["first"].valid and entries["last"].valid
    assert not entries["broken"].valid and entries["broken"].definition is None
    (problem,) = reg.problems(broken)
    assert problem.line == 2 and "timeout" in problem.message

    with pytest.raises(InvalidAgent) as info:
        reg.get("broken")
    assert ".agents/broken.md" in info.value.message
    assert "line 3: timeout must be a positive number" in info.value.message
    with pytest.raises(UnknownAgent) as unknown:
        reg.get("nobody")
    assert "first, last" in unknown.value.message
    assert "broken" not in unknown.value.message


def test_duplicate_names_invalidate_the_lexically_later_file(folder: Path) -> None:
    first = write(folder, ".agents/a.md", GOOD.format(name="helper"))
    second = write(folder, ".agents/b.md", "---\ndescription: d\nname: helper\n---\nB\n")
    reg = AgentRegistry()
    assert reg.load_folder(folder) == {second}
    (problem,) = reg.problems(second)
    assert problem.severity == "error" and problem.line == 2 and problem.column == 6
    assert "already named 'helper'" in problem.message and ".agents/a.md" in problem.message
    assert reg.problems(first) == []
    assert reg.get("helper").source == first

    # deleting the winner makes the other one valid, and its diagnostics must be republished
    first.unlink()
    assert reg.update(first, None) == {second}
    assert reg.problems(second) == []
    assert reg.get("helper").source == second


def test_a_yaml_broken_file_does_not_make_a_good_namesake_a_duplicate(folder: Path) -> None:
    write(folder, ".agents/helper.md", "---\nname: other\nmodel: [\n---\n")
    good = write(folder, ".claude/agents/helper.md", GOOD.format(name="helper"))
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert reg.problems(good) == []
    assert reg.get("helper").source == good


def test_unknown_backend_and_missing_default(folder: Path) -> None:
    local = write(folder, ".agents/local.md", "---\nname: local\nbackend: local\n---\nB\n")
    lost = write(folder, ".agents/lost.md", "---\nname: lost\n\nbackend: nowhere\n---\nB\n")
    plain = write(folder, ".agents/plain.md", "Just a prompt.\n")
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert all(e.valid for e in reg.agents())  # backends are unknown until configured

    assert reg.set_backends(["local", "claude"], "local") == {lost}
    (problem,) = reg.problems(lost)
    assert (problem.line, problem.column, problem.end_column) == (3, 9, 16)
    assert "unknown backend 'nowhere'" in problem.message
    assert "claude, local" in problem.message
    with pytest.raises(InvalidAgent, match="unknown backend"):
        reg.get("lost")
    assert reg.get("plain").backend is None

    # no default: agents naming no backend cannot run
    assert reg.set_backends(["local"], None) == {lost, plain}
    (problem,) = reg.problems(plain)
    assert problem.line == 0 and "no backend" in problem.message
    assert reg.problems(local) == []
    # a default that is not configured is named as the reason
    reg.set_backends(["local"], "gone")
    assert "default backend 'gone' is not configured" in reg.problems(plain)[0].message
    # configuring the backend clears everything
    assert reg.set_backends(["local", "nowhere"], "local") == {lost, plain}
    assert all(e.valid for e in reg.agents())


def test_reload_after_edit_and_delete(folder: Path) -> None:
    path = write(folder, ".agents/r.md", GOOD.format(name="reviewer"))
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert reg.get("reviewer").description == "reviewer agent"

    write(folder, ".agents/r.md", "---\nname: reviewer\nmax_files: none\n---\nB\n")
    assert reg.update(path, None) == {path}
    assert not reg.agents()[0].valid

    write(folder, ".agents/r.md", "---\nname: renamed\n---\nNew body\n")
    assert reg.update(path, None) == {path}
    assert names(reg) == ["renamed"]
    assert reg.get("renamed").body == "New body\n"

    path.unlink()
    assert reg.update(path, None) == set()  # it had no problems, so nothing to republish
    assert reg.agents() == [] and reg.files() == []

    created = write(folder, ".github/agents/new.agent.md", "---\nbackend: 5\n---\n")
    assert reg.update(created, None) == {created}
    assert names(reg) == ["new"]
    created.unlink()
    assert reg.update(created, None) == {created}  # its diagnostics must be cleared
    assert reg.problems(created) == []


def test_editor_buffers_win_over_disk_until_closed(folder: Path) -> None:
    path = write(folder, ".agents/r.md", GOOD.format(name="reviewer"))
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert reg.update(path, "---\nname: reviewer\noutput: pdf\n---\n") == {path}
    assert reg.problems(path)[0].line == 2
    # a folder reload (e.g. a rescan) must not lose the unsaved buffer
    reg.load_folder(folder)
    assert reg.problems(path)[0].line == 2
    # closing the buffer goes back to the file on disk
    assert reg.update(path, None) == {path}
    assert reg.problems(path) == [] and reg.get("reviewer").output == "markdown"

    # an unsaved new buffer is an agent too, and vanishes when closed without saving
    unsaved = folder / ".agents/draft.md"
    reg.update(unsaved, "Draft prompt\n")
    assert "draft" in names(reg)
    reg.update(unsaved, None)
    assert "draft" not in names(reg)


def test_paths_that_are_not_definitions_are_ignored(folder: Path) -> None:
    reg = AgentRegistry()
    reg.load_folder(folder)
    other = write(folder, "src/notes.md", "---\nname: [\n---\n")
    assert reg.update(other, "---\nname: [\n---\n") == set()
    assert reg.update(other, None) == set()
    outside = write(folder.parent, "elsewhere/.agents/x.md", "x")
    assert reg.update(outside, None) == set()
    assert reg.agents() == []


def test_removing_or_moving_a_definition_directory_updates_everything(folder: Path) -> None:
    a = write(folder, ".agents/a.md", "---\nmax_files: 0\n---\n")
    write(folder, ".agents/sub/b.md", GOOD.format(name="b"))
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert names(reg) == ["a", "b"]
    # a watcher may report only the directory
    shutil.move(folder / ".agents", folder / "old-agents")
    assert reg.update(folder / ".agents", None) == {a}
    assert reg.agents() == []
    shutil.move(folder / "old-agents", folder / ".agents")
    assert reg.update(folder / ".agents", None) == {a}
    assert names(reg) == ["a", "b"]


def test_remove_folder_forgets_its_files(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other, ".agents/o.md", GOOD.format(name="o"))
    broken = write(folder, ".agents/x.md", "---\n- list\n---\n")
    reg = AgentRegistry()
    reg.load_folder(folder)
    reg.load_folder(other)
    assert names(reg) == ["o", "x"]
    assert reg.remove_folder(folder) == {broken}
    assert names(reg) == ["o"]


def test_nested_workspace_folders_share_a_file_until_both_are_gone(folder: Path) -> None:
    inner = folder / "pkg"
    path = write(inner, ".agents/inner.md", GOOD.format(name="inner"))
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert reg.agents() == []  # pkg/.agents is not a definition location of the outer folder
    reg.load_folder(inner)
    assert names(reg) == ["inner"]
    reg.remove_folder(folder)
    assert names(reg) == ["inner"]
    reg.remove_folder(inner)
    assert reg.agents() == []
    assert reg.problems(path) == []


def test_files_over_the_size_cap_are_refused_not_read(folder: Path) -> None:
    big = write(folder, ".agents/big.md", "---\nname: big\n---\n" + "x" * (1024 * 1024))
    reg = AgentRegistry()
    reg.load_folder(folder)
    (problem,) = reg.problems(big)
    assert "larger than 1024 KiB" in problem.message
    assert names(reg) == ["big"] and not reg.agents()[0].valid
    # the same cap applies to an editor buffer, measured in UTF-8 bytes
    assert reg.update(big, "é" * (600 * 1024)) == set()  # same problem as before
    assert "larger than" in reg.problems(big)[0].message
    reg.update(big, "---\nname: big\n---\nsmall\n")
    assert reg.problems(big) == []


def test_undecodable_bytes_are_a_problem_at_the_bad_byte(folder: Path) -> None:
    path = write(
        folder, ".agents/latin.md", "---\nname: ok\n---\nCaf\xe9 cr\xe8me\n".encode("latin-1")
    )
    write(folder, ".agents/fine.md", GOOD.format(name="fine"))
    reg = AgentRegistry()
    reg.load_folder(folder)
    (problem,) = reg.problems(path)
    assert (problem.line, problem.column) == (3, 3)
    assert "not valid UTF-8 (byte 0xe9)" in problem.message
    assert reg.get("fine").name == "fine"


def test_a_fifo_or_directory_named_like_a_definition_never_hangs(folder: Path) -> None:
    fifo = folder / ".agents/pipe.md"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    (folder / ".agents/dir.md").mkdir()
    write(folder, ".agents/ok.md", GOOD.format(name="ok"))
    reg = AgentRegistry()
    done = threading.Event()
    result: list[set[Path]] = []

    def load() -> None:
        result.append(reg.load_folder(folder))
        done.set()

    threading.Thread(target=load, daemon=True).start()
    assert done.wait(5), "loading hung on a FIFO"
    assert fifo in result[0]
    assert "not a regular file" in reg.problems(fifo)[0].message
    assert reg.get("ok").name == "ok"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_an_unreadable_file_is_a_problem(folder: Path) -> None:
    path = write(folder, ".agents/locked.md", GOOD.format(name="locked"))
    path.chmod(0)
    try:
        reg = AgentRegistry()
        reg.load_folder(folder)
        assert "cannot read this file" in reg.problems(path)[0].message
    finally:
        path.chmod(0o644)


def test_symlinks_out_of_the_folder_are_skipped_and_aliases_count_once(
    folder: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path, "outside/secret.md", GOOD.format(name="outside"))
    (folder / ".agents").mkdir()
    (folder / ".agents/leak.md").symlink_to(secret)
    shared = write(folder, "prompts/shared.md", GOOD.format(name="shared"))
    (folder / ".claude/agents").mkdir(parents=True)
    (folder / ".agents/shared.md").symlink_to(shared)
    (folder / ".claude/agents/shared.md").symlink_to(shared)
    # a symlinked definition directory that points out of the folder is not followed
    write(tmp_path, "linked/.agents/far.md", GOOD.format(name="far"))
    (folder / ".github").mkdir()
    (folder / ".github/agents").symlink_to(tmp_path / "linked/.agents")

    reg = AgentRegistry()
    leak = folder / ".agents/leak.md"
    assert reg.load_folder(folder) == {leak}
    assert names(reg) == ["shared"]
    assert reg.files() == [leak, folder / ".agents/shared.md"]
    # the file link gets information naming it; the folder link is listed for doctor
    (info,) = reg.problems(leak)
    assert info.severity == "information" and ".agents/leak.md" in info.message
    assert "points outside the workspace folder" in info.message
    skipped = [(f, link.path, link.is_dir) for f, link in reg.skipped_links()]
    assert (folder, folder / ".agents/leak.md", False) in skipped
    assert (folder, folder / ".github/agents", True) in skipped
    # an editor event on the second path to the same file is not a second agent
    alias = folder / ".claude/agents/shared.md"
    assert reg.update(alias, None) == set()
    assert reg.update(alias, "---\nname: [\n---\n") == set()
    reg.load_folder(folder)
    assert names(reg) == ["shared"]
    assert reg.problems(alias) == []


def test_scans_can_run_off_the_loop_and_be_applied_later(folder: Path) -> None:
    write(folder, ".agents/a.md", GOOD.format(name="a"))
    result: list[registry_module.FolderScan] = []
    worker = threading.Thread(target=lambda: result.append(scan_folder(folder)))
    worker.start()
    worker.join(5)
    reg = AgentRegistry()
    assert reg.apply_scan(result[0]) == set()
    assert names(reg) == ["a"]


def test_walking_stops_at_the_file_cap(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "MAX_FILES_PER_FOLDER", 5)
    for i in range(12):
        write(folder, f".agents/a{i:02}.md", f"Prompt {i}\n")
    reg = AgentRegistry()
    reg.load_folder(folder)
    assert len(reg.agents()) == 5


def test_entries_serialise_for_the_agent_list(folder: Path) -> None:
    write(
        folder,
        ".agents/r.md",
        "---\nname: r\ndescription: Reviews\nbackend: local\nmodel: m\ncolour: red\n---\nB\n",
    )
    write(folder, ".agents/x.md", "---\nname: x\nmax_files: 0\n---\n")
    reg = AgentRegistry()
    reg.load_folder(folder)
    reg.set_backends(["local"], "local")
    good, bad = reg.agents()
    assert good.to_dict(lambda p: p.relative_to(folder).as_posix()) == {
        "name": "r",
        "description": "Reviews",
        "backend": "local",
        "model": "m",
        "tools": [],
        "tool_groups": [],
        "inputs": [],
        "handoffs": [],
        "format": "agentls",
        "kind": "agent",
        "steps": [],
        "source": ".agents/r.md",
        "valid": True,
        "problems": ["line 6: hint: unknown key 'colour'; agentls keeps it but does not use it"],
    }
    assert bad.to_dict(str)["valid"] is False
    assert bad.to_dict(str)["problems"] == [
        "line 3: max_files must be a positive whole number, not 0"
    ]

"""The findings service: parsing output lines and finding objects, the store, fixes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentls.findings import (
    MAX_FINDINGS_PER_RUN,
    REPORT_FINDING_TOOL,
    Finding,
    FindingCollector,
    FindingError,
    FindingStore,
    Fix,
    locate_fix,
    restore,
)
from agentls.workspace.roots import WorkspaceRoots


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "a.py").write_text("a = 1\n")
    (tmp_path / "outside.py").write_text("x\n")
    return Path(os.path.realpath(ws))


def collector(root: Path) -> FindingCollector:
    return FindingCollector(WorkspaceRoots([root]), root, "lint", "run1")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("src/a.py:3: oops", (2, None, "warning", "oops"), id="no-column"),
        pytest.param("src/a.py:3:7: error: bad", (2, 6, "error", "bad"), id="column-severity"),
        pytest.param("src/a.py:1:1: W291 trailing", (0, 0, "warning", "W291 trailing"), id="ruff"),
        pytest.param("src/a.py:2: note: fyi", (1, None, "information", "fyi"), id="note"),
        pytest.param("src/a.py:2: HINT: lower", (1, None, "hint", "lower"), id="case"),
        pytest.param("  src/a.py:5:2:  warning:  spaced  ", (4, 1, "warning", "spaced"), id="pad"),
    ],
)
def test_compiler_format_lines(root: Path, line: str, expected: tuple[object, ...]) -> None:
    c = collector(root)
    c.read_output(f"prose before\n{line}\nprose after: not a finding\n")
    (f,) = c.findings
    assert (f.line, f.column, f.severity, f.message) == expected
    assert f.path == root / "src" / "a.py"
    assert (f.agent, f.run_id) == ("lint", "run1")
    assert c.dropped == 0


def test_absolute_paths_and_uris_inside_are_kept(root: Path) -> None:
    c = collector(root)
    c.read_output(f"{root}/src/a.py:1: abs\n{(root / 'src/a.py').as_uri()}:2: uri\n")
    assert [f.message for f in c.findings] == ["abs", "uri"]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("../outside.py:1: error: x", id="dotdot"),
        pytest.param("/etc/passwd:1: error: x", id="absolute"),
        pytest.param(".env:1: error: x", id="secret-env"),
        pytest.param("src/id_rsa:1: error: x", id="secret-key"),
        pytest.param(".:1: error: x", id="the-folder-itself"),
    ],
)
def test_paths_outside_or_secret_are_dropped_and_counted(root: Path, line: str) -> None:
    c = collector(root)
    c.read_output(line + "\n")
    assert c.findings == []
    assert c.dropped == 1


def test_symlink_out_of_the_workspace_is_dropped(root: Path) -> None:
    (root / "link.py").symlink_to(root.parent / "outside.py")
    c = collector(root)
    c.read_output("link.py:1: error: through a link\n")
    assert (c.findings, c.dropped) == ([], 1)


def test_json_finding_lines_carry_fixes(root: Path) -> None:
    c = collector(root)
    c.read_output(
        'agentls-finding: {"path": "src/a.py", "line": 1, "column": 1, "end_line": 2, '
        '"severity": "error", "message": "m", "fix": {"old_text": "a", "new_text": "b"}}\n'
        "agentls-finding: {not json}\n"
        'agentls-finding: {"path": "src/a.py", "line": 0, "message": "zero line"}\n'
    )
    (f,) = c.findings
    assert (f.line, f.column, f.end_line, f.severity) == (0, 0, 1, "error")
    assert f.fix == Fix("a", "b")
    assert c.dropped == 2


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"line": 1, "message": "m"}, "path"),
        ({"path": "src/a.py", "line": 1}, "message"),
        ({"path": "src/a.py", "line": True, "message": "m"}, "line"),
        ({"path": "src/a.py", "line": 2, "end_line": 1, "message": "m"}, "end_line"),
        ({"path": "src/a.py", "line": 1, "column": 0, "message": "m"}, "column"),
        ({"path": "src/a.py", "line": 1, "severity": "fatal", "message": "m"}, "severity"),
        ({"path": "src/a.py", "line": 1, "message": "m", "fix": {"old_text": ""}}, "fix"),
    ],
)
def test_report_refuses_malformed_objects(root: Path, obj: dict[str, object], field: str) -> None:
    with pytest.raises(FindingError) as e:
        collector(root).report(obj)
    assert e.value.message.startswith(field)


def test_report_answers_what_happened(root: Path) -> None:
    c = collector(root)
    assert c.report({"path": "src/a.py", "line": 1, "message": "m"}) == "recorded"
    assert c.report({"path": "../outside.py", "line": 1, "message": "m"}).startswith("dropped")


def test_findings_per_run_are_bounded(root: Path) -> None:
    c = collector(root)
    c.read_output("".join(f"src/a.py:{i + 1}: m\n" for i in range(MAX_FINDINGS_PER_RUN + 5)))
    assert len(c.findings) == MAX_FINDINGS_PER_RUN
    assert c.dropped == 5


def _finding(path: Path, agent: str, line: int = 0) -> Finding:
    return Finding(path=path, line=line, message="m", agent=agent, run_id=f"{agent}-run")


def test_store_replaces_per_agent_and_reports_changed_paths(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    store = FindingStore()
    assert store.replace("lint", "r1", [_finding(a, "lint")]) == {a}
    assert store.replace("other", "r2", [_finding(a, "other", 3)]) == {a}
    assert [f.agent for f in store.for_path(a)] == ["lint", "other"]
    assert store.replace("lint", "r3", [_finding(b, "lint")]) == {a, b}
    assert [f.agent for f in store.for_path(a)] == ["other"]
    assert store.run_of("lint") == "r3"
    changed, remaining = store.clear(path=a)
    assert changed == {a} and remaining == {"other": []}
    changed, remaining = store.clear(agent="lint")
    assert changed == {b} and remaining == {"lint": []}
    assert store.count() == 0
    assert store.clear() == (set(), {})


def test_round_trip_through_the_record_form(tmp_path: Path) -> None:
    f = Finding(
        path=tmp_path / "é b.py",
        line=3,
        message="m",
        severity="error",
        column=2,
        end_line=4,
        end_column=1,
        fix=Fix("x", "y"),
        agent="lint",
        run_id="r",
    )
    ((agent, run_id, (back,)),) = restore([("lint", "r", [f.to_dict(), {"broken": 1}])])
    assert (agent, run_id) == ("lint", "r")
    assert back == f


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        pytest.param("x = 1\nx = 1\n", 1, (1, 0, 1, 5), id="at-or-after-its-line"),
        pytest.param("x = 1\ny\n", 1, (0, 0, 0, 5), id="before-its-line"),
        pytest.param("é x = 1\r\nz", 0, (0, 2, 0, 7), id="code-points-and-crlf"),
        pytest.param("nothing here\n", 0, None, id="gone"),
    ],
)
def test_locate_fix(text: str, line: int, expected: tuple[int, int, int, int] | None) -> None:
    f = Finding(path=Path("/p"), line=line, message="m", fix=Fix("x = 1", "y = 1"))
    assert locate_fix(text, f) == expected


def test_the_tool_schema_matches_what_report_accepts(root: Path) -> None:
    schema = REPORT_FINDING_TOOL["parameters"]
    assert set(schema["required"]) == {"path", "line", "message"}
    c = collector(root)
    example = {"path": "src/a.py", "line": 1, "end_line": 1, "column": 1, "severity": "hint"}
    example |= {"message": "m", "fix": {"old_text": "a", "new_text": "b"}}
    assert set(example) == set(schema["properties"])
    assert c.report(example) == "recorded"

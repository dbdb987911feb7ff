"""Findings as diagnostics through the real server: parsed, converted, replaced, cleared, kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from tests.e2e.harness import FAKE_AGENT, Session, SessionFactory, wait_until, write

APP = "s = 'héllo😀'; x = 1\nprint(s)\n"
"""A line with a 2-byte and a 4-byte character before the finding's column (UTF-16: 1 + 2)."""


def add_lint_agent(root: Path) -> Path:
    """A ``lines`` backend that prints a scripted report, and a diagnostics agent using it."""
    report = root.parent / "report.txt"
    report.write_text("", encoding="utf-8")
    q = sys.executable.replace("\\", "\\\\")
    agent = str(FAKE_AGENT).replace("\\", "\\\\")
    rep = str(report).replace("\\", "\\\\")
    with (root / "agentls.toml").open("a", encoding="utf-8") as f:
        f.write('[backends.lines]\nkind = "command"\n')
        f.write(f'argv = ["{q}", "{agent}", "lines", "{rep}"]\n')
    write(
        root,
        ".agents/lint.md",
        """
        ---
        description: Lints the code
        backend: lines
        output: diagnostics
        task: lint this
        colour: red
        ---
        Lint.
    """,
    )
    write(root, "src/app.py", APP)
    return report


@pytest.fixture
def report(workspace: Path) -> Path:
    return add_lint_agent(workspace)


def column_units(text: str, column: int, client_name: str) -> int:
    """A code-point column in the units the server negotiates with this client."""
    prefix = text[:column]
    if client_name == "neovim":  # Neovim 0.11 offers utf-8 first
        return len(prefix.encode("utf-8"))
    return len(prefix.encode("utf-16-le")) // 2


async def test_compiler_format_output_becomes_diagnostics(
    open_session: SessionFactory, workspace: Path, report: Path, client_name: str
) -> None:
    x_col = APP.index("x = 1")
    report.write_text(
        "src/app.py:1:" + str(x_col + 1) + ": error: x is never used\n"
        "src/app.py:99: warning: past the end of the file\n"
        "some prose the model wrote\n"
        "../outside.py:1: error: outside the workspace\n"
        ".env:1: error: a secret file\n"
        ".agents/lint.md:6: note: a finding on a definition file\n",
        encoding="utf-8",
    )
    async with open_session(workspace) as s:
        app_uri = s.uri("src/app.py")
        lint_uri = s.uri(".agents/lint.md")
        # the definition's own hint (unknown key) is published first
        await wait_until(lambda: s.client.diagnostics.get(lint_uri))
        result = await s.command("agentls.run", {"agent": "lint", "task": "go"})
        assert result["status"] == "succeeded", result
        assert result["findings_dropped"] == 2
        assert [f["line"] for f in result["findings"]] == [0, 98, 5]
        diagnostics = await wait_until(lambda: s.client.diagnostics.get(app_uri))
        assert [d.message for d in diagnostics] == [
            "x is never used",
            "past the end of the file",
        ]
        first, clamped = diagnostics
        assert first.source == "agentls: lint"
        assert first.code == result["id"]
        assert first.severity == types.DiagnosticSeverity.Error
        line0 = APP.splitlines()[0]
        assert first.range.start == types.Position(
            line=0, character=column_units(line0, x_col, client_name)
        )
        assert first.range.end == types.Position(
            line=0, character=column_units(line0, len(line0), client_name)
        )
        assert clamped.severity == types.DiagnosticSeverity.Warning
        assert clamped.range.start.line == 1  # line 99 of a two-line file
        assert clamped.range.end == types.Position(line=1, character=len("print(s)"))
        # merged with the definition problems of the same file
        merged = await wait_until(
            lambda: (
                len(s.client.diagnostics.get(lint_uri, [])) == 2 and s.client.diagnostics[lint_uri]
            )
        )
        assert {d.source for d in merged} == {"agentls", "agentls: lint"}
        elsewhere = [u for u, ds in s.client.diagnostics.items() if ds and "lint.md" not in u]
        assert elsewhere == [app_uri]
        stored = await s.command("agentls.history.get", {"id": result["id"]})
        assert stored["findings"] == result["findings"]


async def test_next_run_replaces_and_clear_removes(
    open_session: SessionFactory, workspace: Path, report: Path
) -> None:
    async with open_session(workspace) as s:
        app_uri, util_uri = s.uri("src/app.py"), s.uri("src/util.py")
        report.write_text("src/app.py:1: old finding\n", encoding="utf-8")
        await s.command("agentls.run", {"agent": "lint", "task": "1"})
        await wait_until(lambda: s.client.diagnostics.get(app_uri))
        report.write_text(
            "src/util.py:1: hint: new finding\nsrc/util.py:2: error: another\n", encoding="utf-8"
        )
        second = await s.command("agentls.run", {"agent": "lint", "task": "2"})
        await wait_until(lambda: len(s.client.diagnostics.get(util_uri, [])) == 2)
        assert not s.client.diagnostics[app_uri]
        assert {d.code for d in s.client.diagnostics[util_uri]} == {second["id"]}
        # a failed run leaves the findings standing
        report.unlink()
        failed = await s.command("agentls.run", {"agent": "lint", "task": "3"})
        assert failed["status"] == "failed"
        assert failed["findings"] is None
        assert len(s.client.diagnostics[util_uri]) == 2
        cleared = await s.command("agentls.findings.clear", {"uri": util_uri})
        assert cleared == {"cleared": 2, "uris": [util_uri]}
        await wait_until(lambda: not s.client.diagnostics[util_uri])
        none_left = await s.command("agentls.findings.clear", {})
        assert none_left["cleared"] == 0


async def test_findings_survive_a_restart_until_cleared(
    open_session: SessionFactory, workspace: Path, report: Path
) -> None:
    report.write_text("src/app.py:2:1: error: kept across restarts\n", encoding="utf-8")
    async with open_session(workspace) as s:
        result = await s.command("agentls.run", {"agent": "lint", "task": "x"})
        app_uri = s.uri("src/app.py")
        await wait_until(lambda: s.client.diagnostics.get(app_uri))
    async with open_session(workspace) as s:
        diagnostics = await wait_until(lambda: s.client.diagnostics.get(app_uri))
        assert [(d.message, d.code) for d in diagnostics] == [
            ("kept across restarts", result["id"])
        ]
        await s.command("agentls.findings.clear", {"agent": "lint"})
        await wait_until(lambda: not s.client.diagnostics[app_uri])
    async with open_session(workspace) as s:
        await wait_until(lambda: s.client.diagnostics.get(s.uri(".agents/lint.md")))
        status = await s.command("agentls.status", {})
        assert status["folders"]
        assert not s.client.diagnostics.get(app_uri)


async def test_quick_fix_from_a_finding_with_a_fix(
    open_session: SessionFactory, workspace: Path, report: Path, client_name: str
) -> None:
    finding = {
        "path": "src/app.py",
        "line": 1,
        "severity": "warning",
        "message": "name it y",
        "fix": {"old_text": "x = 1", "new_text": "y = 1"},
    }
    report.write_text("agentls-finding: " + json.dumps(finding) + "\n", encoding="utf-8")
    async with open_session(workspace) as s:
        app_uri = s.uri("src/app.py")
        s.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=app_uri, language_id="python", version=1, text=APP
                )
            )
        )
        await s.command("agentls.run", {"agent": "lint", "task": "x"})
        await wait_until(lambda: s.client.diagnostics.get(app_uri))
        actions = await s.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=app_uri),
                range=types.Range(
                    start=types.Position(line=0, character=0),
                    end=types.Position(line=0, character=0),
                ),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert actions is not None
        fixes = [a for a in actions if isinstance(a, types.CodeAction) and a.kind == "quickfix"]
        assert [f.title for f in fixes] == ["Fix (lint): name it y"]
        assert fixes[0].edit is not None and fixes[0].edit.changes is not None
        (edit,) = fixes[0].edit.changes[app_uri]
        line0 = APP.splitlines()[0]
        start = APP.index("x = 1")
        assert edit.new_text == "y = 1"
        assert edit.range == types.Range(
            start=types.Position(line=0, character=column_units(line0, start, client_name)),
            end=types.Position(line=0, character=column_units(line0, start + 5, client_name)),
        )
        # asking for quick fixes only leaves the agents out
        only = await s.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=app_uri),
                range=types.Range(
                    start=types.Position(line=0, character=0),
                    end=types.Position(line=0, character=0),
                ),
                context=types.CodeActionContext(diagnostics=[], only=["quickfix"]),
            )
        )
        assert only is not None
        assert {a.title for a in only} == {"Fix (lint): name it y"}


async def test_session_has_no_error_logs(session: Session) -> None:
    """The editor features leave no error in the client's log on an ordinary start."""
    await session.command("agentls.status", {})
    assert not [m for m in session.client.log_messages if m.type == types.MessageType.Error]


async def test_a_diagnostics_agent_from_a_code_action_reports_a_count(
    open_session: SessionFactory, workspace: Path, report: Path
) -> None:
    report.write_text("src/app.py:1: error: one\nsrc/app.py:2: error: two\n", encoding="utf-8")
    async with open_session(workspace) as s:
        result = await s.command(
            "agentls.ask",
            {
                "agent": "lint",
                "uri": s.uri("src/app.py"),
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
            },
        )
        assert result["task"] == "lint this"  # the agent's default task
        assert result["document"] is None and len(result["findings"]) == 2
        await wait_until(lambda: s.client.messages)
        assert s.client.messages[-1].message == "lint: 2 findings"
        assert len(await wait_until(lambda: s.client.diagnostics.get(s.uri("src/app.py")))) == 2

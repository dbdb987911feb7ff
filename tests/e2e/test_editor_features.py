"""Agents as code actions and code lenses, and language features on agent files, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Union

import pytest
from lsprotocol import types
from pygls.uris import to_fs_path

from tests.e2e.harness import Session, SessionFactory, wait_until, write


@pytest.fixture
def editor_workspace(workspace: Path) -> Path:
    write(
        workspace,
        ".agents/explain.md",
        """
        ---
        description: Explains code
        task: explain this code
        include: [selection]
        ---
        Explain.
    """,
    )
    write(
        workspace,
        ".agents/quiet.md",
        """
        ---
        description: Never offered
        code_action: false
        ---
        Quiet.
    """,
    )
    write(
        workspace,
        ".agents/globs-only.md",
        """
        ---
        description: Only its globs
        include: [open_files]
        ---
        Globs.
    """,
    )
    return workspace


def whole_line(line: int) -> types.Range:
    return types.Range(
        start=types.Position(line=line, character=0), end=types.Position(line=line, character=5)
    )


def read_code_actions_as_sent(s: Session) -> None:
    """lsprotocol 2025.0.0 reads any code action that has a ``command`` as a ``Command``, losing
    its ``kind`` and ``edit``; tell them apart the way the specification does (a string)."""
    converter = s.client.protocol._converter

    def hook(obj: Any, _: type) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], hook)  # noqa: UP007


async def code_actions(s: Session, uri: str, rng: types.Range) -> list[Any]:
    read_code_actions_as_sent(s)
    result = await s.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is not None
    return list(result)


def open_buffer(s: Session, uri: str, text: str, language: str = "markdown") -> None:
    s.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


async def test_code_actions_list_agents_and_run_with_the_default_task(
    open_session: SessionFactory, editor_workspace: Path
) -> None:
    async with open_session(editor_workspace) as s:
        uri = s.uri("src/app.py")
        actions = await code_actions(s, uri, whole_line(1))
        titles = {a.title: a for a in actions}
        assert "Ask explain: Explains code" in titles
        assert "Ask reviewer: Reviews Python code" in titles
        assert not any("quiet" in t or "globs-only" in t for t in titles)
        listed = {a["name"]: a for a in (await s.command("agentls.agents.list", {}))["agents"]}
        assert (listed["explain"]["task"], listed["reviewer"]["task"]) == ("explain this code", "")
        explain = titles["Ask explain: Explains code"]
        assert explain.kind == "refactor.agentls"
        assert explain.command.command == "agentls.ask"
        result = await s.command(explain.command.command, *explain.command.arguments)
        assert result["status"] == "succeeded"
        assert result["task"] == "explain this code"
        assert result["output"].startswith("echo: explain this code")
        assert result["shown"] is True
        shown = s.client.shown_documents[-1]
        assert shown.uri == result["document"]
        document = Path(to_fs_path(shown.uri) or "")
        assert not document.is_relative_to(s.root)  # in the data folder, not the workspace
        text = document.read_text(encoding="utf-8")
        assert "echo: explain this code" in text
        manifest = {m["path"]: m for m in result["manifest"]}
        assert manifest["src/app.py"]["source"] == "selection"


async def test_invalid_agents_are_not_offered(
    open_session: SessionFactory, editor_workspace: Path
) -> None:
    write(editor_workspace, ".agents/broken.md", "---\nbackend: nowhere\n---\nBroken.\n")
    async with open_session(editor_workspace) as s:
        actions = await code_actions(s, s.uri("src/app.py"), whole_line(0))
        titles = [a.title for a in actions]
        assert titles and not any(t.startswith("Ask broken") for t in titles)


async def test_code_lenses_show_run_and_context_size(
    open_session: SessionFactory, editor_workspace: Path, client_name: str
) -> None:
    async with open_session(editor_workspace) as s:
        refreshes: list[object] = []
        s.client.feature(types.WORKSPACE_CODE_LENS_REFRESH)(
            lambda ls, params: refreshes.append(params)
        )
        uri = s.uri(".agents/reviewer.md")

        async def lenses() -> list[types.CodeLens]:
            result = await s.client.text_document_code_lens_async(
                types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
            )
            return list(result or [])

        first = await lenses()
        assert next(lens.command.title for lens in first if lens.command) == "▶ Run"
        context_title = ""
        for _ in range(500):
            titles = [lens.command.title for lens in await lenses() if lens.command]
            context_title = titles[1]
            if "files" in context_title:
                break
            await asyncio.sleep(0.02)
        assert context_title.startswith("Context: 2 files, ~")  # src/app.py, src/util.py
        if client_name == "visual-studio-code":  # the only one that advertises refresh support
            await wait_until(lambda: refreshes)
        # a new file matching the agent's globs changes the summary
        write(s.root, "src/more.py", "MORE = 1\n")
        s.client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[
                    types.FileEvent(uri=s.uri("src/more.py"), type=types.FileChangeType.Created)
                ]
            )
        )
        for _ in range(500):
            titles = [lens.command.title for lens in await lenses() if lens.command]
            if titles[1].startswith("Context: 3 files"):
                break
            await asyncio.sleep(0.02)
        assert titles[1].startswith("Context: 3 files")
        run = (await lenses())[0].command
        assert run is not None
        result = await s.command(run.command, *(run.arguments or []))
        assert result["status"] == "succeeded" and result["agent"] == "reviewer"
        preview = (await lenses())[1].command
        assert preview is not None
        shown = await s.command(preview.command, *(preview.arguments or []))
        text = Path(to_fs_path(shown["document"]) or "").read_text(encoding="utf-8")
        assert "src/more.py" in text and "## Prompt" in text


async def test_completion_hover_definition_symbols_on_an_unsaved_buffer(
    session: Session, client_name: str
) -> None:
    uri = session.uri(".agents/draft.md")  # never saved: exists only in the editor
    text = "---\ndescription: A draft\nbackend: echo\n\noutput: \n---\nBody.\n"
    await session.command("agentls.status", {})  # started: the buffer reaches the registry
    open_buffer(session, uri, text)
    listed = await session.command("agentls.agents.list", {})  # after didOpen, in order
    assert "draft" in {a["name"] for a in listed["agents"]}

    completion = await session.client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=3, character=0),
        )
    )
    assert completion is not None
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    labels = {i.label: i for i in items}
    assert {"task", "code_action", "include", "model"} <= set(labels)
    assert "backend" not in labels and "description" not in labels  # already set
    doc = labels["task"].documentation
    assert isinstance(doc, types.MarkupContent) and "default task" in doc.value

    values = await session.client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=4, character=8),
        )
    )
    assert values is not None
    value_items = values.items if isinstance(values, types.CompletionList) else values
    assert {i.label for i in value_items} == {"markdown", "diagnostics", "text"}

    backends = await session.client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=10),
        )
    )
    assert backends is not None
    backend_items = backends.items if isinstance(backends, types.CompletionList) else backends
    assert {i.label for i in backend_items} == {"echo"}  # prefix "e"

    key_hover = await session.client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=2),
        )
    )
    assert key_hover is not None and isinstance(key_hover.contents, types.MarkupContent)
    assert "**backend**" in key_hover.contents.value
    assert "Effective: `echo` (command)" in key_hover.contents.value

    value_hover = await session.client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=11),
        )
    )
    assert value_hover is not None and isinstance(value_hover.contents, types.MarkupContent)
    assert "Backend `echo`: command" in value_hover.contents.value

    definition = await session.client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=11),
        )
    )
    assert isinstance(definition, list) and len(definition) == 1
    location = definition[0]
    assert isinstance(location, types.Location)
    assert location.uri == session.uri("agentls.toml")
    config_lines = (session.root / "agentls.toml").read_text().splitlines()
    assert config_lines[location.range.start.line].strip() == "[backends.echo]"

    symbols = await session.client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert symbols is not None
    (agent,) = symbols
    assert isinstance(agent, types.DocumentSymbol)
    assert agent.name == "draft" and agent.detail == "A draft"
    assert [c.name for c in agent.children or []] == ["description", "backend", "output"]

    # an unsaved change is followed at once
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(
                    text="---\nname: renamed\ntask: t\n---\n"
                )
            ],
        )
    )
    symbols = await session.client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert symbols is not None
    assert symbols[0].name == "renamed"
    assert [c.name for c in symbols[0].children or []] == ["name", "task"]


async def test_language_features_ignore_files_that_are_not_agents(session: Session) -> None:
    uri = session.uri("src/app.py")
    open_buffer(session, uri, "backend: echo\n", "python")
    hover = await session.client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=2),
        )
    )
    assert hover is None
    lenses = await session.client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert not lenses


async def test_refused_show_document_falls_back_to_log_and_message(
    open_session: SessionFactory, editor_workspace: Path
) -> None:
    async with open_session(editor_workspace) as s:
        asked: list[types.ShowDocumentParams] = []

        def refuse(params: types.ShowDocumentParams) -> types.ShowDocumentResult:
            asked.append(params)
            return types.ShowDocumentResult(success=False)

        # pytest-lsp answers showDocument itself; this client cannot open the file (set in place:
        # pygls refuses a second registration, and a handler set here gets the params only)
        s.client.protocol.fm.features[types.WINDOW_SHOW_DOCUMENT] = refuse
        result = await s.command(
            "agentls.ask", {"agent": "explain", "uri": s.uri("src/app.py"), "task": "why"}
        )
        assert result["shown"] is False and result["task"] == "why"
        assert [p.uri for p in asked] == [result["document"]]
        await wait_until(lambda: s.client.messages)
        assert result["document"] in s.client.messages[-1].message
        assert any(result["document"] in m.message for m in s.client.log_messages)
        assert Path(to_fs_path(result["document"]) or "").is_file()


async def test_unknown_agent_for_ask_is_a_clear_error(session: Session) -> None:
    from pygls.exceptions import JsonRpcException

    with pytest.raises(JsonRpcException) as e:
        await session.command("agentls.ask", {"agent": "nobody"})
    assert "nobody" in str(e.value)
    with pytest.raises(JsonRpcException) as e:
        await session.command("agentls.ask", {"agent": "reviewer", "preview": "yes"})
    assert "preview" in str(e.value)


async def test_backend_names_in_the_workspace_configuration(session: Session) -> None:
    uri = session.uri("agentls.toml")
    text = (
        (session.root / "agentls.toml")
        .read_text()
        .replace('default_backend = "echo"', 'default_backend = "fa"')
    )
    await session.command("agentls.status", {})
    open_buffer(session, uri, text, "toml")
    completion = await session.client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=len('default_backend = "fa')),
        )
    )
    assert completion is not None
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    assert [i.label for i in items] == ["failing"]
    definition = await session.client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=len('default_backend = "f')),
        )
    )
    assert definition is None  # "fa" names no backend
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(text=text.replace('"fa"', '"slow"'))
            ],
        )
    )
    definition = await session.client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=len('default_backend = "s')),
        )
    )
    assert isinstance(definition, list) and len(definition) == 1
    lines = text.splitlines()
    assert lines[definition[0].range.start.line].strip() == "[backends.slow]"


async def test_positions_past_the_end_and_foreign_uris_are_answered(session: Session) -> None:
    uri = session.uri(".agents/reviewer.md")
    await session.command("agentls.status", {})
    open_buffer(session, uri, (session.root / ".agents/reviewer.md").read_text())
    far = types.Position(line=1_000_000, character=1_000_000)
    doc = types.TextDocumentIdentifier(uri=uri)
    assert await session.client.text_document_hover_async(types.HoverParams(doc, far)) is None
    completion = await session.client.text_document_completion_async(
        types.CompletionParams(text_document=doc, position=far)
    )
    assert completion is None or not (
        completion.items if isinstance(completion, types.CompletionList) else completion
    )
    assert (
        await session.client.text_document_definition_async(types.DefinitionParams(doc, far))
        is None
    )
    for foreign in ("untitled:Untitled-1", "file:///etc/passwd", session.uri("../outside.py")):
        actions = await session.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=foreign),
                range=types.Range(start=far, end=far),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert not actions
        lenses = await session.client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=foreign))
        )
        assert not lenses
    assert not [m for m in session.client.log_messages if m.type == types.MessageType.Error]

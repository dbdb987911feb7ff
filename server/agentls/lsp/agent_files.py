"""Completion, hover, go-to-definition and document symbols on agent definition files.

Thin adapters over ``agents.language``: they take the text of the open buffer (pygls' workspace
holds unsaved edits, so the features follow what the user sees, saved or not), convert the client's
position to code points, ask the service module, and convert back. Only files the server treats as
definitions get answers (and a workspace folder's ``agentls.toml``, for backend names and kinds),
and only from open buffers: nothing is read from disk, except the configuration file a backend name
points to when go-to-definition is asked for (through the safe reader, by the service).

Nothing here imports the service's modules (YAML, the configuration) at import time: this module
is loaded before ``initialize`` is answered, and its features only run once the service exists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.workspace import TextDocument

from agentls.lsp.documents import uri_to_path

if TYPE_CHECKING:
    from agentls.agents import language
    from agentls.lsp.server import AgentLanguageServer

logger = logging.getLogger(__name__)

TRIGGER_CHARACTERS = [":", " ", "-", "[", ","]


def _definition_document(ls: AgentLanguageServer, uri: str) -> tuple[TextDocument, Path] | None:
    """The open buffer of a definition file inside the workspace, else None."""
    from agentls.agents.locations import is_definition_path

    service = ls.service
    document = ls.workspace.text_documents.get(uri)
    path = uri_to_path(uri)
    if service is None or document is None or path is None:
        return None
    folder = service.roots.folder_of(path)
    if folder is None or not is_definition_path(path.relative_to(folder).as_posix()):
        return None
    return document, path


def _config_document(ls: AgentLanguageServer, uri: str) -> TextDocument | None:
    """The open buffer of a workspace folder's ``agentls.toml``, else None."""
    from agentls.config import WORKSPACE_CONFIG_NAME

    service = ls.service
    document: TextDocument | None = ls.workspace.text_documents.get(uri)
    path = uri_to_path(uri)
    if service is None or document is None or path is None:
        return None
    if path.name != WORKSPACE_CONFIG_NAME or path.parent not in service.roots.folders:
        return None
    return document


def _server_position(document: TextDocument, position: types.Position) -> tuple[int, int]:
    """A client position as (line, code-point column)."""
    server = document.position_codec.position_from_client_units(document.lines, position)
    return server.line, server.character


def _client_range(
    document: TextDocument, line: int, start: int, end_line: int, end: int
) -> types.Range:
    codec = document.position_codec
    lines = document.lines
    return types.Range(
        start=codec.position_to_client_units(lines, types.Position(line=line, character=start)),
        end=codec.position_to_client_units(lines, types.Position(line=end_line, character=end)),
    )


def completion(
    ls: AgentLanguageServer, params: types.CompletionParams
) -> types.CompletionList | None:
    """Keys (with their documentation) and the values each key takes."""
    from agentls.agents import language
    from agentls.config import BACKEND_KINDS

    if ls.service is None:
        return None
    catalog = ls.service.language_catalog()
    found = _definition_document(ls, params.text_document.uri)
    config = _config_document(ls, params.text_document.uri) if found is None else None
    if found is not None:
        document = found[0]
        line, column = _server_position(document, params.position)
        items = language.complete(document.source, line, column, catalog)
    elif config is not None:
        document = config
        line, column = _server_position(document, params.position)
        items = language.config_complete(document.source, line, column, catalog, BACKEND_KINDS)
    else:
        return None
    out = []
    for item in items:
        rng = _client_range(document, item.line, item.start, item.line, item.end)
        out.append(
            types.CompletionItem(
                label=item.label,
                kind=(
                    types.CompletionItemKind.Property
                    if item.kind == "key"
                    else types.CompletionItemKind.Value
                ),
                detail=item.detail,
                documentation=types.MarkupContent(
                    kind=types.MarkupKind.Markdown, value=item.documentation
                ),
                text_edit=types.TextEdit(range=rng, new_text=item.insert_text),
                filter_text=item.label,
            )
        )
    return types.CompletionList(is_incomplete=False, items=out)


def hover(ls: AgentLanguageServer, params: types.HoverParams) -> types.Hover | None:
    """What a key or value means, its default, and the effective value."""
    from agentls.agents import language

    found = _definition_document(ls, params.text_document.uri)
    if found is None or ls.service is None:
        return None
    document, path = found
    line, column = _server_position(document, params.position)
    info = language.hover(document.source, path, line, column, ls.service.language_catalog())
    if info is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=info.markdown),
        range=_client_range(document, info.line, info.start, info.line, info.end),
    )


def definition(
    ls: AgentLanguageServer, params: types.DefinitionParams
) -> list[types.Location] | None:
    """From ``backend: NAME`` to ``[backends.NAME]`` in the configuration file that defines it."""
    from agentls.agents import language

    service = ls.service
    if service is None:
        return None
    found = _definition_document(ls, params.text_document.uri)
    config = _config_document(ls, params.text_document.uri) if found is None else None
    if found is not None:
        document = found[0]
        line, column = _server_position(document, params.position)
        name = language.backend_at(document.source, line, column)
    elif config is not None:
        line, column = _server_position(config, params.position)
        name = language.config_backend_at(config.source, line, column)
    else:
        return None
    if name is None:
        return None
    for config_file in service.backend_config_files(name):
        text = _open_text(ls, config_file)
        if text is None:
            text = service.config_file_text(config_file)
        if text is None:
            continue
        header = language.backend_header_line(text, name)
        if header is None:
            continue
        width = len(language.split_lines(text)[header])
        return [
            types.Location(
                uri=config_file.as_uri(),
                range=types.Range(
                    start=types.Position(line=header, character=0),
                    end=types.Position(line=header, character=width),
                ),
            )
        ]
    return None


def _open_text(ls: AgentLanguageServer, path: Path) -> str | None:
    """The text of the open buffer of ``path``, else None."""
    for uri, document in ls.workspace.text_documents.items():
        if uri_to_path(uri) == path:
            source: str = document.source
            return source
    return None


def document_symbols(
    ls: AgentLanguageServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol] | None:
    """The agent, with its front-matter keys as children."""
    from agentls.agents import language

    found = _definition_document(ls, params.text_document.uri)
    if found is None:
        return None
    document, path = found

    def convert(symbol: language.Symbol) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=symbol.name,
            detail=symbol.detail or None,
            kind=types.SymbolKind.Class if symbol.kind == "agent" else types.SymbolKind.Property,
            range=_client_range(document, *symbol.start, *symbol.end),
            selection_range=_client_range(document, *symbol.selection_start, *symbol.selection_end),
            children=[convert(c) for c in symbol.children] or None,
        )

    return [convert(s) for s in language.symbols(document.source, path)]

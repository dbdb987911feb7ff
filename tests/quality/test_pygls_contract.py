"""The pygls internals that agentls.lsp.protocol and agentls.lsp.transport build on.

``AgentlsProtocol`` overrides private methods of pygls' ``JsonRPCProtocol`` and reads private
attributes, and the transport replaces pygls' I/O loop; pygls may change any of them in a patch
release. pyproject.toml pins pygls to one exact version, and this test says *which* internals a
new version must still have, so an upgrade fails here, by name, instead of in a hardening test
that hangs or answers wrongly. When it fails: read pygls' change for that name, adapt
``agentls/lsp/protocol.py`` or ``transport.py``, update the tables below and the pin together.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from pygls.io_ import StdoutWriter
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol
from pygls.server import JsonRPCServer

from agentls.lsp.protocol import AgentlsProtocol
from agentls.lsp.server import AgentLanguageServer

ROOT = Path(__file__).resolve().parents[2]

SIGNATURES: dict[str, tuple[type, str]] = {
    # method: (the pygls class that defines it, its parameters as pygls declares them)
    "__init__": (LanguageServerProtocol, "self, server, converter"),
    "_send_response": (JsonRPCProtocol, "self, msg_id, result=None, error=None"),
    "_execute_handler": (
        JsonRPCProtocol,
        "self, msg_id, handler, callback, args=None, kwargs=None",
    ),
    "_run_generator": (JsonRPCProtocol, "self, future, *, gen, result_future"),
    "_send_handler_result": (JsonRPCProtocol, "self, future, *, msg_id"),
    "_handle_response": (JsonRPCProtocol, "self, msg_id, result=None, error=None"),
    "_send_data": (JsonRPCProtocol, "self, data"),
    "_serialize_message": (JsonRPCProtocol, "self, data"),
    "handle_message": (JsonRPCProtocol, "self, message"),
    "structure_message": (JsonRPCProtocol, "self, data"),
    "set_writer": (JsonRPCProtocol, "self, writer, include_headers=True"),
    "get_message_type": (LanguageServerProtocol, "self, method"),
    "lsp_shutdown": (LanguageServerProtocol, "self, *args"),
    "lsp_exit": (LanguageServerProtocol, "self, *args"),
    "lsp_workspace__execute_command": (LanguageServerProtocol, "self, params"),
}
"""Every pygls method AgentlsProtocol overrides or calls on itself."""

CALL_PATHS: list[tuple[Callable[..., Any], str]] = [
    # an override only matters while pygls still calls it from there
    (JsonRPCProtocol._handle_request, "self._send_handler_result"),
    (JsonRPCProtocol._execute_handler, "self._run_generator"),
    (JsonRPCProtocol._send_response, "self._send_data"),
    (JsonRPCProtocol._send_response, "self._result_types.pop(msg_id"),
    (JsonRPCProtocol.handle_message, "self._shutdown"),
    (JsonRPCProtocol.handle_message, "self._handle_response,"),
    (LanguageServerProtocol.lsp_workspace__execute_command, "yield handler, args, kwargs"),
]
"""(pygls function, text its source must contain)."""

ATTRIBUTES: dict[str, type | tuple[type, ...]] = {
    "_request_futures": dict,
    "_result_types": dict,
    "_shutdown": bool,
    "_include_headers": bool,
    "_converter": object,
    "msg_id": (type(None), str, int),
    "writer": type(None),
    "CONTENT_TYPE": str,
    "CHARSET": str,
    "VERSION": str,
}
"""Attributes of a fresh protocol that AgentlsProtocol reads or writes, and their types."""


def _params(func: Callable[..., Any]) -> str:
    """A signature's parameters without annotations: ``self, msg_id, result=None``."""
    parts = []
    star_done = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star_done = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        else:
            if p.kind is p.KEYWORD_ONLY and not star_done:
                parts.append("*")
                star_done = True
            parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(parts)


def test_pygls_is_pinned_to_the_installed_version() -> None:
    """The pin in pyproject.toml is exact, and it is the version these tables describe."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [spec] = [d for d in project["project"]["dependencies"] if re.match(r"pygls\b", d)]
    match = re.fullmatch(r"pygls==([0-9][0-9A-Za-z.]*)", spec.replace(" ", ""))
    assert match, f"pygls must be pinned exactly (==), not {spec!r}"
    assert version("pygls") == match.group(1), (
        f"pygls {version('pygls')} is installed but pyproject.toml pins {match.group(1)}"
    )


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_overridden_and_called_methods_keep_their_signature(name: str) -> None:
    owner, expected = SIGNATURES[name]
    method = getattr(owner, name, None)
    assert method is not None, f"pygls' {owner.__name__} no longer has {name}"
    defined_by = method.__qualname__.split(".")[0]
    assert defined_by == owner.__name__, f"{name} moved from {owner.__name__} to {defined_by}"
    assert _params(method) == expected, f"pygls' {owner.__name__}.{name} changed its parameters"
    ours = getattr(AgentlsProtocol, name)
    if ours.__qualname__.startswith("AgentlsProtocol."):
        # our override must accept what pygls passes to it
        assert _params(ours) == expected, f"AgentlsProtocol.{name} differs from pygls'"


@pytest.mark.parametrize(
    ("func", "needle"), CALL_PATHS, ids=[f"{f.__qualname__}:{n}" for f, n in CALL_PATHS]
)
def test_pygls_still_calls_what_we_override(func: Callable[..., Any], needle: str) -> None:
    assert needle in inspect.getsource(func), f"{func.__qualname__} no longer uses {needle!r}"


def test_protocol_attributes_we_rely_on() -> None:
    server = AgentLanguageServer()
    protocol = server.protocol
    assert isinstance(protocol, AgentlsProtocol)
    for name, kind in ATTRIBUTES.items():
        assert hasattr(protocol, name), f"pygls' protocol no longer has {name}"
        assert isinstance(getattr(protocol, name), kind), (
            f"{name} is now {type(getattr(protocol, name))}"
        )
    assert isinstance(protocol.fm.features, dict)
    assert isinstance(protocol.fm.builtin_features, dict)
    assert isinstance(protocol.fm.commands, dict)
    # the transport replaces pygls' start_io, so it sets the stop event pygls' shutdown sets
    assert hasattr(server, "_stop_event")
    assert "self._stop_event.set()" in inspect.getsource(JsonRPCServer)


def test_the_stdout_writer_the_transport_falls_back_to() -> None:
    assert _params(StdoutWriter.__init__) == "self, stdout"
    assert callable(StdoutWriter.write) and callable(StdoutWriter.close)

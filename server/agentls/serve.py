"""``agentls serve``: logging set up away from stdout, then the language server on stdio or TCP.

stdout is the protocol stream. Before anything else runs, the real fd 1 is duplicated for the
protocol and fd 1 itself is pointed at stderr, so a stray ``print``, a C library or a child process
that inherits fd 1 can never corrupt the stream.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import BinaryIO

from agentls.redaction import RedactionFilter, secret_environment_values


def _configure_logging(log_file: str | None, level: str | None) -> None:
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactionFilter(secret_environment_values()))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("agentls").setLevel(level or "INFO")
    # pygls logs every message body at INFO (file contents, model output): keep it quiet.
    logging.getLogger("pygls").setLevel(logging.WARNING)
    # httpx logs request URLs at INFO; a gateway URL can carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _protocol_stdout() -> BinaryIO:
    """A private handle on the real stdout; fd 1 now goes to stderr."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def serve(*, tcp: str | None, log_file: str | None, log_level: str | None) -> int:
    """Run the server until the client says exit (or closes the stream)."""
    _configure_logging(log_file, log_level)
    from agentls.lsp.server import create_server

    server = create_server()
    if tcp:
        host, _, port = tcp.rpartition(":")
        if not host or not port.isdigit():
            sys.stderr.write(f"agentls: --tcp expects HOST:PORT, got {tcp!r}\n")
            return 2
        server.start_tcp(host, int(port))
        return 0
    from agentls.lsp.transport import run_stdio

    out = _protocol_stdout()
    return run_stdio(server, sys.stdin.buffer, out)

"""``agentls serve``: logging set up away from stdout, then the language server on stdio or TCP.

stdout is the protocol stream. Before anything else runs, the real fd 1 is duplicated for the
protocol and fd 1 itself is pointed at stderr, so a stray ``print``, a C library or a child process
that inherits fd 1 can never corrupt the stream.

On stdio the process ends with ``os._exit`` once the session is closed and the logs are flushed:
the interpreter's own exit joins every worker thread, and one stuck in a read (a FIFO, a hung
network file system) would keep an orphaned server alive with no client to serve.

Before serving, the server refuses to run a package that the working directory may have supplied
(``agentls.provenance``), and becomes a child subreaper (``agentls.backends.descendants``) so the
processes its runs start stay its descendants even after they ``setsid`` and their parent exits.

``--tcp`` is a debugging aid: it listens on loopback addresses only unless ``--allow-remote`` is
given, and a TCP client is not the user's editor: unless the server was started with
``AGENTLS_TCP_TOKEN`` and the client presents the same value as ``initializationOptions.token``,
its settings cannot define backends or declare the workspace trusted.
"""

from __future__ import annotations

import contextlib
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


TCP_TOKEN_ENV = "AGENTLS_TCP_TOKEN"  # noqa: S105 - the name of a variable, not its value
"""The shared secret a TCP client must present (``initializationOptions.token``) to be trusted."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    *,
    tcp: str | None,
    log_file: str | None,
    log_level: str | None,
    allow_remote: bool = False,
) -> int:
    """Run the server until the client says exit (or closes the stream); never returns on success.

    Returns 2 for a malformed or non-loopback ``--tcp`` (without ``--allow-remote``), 3 when the
    package may come from the working directory; otherwise the process ends with the session's
    code.
    """
    from agentls.provenance import REFUSED_EXIT_CODE, shadowed_by_working_directory

    refusal = shadowed_by_working_directory()
    if refusal is not None:
        sys.stderr.write(f"agentls: {refusal}\n")
        return REFUSED_EXIT_CODE
    if tcp:
        host, _, port = tcp.rpartition(":")
        if not host or not port.isdigit():
            sys.stderr.write(f"agentls: --tcp expects HOST:PORT, got {tcp!r}\n")
            return 2
        if not allow_remote and not is_loopback(host):
            sys.stderr.write(
                f"agentls: --tcp {tcp}: {host} is not a loopback address; other hosts could "
                "connect. Use 127.0.0.1, or add --allow-remote (and set AGENTLS_TCP_TOKEN).\n"
            )
            return 2
    _configure_logging(log_file, log_level)
    from agentls.backends.descendants import become_subreaper
    from agentls.lsp.server import create_server

    become_subreaper()
    server = create_server()
    from agentls.lsp.transport import run_stdio, run_tcp

    if tcp:
        server.over_tcp = True
        server.tcp_token = os.environ.get(TCP_TOKEN_ENV) or None
        code = run_tcp(server, host.strip("[]"), int(port))
    else:
        code = run_stdio(server, sys.stdin.buffer, _protocol_stdout())
    _kill_leftover_processes()
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def _kill_leftover_processes() -> None:
    """Last act before exit: no process a run started may outlive the server.

    Runs are cancelled (and their process groups stopped) while the session closes, within a
    time bound; whatever did not finish in time is SIGKILLed here: the run's process groups
    (which reach grandchildren that were re-parented) and any descendant still ours.
    """
    import psutil

    from agentls.backends.command import kill_live_groups

    killed = kill_live_groups()
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
            killed += 1
    if killed:
        logging.getLogger(__name__).warning("killed %d leftover process(es) at exit", killed)

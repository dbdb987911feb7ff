"""The ``agentls`` command line: ``serve``, ``run``, ``--version``.

Imports are lazy: ``agentls --help`` must not pay for pygls and lsprotocol (about 350 ms here), so
each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentls import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentls",
        description="Run the AI agents kept in your repository, from any editor (LSP) or here.",
    )
    parser.add_argument("--version", action="version", version=f"agentls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen on TCP instead of stdio (loopback addresses only, unless --allow-remote)",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --tcp listen on an address other hosts can reach (set AGENTLS_TCP_TOKEN too)",
    )
    serve.add_argument("--log-file", metavar="PATH", help="write logs here instead of stderr")
    serve.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: the configuration's log_level, INFO)",
    )

    run = sub.add_parser("run", help="run one agent from the terminal, streaming its output")
    run.add_argument("agent", help="the agent's name")
    run.add_argument(
        "--workspace",
        "-w",
        default=".",
        metavar="DIR",
        help="the workspace folder (default: the current directory)",
    )
    run.add_argument("--task", "-t", default="", help="what to ask the agent")
    run.add_argument(
        "--file",
        "-f",
        action="append",
        default=[],
        dest="files",
        metavar="PATH",
        help="attach a file (repeatable)",
    )
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fill {{NAME}} in the agent's prompt (repeatable)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact prompt and manifest; contact no backend",
    )
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument(
        "--trust",
        action="store_true",
        help="trust this workspace's agentls.toml backends for this run",
    )
    doctor = sub.add_parser(
        "doctor",
        help="check the configuration, each backend and the workspace; exit 1 on a problem",
    )
    doctor.add_argument(
        "--workspace",
        "-w",
        default=".",
        metavar="DIR",
        help="the workspace folder (default: the current directory)",
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument(
        "--trust",
        action="store_true",
        help="treat this workspace's agentls.toml backends as trusted",
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for each backend (default 5)",
    )

    # Listed for --help only: main() hands `agentls bench ...` to the bench before parsing.
    sub.add_parser("bench", help="measure agentls on this machine (agentls bench --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and ``python -m agentls``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # the bench parses its own options (--quick, --json, ...)
        from agentls.bench import main as bench_main

        return bench_main(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.command == "serve":
        from agentls.serve import serve

        return serve(
            tcp=args.tcp,
            allow_remote=args.allow_remote,
            log_file=args.log_file,
            log_level=args.log_level,
        )
    if args.command == "run":
        from agentls.terminal import run_once

        return run_once(
            workspace=args.workspace,
            agent=args.agent,
            task=args.task,
            files=args.files,
            variables=args.var,
            dry_run=args.dry_run,
            as_json=args.json,
            trust=args.trust,
        )
    if args.command == "doctor":
        from agentls.doctor import run_doctor

        return run_doctor(
            workspace=args.workspace, as_json=args.json, trust=args.trust, timeout=args.timeout
        )
    parser.print_help(sys.stderr)
    return 2

"""Every file the server opens goes through the safe reader (``agentls/workspace/reader.py``).

The repository is hostile input: a FIFO, a device, a symlink out of the workspace or to a secret,
a file of hundreds of MB. ``reader.read_regular`` is the one place that opens files defensively;
this test fails when code under ``server/agentls`` opens or reads a file any other way (``open``,
``os.open``, ``Path.read_bytes``/``read_text``/``open``, ``os.fdopen``, ``tomllib.load``), or asks
pygls for a document it does not have (``get_text_document`` reads such a document from disk on
the event loop, unchecked). The few exceptions are listed below with their reason; none of them
reads a workspace file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "agentls"

READER = "workspace/reader.py"
"""The safe reader itself."""

FILE_CALLS = frozenset({"open", "read_bytes", "read_text", "fdopen", "get_text_document"})
"""Names of calls that open or read a file (as a function or as a method)."""

LOADERS = ("tomllib.load", "json.load", "orjson.load", "pickle.load", "mmap.mmap")
"""Calls that read a file object handed to them."""

ALLOWED: dict[tuple[str, str], str] = {
    ("calibration.py", "self._path.read_bytes"): "the calibration file in the data folder",
    ("calibration.py", "os.fdopen"): "writing the calibration file (atomic replace)",
    ("serve.py", "os.fdopen"): "a duplicate of stdout: the protocol stream",
    ("execution/outputs.py", "os.open"): "creating a result document in the data folder (0600)",
    ("execution/outputs.py", "os.fdopen"): "writing that result document (atomic replace)",
    (
        "backends/descendants.py",
        "open",
    ): "/proc/<pid>/task/*/children: the kernel's list of run processes",
}
"""``(module, call)`` pairs allowed outside the reader, with why they are not workspace reads."""

ALLOWED_PACKAGES = {"bench/": "agentls bench reads trees it generated itself, and /proc/cpuinfo"}
"""Packages allowed to read files their own way, with why."""


def _file_calls() -> list[tuple[str, int, str]]:
    """``(module, line, call)`` of every file-opening call in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            text = ast.unparse(func)
            if name in FILE_CALLS or text in LOADERS:
                found.append((rel, node.lineno, text))
    return found


def test_files_are_opened_only_by_the_safe_reader() -> None:
    offenders = [
        f"server/agentls/{rel}:{line}: {call}"
        for rel, line, call in _file_calls()
        if rel != READER
        and (rel, call) not in ALLOWED
        and not rel.startswith(tuple(ALLOWED_PACKAGES))
    ]
    assert offenders == [], (
        "open files through agentls.workspace.reader.read_regular (or add a reasoned "
        f"exception to ALLOWED): {offenders}"
    )


def test_the_exceptions_are_still_needed() -> None:
    """An exception whose call is gone is removed, so the list never grows stale."""
    calls = {(rel, call) for rel, _line, call in _file_calls()}
    assert [key for key in ALLOWED if key not in calls] == []
    assert any(rel == READER and call == "os.open" for rel, call in calls)

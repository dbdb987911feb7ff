"""Run results written as Markdown documents, for editors to open (``window/showDocument``).

A run started from a code action or code lens has no panel of its own in most editors, so its text
output (or, for a preview, its prompt and manifest) becomes a Markdown file in the workspace's
data folder (next to its history), which the editor opens. The folder keeps the newest
``MAX_DOCUMENTS`` files; older ones are deleted as new ones are written. Nothing here reads the
workspace: the content is what the run already produced (secrets were redacted by the builder).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

MAX_DOCUMENTS = 50
"""Result documents kept per workspace; the oldest go first."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _name(agent: str, run_id: str, suffix: str) -> str:
    stem = _UNSAFE.sub("_", agent).strip("._")[:48] or "agent"
    return f"{stem}-{run_id}{suffix}.md"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_run(result: dict[str, Any]) -> str:
    """The Markdown of a finished run: a header with what ran, then its output as written."""
    lines = [
        f"# {result.get('agent')}: {result.get('status')}",
        "",
        f"- run: `{result.get('id')}`",
        f"- task: {result.get('task') or '(none)'}",
        f"- backend: {result.get('backend')}, model: {result.get('model')}",
    ]
    if result.get("error"):
        lines.append(f"- error: {result['error']}")
    findings = result.get("findings")
    if findings is not None:
        lines.append(f"- findings: {len(findings)} ({result.get('findings_dropped', 0)} dropped)")
    lines += ["", str(result.get("output") or "")]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_preview(agent: str, result: dict[str, Any]) -> str:
    """The Markdown of a context preview: the manifest as a table, then the exact prompt."""
    manifest = result.get("manifest") or []
    used = [m for m in manifest if m.get("status") in ("included", "truncated")]
    tokens = sum(int(m.get("tokens") or 0) for m in used)
    lines = [
        f"# {agent}: context preview",
        "",
        f"{len(used)} files, ~{tokens} tokens of files.",
        "",
        "| file | source | status | reason | tokens |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in manifest:
        path = str(m.get("path")).replace("|", "\\|")
        lines.append(
            f"| {path} | {m.get('source')} | {m.get('status')} | {m.get('reason') or ''} "
            f"| {m.get('tokens')} |"
        )
    prompt = str(result.get("prompt") or "")
    fence = _fence(prompt)
    lines += ["", "## Prompt", "", fence, prompt, fence]
    return "\n".join(lines) + "\n"


def write_document(folder: Path, agent: str, run_id: str, text: str, *, preview: bool) -> Path:
    """Write one result document (private to the user) and prune the folder; blocking I/O."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / _name(agent, run_id, "-preview" if preview else "")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    _prune(folder)
    return path


def _prune(folder: Path) -> None:
    entries = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".md") and entry.is_file(follow_symlinks=False):
            try:
                entries.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
            except OSError:
                continue
    entries.sort()
    for _, path in entries[: max(0, len(entries) - MAX_DOCUMENTS)]:
        try:
            os.unlink(path)
        except OSError:
            continue


def new_preview_id() -> str:
    """An id for a preview document (previews have no run id)."""
    return f"preview{int(time.time() * 1000)}"

"""Findings: problems an agent reports about workspace files, shown by the editor as diagnostics.

An agent whose front matter says ``output: diagnostics`` reports findings. They come from pluggable
sources that all end in one ``FindingCollector`` per run:

* lines of its output in the classic compiler format, ``path:line[:column]: [severity:] message``
  (any backend: a ``command`` running a linter, a model without tools);
* output lines ``agentls-finding: {json}`` holding one finding object (the same shape as the
  ``report_finding`` tool's arguments, so a plain program can offer a ``fix``);
* the ``report_finding`` tool of a tool-capable backend, which calls ``FindingCollector.report``
  with the tool's arguments and returns its answer to the model.

A finding that names a path outside the workspace folders or a deny-listed secret file is dropped
and counted, never stored. ``FindingStore`` owns the current findings: one set per agent, replaced
wholesale by that agent's next finished run, cleared on request, and restored from history at
start. Nothing here knows about LSP; positions are 0-based lines and code-point columns, and the
LSP layer converts them (and clamps lines past the end of a file) when it publishes.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from agentls.errors import AgentlsError
from agentls.workspace.filters import is_secret
from agentls.workspace.roots import WorkspaceRoots

Severity = Literal["error", "warning", "information", "hint"]
SEVERITIES: tuple[str, ...] = ("error", "warning", "information", "hint")

MAX_FINDINGS_PER_RUN = 1000
"""Findings beyond this many in one run are dropped (and counted): an editor cannot show more."""

MAX_MESSAGE_CHARS = 2000
"""A finding's message is cut to this length; a diagnostic is a line, not a report."""

JSON_PREFIX = "agentls-finding:"
"""Output lines starting with this carry one finding as a JSON object."""

REPORT_FINDING_TOOL: Mapping[str, Any] = {
    "name": "report_finding",
    "description": (
        "Report one problem in a workspace file; it is shown in the user's editor as a "
        "diagnostic. Lines and columns count from 1. Offer a fix only when replacing old_text "
        "(copied exactly from the file) with new_text solves the problem."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "the file, relative to the workspace"},
            "line": {"type": "integer", "minimum": 1},
            "end_line": {"type": "integer", "minimum": 1},
            "column": {"type": "integer", "minimum": 1},
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "message": {"type": "string"},
            "fix": {
                "type": "object",
                "properties": {"old_text": {"type": "string"}, "new_text": {"type": "string"}},
                "required": ["old_text", "new_text"],
            },
        },
        "required": ["path", "line", "message"],
    },
}
"""The ``report_finding`` tool offered to ``output: diagnostics`` agents on tool-capable backends
(name, description, JSON Schema of the arguments); a call goes to ``FindingCollector.report``."""

_SEVERITY_WORDS: Mapping[str, Severity] = {
    "error": "error",
    "fatal": "error",
    "warning": "warning",
    "warn": "warning",
    "info": "information",
    "information": "information",
    "note": "information",
    "hint": "hint",
}

_COMPILER_LINE = re.compile(
    r"^(?P<path>(?:file://)?(?:[A-Za-z]:[\\/])?[^:\r\n]+?)"
    r":(?P<line>\d+)(?::(?P<column>\d+))?:[ \t]*"
    r"(?:(?P<severity>error|fatal|warning|warn|info|information|note|hint)[ \t]*:[ \t]*)?"
    r"(?P<message>\S.*?)\s*$",
    re.IGNORECASE,
)
"""``path:line[:column]: [severity:] message``; the path may be a ``file://`` URI or start with a
Windows drive letter."""


@dataclass(frozen=True)
class Fix:
    """A suggested edit: replace ``old_text`` (found at or after the finding's line) with
    ``new_text``."""

    old_text: str
    new_text: str


@dataclass(frozen=True)
class Finding:
    """One finding about one file. Lines are 0-based; columns count code points, 0-based."""

    path: Path
    """A realpath inside a workspace folder."""
    line: int
    message: str
    severity: Severity = "warning"
    column: int | None = None
    """None: the finding covers the line from its first non-blank character."""
    end_line: int | None = None
    end_column: int | None = None
    fix: Fix | None = None
    agent: str = ""
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The protocol form (the run result's ``findings``, and what history keeps)."""
        d: dict[str, Any] = {
            "uri": self.path.as_uri(),
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "severity": self.severity,
            "message": self.message,
        }
        if self.fix is not None:
            d["fix"] = {"old_text": self.fix.old_text, "new_text": self.fix.new_text}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], agent: str, run_id: str) -> Finding | None:
        """Inverse of ``to_dict`` for records read back from history; None if unreadable."""
        try:
            uri = data["uri"]
            if not isinstance(uri, str) or not uri.startswith("file://"):
                return None
            fix_raw = data.get("fix")
            fix = (
                Fix(str(fix_raw["old_text"]), str(fix_raw["new_text"]))
                if isinstance(fix_raw, dict)
                else None
            )
            severity = data.get("severity", "warning")
            return cls(
                path=_path_of_file_uri(uri),
                line=int(data["line"]),
                message=str(data["message"]),
                severity=severity if severity in SEVERITIES else "warning",
                column=_opt_int(data.get("column")),
                end_line=_opt_int(data.get("end_line")),
                end_column=_opt_int(data.get("end_column")),
                fix=fix,
                agent=agent,
                run_id=run_id,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _path_of_file_uri(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def is_finding_line(line: str) -> bool:
    """Whether an output line reads as a compiler-format finding."""
    return _COMPILER_LINE.match(line.strip()) is not None


class FindingError(AgentlsError):
    """A finding object the collector refuses; the message is what the reporter is told."""

    code = -32602


class FindingCollector:
    """The findings of one run as they are reported, checked against the workspace.

    ``base`` is the folder relative paths are read against (the run's working directory).
    """

    def __init__(self, roots: WorkspaceRoots, base: Path | None, agent: str, run_id: str) -> None:
        self._roots = roots
        self._base = base
        self.agent = agent
        self.run_id = run_id
        self.findings: list[Finding] = []
        self.dropped = 0
        """Findings refused: outside the workspace, secret files, over the per-run limit."""

    def report(self, obj: Mapping[str, Any]) -> str:
        """Take one finding object (the ``report_finding`` tool's arguments).

        ``{path, line, end_line?, column?, severity?, message, fix?: {old_text, new_text}}`` with
        1-based ``line``/``end_line``/``column`` as a person (or a compiler) counts. Returns a
        short answer for the reporter; raises ``FindingError`` for a malformed object.
        """
        path = obj.get("path")
        message = obj.get("message")
        line = obj.get("line")
        if not isinstance(path, str) or not path:
            raise FindingError("path: expected a non-empty string")
        if not isinstance(message, str) or not message.strip():
            raise FindingError("message: expected a non-empty string")
        if not isinstance(line, int) or not _positive(line):
            raise FindingError("line: expected a positive integer (1-based)")
        end_line = obj.get("end_line")
        column = obj.get("column")
        if end_line is not None and (not _positive(end_line) or end_line < line):
            raise FindingError("end_line: expected a positive integer not before line")
        if column is not None and not _positive(column):
            raise FindingError("column: expected a positive integer (1-based)")
        severity = obj.get("severity", "warning")
        if severity not in SEVERITIES:
            raise FindingError(f"severity: expected one of {', '.join(SEVERITIES)}")
        fix_raw = obj.get("fix")
        fix = None
        if fix_raw is not None:
            if (
                not isinstance(fix_raw, dict)
                or not isinstance(fix_raw.get("old_text"), str)
                or not isinstance(fix_raw.get("new_text"), str)
                or not fix_raw["old_text"]
            ):
                raise FindingError("fix: expected {old_text, new_text} with a non-empty old_text")
            fix = Fix(fix_raw["old_text"], fix_raw["new_text"])
        return self._add(
            path,
            line - 1,
            message,
            severity,
            column=None if column is None else column - 1,
            end_line=None if end_line is None else end_line - 1,
            fix=fix,
        )

    def read_output(self, text: str) -> None:
        """Take every finding line of a run's output (compiler format or ``agentls-finding:``)."""
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith(JSON_PREFIX):
                try:
                    obj = json.loads(line[len(JSON_PREFIX) :])
                    if not isinstance(obj, dict):
                        raise FindingError("expected a JSON object")
                    self.report(obj)
                except (ValueError, FindingError):
                    self.dropped += 1
                continue
            match = _COMPILER_LINE.match(line)
            if match is None:
                continue
            number = int(match["line"])
            if number < 1:
                continue
            column = int(match["column"]) if match["column"] else None
            word = (match["severity"] or "warning").lower()
            self._add(
                match["path"].strip(),
                number - 1,
                match["message"],
                _SEVERITY_WORDS[word],
                column=None if column is None or column < 1 else column - 1,
            )

    def _add(
        self,
        path: str,
        line: int,
        message: str,
        severity: Severity,
        *,
        column: int | None = None,
        end_line: int | None = None,
        fix: Fix | None = None,
    ) -> str:
        real = self._resolve(path)
        if real is None:
            self.dropped += 1
            return "dropped: the path is outside the workspace or a secret file"
        if len(self.findings) >= MAX_FINDINGS_PER_RUN:
            self.dropped += 1
            return f"dropped: more than {MAX_FINDINGS_PER_RUN} findings in one run"
        self.findings.append(
            Finding(
                path=real,
                line=line,
                message=message.strip()[:MAX_MESSAGE_CHARS],
                severity=severity,
                column=column,
                end_line=end_line,
                fix=fix,
                agent=self.agent,
                run_id=self.run_id,
            )
        )
        return "recorded"

    def _resolve(self, ref: str) -> Path | None:
        """The realpath of a reported path when it is a usable workspace file, else None."""
        try:
            if ref.startswith("file:"):
                real = self._roots.resolve(ref)
            else:
                candidate = Path(ref)
                if not candidate.is_absolute() and self._base is not None:
                    candidate = self._base / candidate
                real = self._roots.resolve(candidate)
        except (AgentlsError, ValueError, OSError):
            return None
        folder = self._roots.folder_of(real)
        if folder is None or real == folder:
            return None
        if is_secret(real.relative_to(folder).as_posix()):
            return None
        return real


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class _AgentFindings:
    run_id: str
    findings: list[Finding] = field(default_factory=list)


class FindingStore:
    """Owner of the current findings: per agent, the findings of its latest finished run.

    Every method that changes something returns the files whose findings changed, which are the
    files whose diagnostics need publishing again.
    """

    def __init__(self) -> None:
        self._by_agent: dict[str, _AgentFindings] = {}

    def replace(self, agent: str, run_id: str, findings: Iterable[Finding]) -> set[Path]:
        """An agent's run finished with these findings: they replace its previous ones."""
        old = self._by_agent.get(agent)
        new = _AgentFindings(run_id, list(findings))
        self._by_agent[agent] = new
        return _paths(old) | _paths(new)

    def clear(
        self, agent: str | None = None, path: Path | None = None
    ) -> tuple[set[Path], dict[str, list[Finding]]]:
        """Drop findings (of one agent, about one file, or both; everything when neither).

        Returns the files whose findings changed and, per agent touched, what remains for it
        (the caller persists that with the agent's run record).
        """
        changed: set[Path] = set()
        remaining: dict[str, list[Finding]] = {}
        for name, entry in self._by_agent.items():
            if agent is not None and name != agent:
                continue
            kept = [f for f in entry.findings if path is not None and f.path != path]
            if len(kept) != len(entry.findings):
                changed |= {f.path for f in entry.findings if f not in kept}
                entry.findings = kept
                remaining[name] = kept
        return changed, remaining

    def for_path(self, path: Path) -> list[Finding]:
        """Every current finding about one file, by agent name then position."""
        out: list[Finding] = []
        for name in sorted(self._by_agent):
            out.extend(f for f in self._by_agent[name].findings if f.path == path)
        return out

    def run_of(self, agent: str) -> str | None:
        """The run whose findings an agent currently shows."""
        entry = self._by_agent.get(agent)
        return entry.run_id if entry else None

    def count(self) -> int:
        """How many findings are held."""
        return sum(len(e.findings) for e in self._by_agent.values())


def _paths(entry: _AgentFindings | None) -> set[Path]:
    return {f.path for f in entry.findings} if entry else set()


def restore(
    records: Iterable[tuple[str, str, list[dict[str, Any]]]],
) -> list[tuple[str, str, list[Finding]]]:
    """Findings of ``(agent, run_id, findings dicts)`` read back from history; entries that no
    longer read are skipped."""
    out = []
    for agent, run_id, raw in records:
        findings = [
            f for d in raw if isinstance(d, dict) and (f := Finding.from_dict(d, agent, run_id))
        ]
        out.append((agent, run_id, findings))
    return out


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def locate_fix(text: str, finding: Finding) -> tuple[int, int, int, int] | None:
    """Where a finding's ``fix.old_text`` is in ``text``: ``(line, column, end_line, end_column)``.

    The first occurrence at or after the start of the finding's line wins, else the first in the
    file; None when the text is not there any more (the file changed since the run). Lines are
    0-based and split as LSP splits them; columns count code points.
    """
    if finding.fix is None:
        return None
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    line = min(finding.line, len(starts) - 1)
    index = text.find(finding.fix.old_text, starts[line])
    if index < 0:
        index = text.find(finding.fix.old_text)
    if index < 0:
        return None
    end = index + len(finding.fix.old_text)

    def position(offset: int) -> tuple[int, int]:
        n = bisect.bisect_right(starts, offset) - 1
        return n, offset - starts[n]

    return (*position(index), *position(end))

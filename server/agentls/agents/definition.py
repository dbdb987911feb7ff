"""An agent definition: a Markdown file with YAML front matter whose body is the system prompt.

``AgentDefinition`` is a frozen value; ``Problem`` is one thing wrong with a file, positioned so the
LSP layer can publish it as a diagnostic. Parsing never raises on bad input: it returns problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning", "information", "hint"]
IncludeKind = Literal["selection", "active_file", "open_files"]
INCLUDE_KINDS: tuple[str, ...] = ("selection", "active_file", "open_files")
OUTPUT_KINDS: tuple[str, ...] = ("markdown", "diagnostics", "text")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition file. Lines and columns are 0-based (LSP style)."""

    message: str
    line: int = 0
    column: int = 0
    end_line: int | None = None
    end_column: int | None = None
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        """The protocol form used in ``agentls.agents.list``."""
        return {
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class AgentDefinition:
    """A parsed agent. Optional limits are None when the file leaves them to the configuration."""

    name: str
    source: Path
    body: str
    """The system prompt template: the Markdown after the front matter."""
    description: str = ""
    backend: str | None = None
    model: str | None = None
    context: tuple[str, ...] = ()
    """Globs relative to the workspace folder; a leading ``!`` excludes."""
    include: tuple[str, ...] = ()
    """Editor state to attach: any of ``selection``, ``active_file``, ``open_files``."""
    max_files: int | None = None
    max_context_tokens: int | None = None
    timeout: float | None = None
    output: str = "markdown"
    tools: tuple[str, ...] = ()
    """Accepted for compatibility with other tools' formats; agentls runs no tools itself."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown front-matter keys, kept and reported as hints."""
    body_line: int = 0
    """0-based line where the body starts in the file."""

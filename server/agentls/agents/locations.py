"""Where agent definition files live: the one list every other part reads.

The registry's walk, the watcher's filter, the default agent names and the VS Code extension's
file watcher and activation events all come from ``LOCATIONS`` (the extension's copy is generated
from it and a test keeps the two equal: ``python -m agentls.agents.locations`` prints it). Four
formats share the four places:

- ``.agents/**/*.md``: agentls' own format.
- ``.claude/agents/**/*.md``: Claude Code subagents; collections install them in category folders.
- ``.github/agents/*.md``: GitHub Copilot custom agents (``*.agent.md``, or any ``*.md`` that has
  front matter, as GitHub's own tooling writes them).
- ``.github/prompts/*.prompt.md``: Copilot prompt files, run as agents named after the file.

Names that start with ``.`` are never definitions (hidden folders and files, editor lock files),
and neither are ``README.md``, ``CLAUDE.md`` and ``AGENTS.md``, which sit beside agents to describe
them. Nothing here touches the disk.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["agentls", "claude", "copilot", "copilot-prompt"]


@dataclass(frozen=True)
class Location:
    """One place definitions live, relative to a workspace folder."""

    directory: str
    """POSIX path of the folder, relative to the workspace folder."""
    suffix: str
    """File names that count end with this (and have something before it)."""
    recursive: bool
    """Whether subfolders (not hidden ones) are searched too."""
    format: Format
    """Whose format the files are in; decides the default name, the keys and the variables."""

    def matches_name(self, name: str) -> bool:
        """Whether a file called ``name`` in this location (or a subfolder) is a definition."""
        return (
            name.endswith(self.suffix)
            and len(name) > len(self.suffix)
            and not name.startswith(".")
            and name.lower() not in NOT_AGENTS
        )

    @property
    def glob(self) -> str:
        """The location as a glob, for file watchers and documentation."""
        return f"{self.directory}/{'**/' if self.recursive else ''}*{self.suffix}"


LOCATIONS: tuple[Location, ...] = (
    Location(".agents", ".md", True, "agentls"),
    Location(".claude/agents", ".md", True, "claude"),
    Location(".github/agents", ".md", False, "copilot"),
    Location(".github/prompts", ".prompt.md", False, "copilot-prompt"),
)
"""Every place definitions live, in precedence order: when one agent is defined in two formats
(a repository serving both Claude Code and Copilot), the file in the earlier location is used."""

DEFINITION_GLOBS: tuple[str, ...] = tuple(location.glob for location in LOCATIONS)
"""The locations as globs relative to a workspace folder."""

NOT_AGENTS: frozenset[str] = frozenset({"readme.md", "claude.md", "agents.md"})
"""File names (compared in lower case) that describe agents rather than define one."""

COPILOT_FORMATS: frozenset[str] = frozenset({"copilot", "copilot-prompt"})
"""Formats whose bodies use Copilot's ``${...}`` variables."""

LOCATION_PARENTS: frozenset[str] = frozenset(
    "/".join(location.directory.split("/")[:i])
    for location in LOCATIONS
    for i in range(1, location.directory.count("/") + 2)
)
"""Relative paths whose creation, deletion or move adds or removes definition files wholesale."""

LOCATION_ROOTS: frozenset[str] = frozenset(loc.directory.split("/")[0] for loc in LOCATIONS)
"""First path components under which definitions can live (a cheap filter for change storms)."""


def location_of(rel_posix: str) -> Location | None:
    """The location a path relative to a workspace folder is a definition file of, if any.

    Works on the path as written (a path through a symlinked folder is judged by the link's
    name, as Claude Code and Copilot judge it). Hidden names anywhere below the location, empty
    or ``..`` parts, backslashes and the ``NOT_AGENTS`` names never match.
    """
    if "\\" in rel_posix:
        return None
    parts = rel_posix.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    name = parts[-1]
    if name.startswith(".") or name.lower() in NOT_AGENTS:
        return None
    for location in LOCATIONS:
        top = location.directory.split("/")
        if parts[: len(top)] != top:
            continue
        inner = parts[len(top) :]
        if not inner or (len(inner) > 1 and not location.recursive):
            continue
        if any(part.startswith(".") for part in inner[:-1]):
            continue
        if location.matches_name(name):
            return location
    return None


def is_definition_path(rel_posix: str) -> bool:
    """Whether a path relative to a workspace folder is where a definition file lives."""
    return location_of(rel_posix) is not None


def may_hold_definitions(rel_posix: str) -> bool:
    """A definition file, or a folder whose creation, move or deletion changes the definitions."""
    if rel_posix in LOCATION_PARENTS or is_definition_path(rel_posix):
        return True
    return any(
        location.recursive and rel_posix.startswith(location.directory + "/")
        for location in LOCATIONS
    )


def format_of(source: Path) -> Format:
    """The format of a definition file judged from its path alone (the deepest location in it).

    For callers that parse a file without knowing which location it was found in; the registry
    passes the location it walked instead.
    """
    parts = source.parts
    found: Format = "agentls"
    for i in range(len(parts) - 1):
        for location in LOCATIONS:
            top = tuple(location.directory.split("/"))
            if parts[i : i + len(top)] == top and i + len(top) < len(parts):
                found = location.format
    return found


def default_name(source: Path) -> str:
    """The name of an agent whose file sets none: the file name without its format's suffix."""
    name = source.name
    for suffix in (".agent.md", ".prompt.md", ".md"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return source.stem or name


def extension_locations() -> dict[str, object]:
    """What the VS Code extension needs: the watcher glob and one activation event per location."""
    return {
        "watchGlob": "**/{" + ",".join(DEFINITION_GLOBS) + "}",
        "activationEvents": [f"workspaceContains:{glob}" for glob in DEFINITION_GLOBS],
    }


def extension_source() -> str:
    """The TypeScript module ``vscode-extension/src/locations.ts`` (generated; do not edit it)."""
    data = extension_locations()
    return (
        "// Generated by `python -m agentls.agents.locations`; do not edit.\n"
        "// Where agent definitions live (server/agentls/agents/locations.py).\n"
        f"export const AGENT_FILES_GLOB = {json.dumps(data['watchGlob'])};\n"
    )


if __name__ == "__main__":
    sys.stdout.write(extension_source())

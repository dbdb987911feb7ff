"""Tool names in agent files, read in any shape and mapped to a few canonical groups.

Claude Code writes ``tools: Read, Grep, Bash(npm test:*), Agent(a, b)``; Copilot writes
``tools: ['codebase', 'edit/editFiles', 'github/*']``; other tools write a mapping of names to
booleans. Nothing here can make an agent invalid: ``read_tools`` returns the names it could read
and, for a shape it could not, a sentence for a hint. ``tool_groups`` maps names to the groups
``read``, ``search``, ``edit``, ``execute``, ``web``, ``agent``, ``todo`` and ``mcp`` (MCP servers'
tools), which is what ``agents.list`` shows; a run is granted those of ``OFFERED_GROUPS`` among
them (``agentls.tools.toolbox.granted_groups``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

GROUPS: tuple[str, ...] = ("read", "search", "edit", "execute", "web", "agent", "todo", "mcp")
"""The canonical groups, in the order ``tool_groups`` lists them."""

OFFERED_GROUPS: tuple[str, ...] = ("read", "search", "edit")
"""The groups agentls has tools for (``agentls.tools.toolbox``); the others are never granted."""

TOOLS: dict[str, str] = {
    # Claude Code
    "Read": "read",
    "Grep": "search",
    "Glob": "search",
    "LS": "search",
    "Edit": "edit",
    "MultiEdit": "edit",
    "Write": "edit",
    "NotebookEdit": "edit",
    "NotebookRead": "read",
    "Bash": "execute",
    "BashOutput": "execute",
    "KillShell": "execute",
    "KillBash": "execute",
    "WebFetch": "web",
    "WebSearch": "web",
    "Task": "agent",
    "Agent": "agent",
    "TodoWrite": "todo",
    # Copilot's aliases and tool sets
    "read": "read",
    "search": "search",
    "edit": "edit",
    "execute": "execute",
    "web": "web",
    "agent": "agent",
    "todo": "todo",
    "todos": "todo",
    # Copilot's older names
    "codebase": "search",
    "usages": "search",
    "findTestFiles": "search",
    "searchResults": "search",
    "textSearch": "search",
    "fileSearch": "search",
    "listDirectory": "search",
    "readFile": "read",
    "problems": "read",
    "changes": "read",
    "terminalLastCommand": "read",
    "terminalSelection": "read",
    "testFailure": "read",
    "editFiles": "edit",
    "createFile": "edit",
    "createDirectory": "edit",
    "new": "edit",
    "editNotebook": "edit",
    "runInTerminal": "execute",
    "runCommands": "execute",
    "runTasks": "execute",
    "runTests": "execute",
    "runNotebooks": "execute",
    "getTerminalOutput": "execute",
    "fetch": "web",
    "githubRepo": "web",
    "openSimpleBrowser": "web",
    "runSubagent": "agent",
}
"""Known tool names as their tool spells them, and their group (completion offers these)."""

_NAMES: dict[str, str] = {name.lower(): group for name, group in TOOLS.items()}
"""Known tool names (lower case) and their group: names are matched whatever their case."""

_BUILTIN_PREFIXES = frozenset({"vscode", "copilot"})
"""``prefix/name`` forms that are editor built-ins rather than MCP servers."""


_ITEM = re.compile(r"(?:[^,(]|\([^)]*\)?)+")
"""One comma-separated item, parenthesised groups (``Agent(a, b)``) kept whole."""

_NESTED = re.compile(r"\([^)]*\(")


def split_tools(value: str) -> tuple[str, ...]:
    """Split ``Read, Grep, Agent(a, b)`` on commas outside parentheses."""
    if "(" not in value:
        return tuple(item for item in (part.strip() for part in value.split(",")) if item)
    if _NESTED.search(value) is None:  # one level of parentheses: a regular expression will do
        return tuple(item for m in _ITEM.finditer(value) if (item := m.group().strip()))
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for char in value:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return tuple(item for item in items if item)


def read_tools(value: object) -> tuple[tuple[str, ...], str | None]:
    """The tool names of a ``tools`` value and, when part of it could not be read, why.

    A string is split on top-level commas; a list keeps its string items; a mapping keeps the
    names not switched off (``{Bash: false}`` leaves Bash out). Anything else reads as no tools.
    """
    if isinstance(value, str):
        return split_tools(value), None
    if isinstance(value, list):
        names = [item.strip() for item in value if isinstance(item, str) and item.strip()]
        skipped = len(value) - len(names)
        why = f"{skipped} of its entries are not names" if skipped else None
        return tuple(names), why
    if isinstance(value, Mapping):
        names = [
            str(key).strip()
            for key, enabled in value.items()
            if isinstance(key, str) and key.strip() and enabled is not False
        ]
        return tuple(names), None
    return (), "not a list, a comma-separated string or a mapping"


def group_of(name: str) -> str | None:
    """The canonical group of one tool name, or None for a name agentls does not know."""
    base = name.strip()
    paren = base.find("(")
    if paren > 0:  # Bash(npm test:*), Agent(worker, researcher)
        base = base[:paren].strip()
    lowered = base.lower()
    if lowered.startswith("mcp__"):  # Claude Code's name for an MCP server's tool
        return "mcp"
    if "/" in lowered:
        prefix, _, leaf = lowered.partition("/")
        if prefix in GROUPS and prefix != "mcp":
            return prefix
        if prefix in _BUILTIN_PREFIXES:
            return _NAMES.get(leaf)
        return "mcp"
    return _NAMES.get(lowered)


def tool_groups(names: Iterable[str]) -> tuple[str, ...]:
    """The canonical groups of some tool names, each once, in ``GROUPS`` order."""
    found = {group for name in names if (group := group_of(name)) is not None}
    return tuple(group for group in GROUPS if group in found)

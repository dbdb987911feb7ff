"""How a YAML value reads to a user, for the messages of every front-matter check.

Shared by the definition format (``agents.definition``), recipe steps (``agents.recipe``) and
Copilot handoffs (``agents.handoffs``), so a wrong value is described the same way wherever it
is written.
"""

from __future__ import annotations

from datetime import date


def kind(value: object) -> str:
    """``a string``, ``a list``, ``null``...: what the YAML value is, as a user would say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean (YAML reads yes/no/on/off/true/false as booleans)"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__

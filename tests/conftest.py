"""Suite-wide marks: which tests are ``slow``, so ``-m "not slow"`` gives a quick check.

The README's test command runs everything; ``-m "not slow"`` leaves out the parts that take
minutes on a 2-core machine: the real VS Code session and the extension's toolchain (tests/vscode),
``agentls bench --quick`` (tests/bench), the hardening catalogue (tests/hardening: raw servers in
asyncio debug mode, kill -9 rounds, Hypothesis sequences) and the pytest-lsp end-to-end suite
(tests/e2e: a server process per test, with both client capability sets). The quick check keeps
the unit tests, ruff and mypy, and tests/security (attacks replayed through the real server). A
slow test elsewhere carries ``@pytest.mark.slow`` itself.
"""

from __future__ import annotations

import pytest

SLOW_FOLDERS = frozenset({"vscode", "bench", "hardening", "e2e"})
"""Folders under tests/ whose every test is slow."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FOLDERS.intersection(item.path.parts[-3:-1]):
            item.add_marker(pytest.mark.slow)

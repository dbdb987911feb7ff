"""Inputs the fuzzers found, replayed on every run (P8/P9: counterexamples become tests).

``regressions/*.bin`` are whole stdio inputs from ``fuzz_stdio`` (sent after a normal
``initialize``); each once made the server misbehave:

- ``stdio-never-retrieved.bin``: a command failed after its request had been answered and the
  session ended on a framing error; asyncio logged "Task exception was never retrieved".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.conftest import make_workspace
from tests.hardening.fuzz_stdio import one

CASES = sorted((Path(__file__).parent / "regressions").glob("*.bin"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_fuzz_case(case: Path, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    assert one(case.read_bytes(), tmp_path / "srv", workspace) is None

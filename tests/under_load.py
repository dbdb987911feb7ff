"""Run the test suite on a loaded machine: one busy process per core, several rounds in a row.

    .venv/bin/python -m tests.under_load [--rounds 3] [--hogs N] [-- PYTEST ARGS...]

A test that passes only on a quiet machine fails CI on a shared one, so this is how the suite is
checked for flakiness: it starts ``--hogs`` processes (default: one per core) that spin on the
CPU at normal priority, runs ``python -m pytest -q`` (plus the given arguments) ``--rounds`` times,
stops the hogs, and prints one line per round with pytest's summary and the time it took. It exits
0 only if every round passed. The hogs end with this process, even if it is killed: each one
watches its parent and exits when it is gone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_HOG = """
import os, sys, time
parent = int(sys.argv[1])
n = 0
while True:
    n += 1
    if n % 2_000_000 == 0 and os.getppid() != parent:
        break
"""
"""A busy loop that checks now and then whether the process that started it is still there."""


def _start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", _HOG, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def _stop(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.kill()
    for hog in hogs:
        hog.wait()


def _summary(output: str) -> str:
    """pytest's closing line (``N passed, ... in S``), or the last line when there is none."""
    lines = [line.strip("= ") for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if " passed" in line or " failed" in line or " error" in line:
            return line
    return lines[-1] if lines else "(no output)"


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the rounds under load, and report."""
    parser = argparse.ArgumentParser(prog="python -m tests.under_load", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="how many runs of the suite")
    parser.add_argument(
        "--hogs", type=int, default=os.cpu_count() or 1, help="busy processes (default: cores)"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args]
    print(f"{args.hogs} CPU hog(s) on {os.cpu_count()} core(s); {' '.join(command[1:])}")
    results: list[tuple[int, str, float]] = []
    hogs = _start_hogs(args.hogs)
    try:
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
            took = time.monotonic() - started
            summary = _summary(done.stdout)
            results.append((done.returncode, summary, took))
            print(f"round {round_no}: exit {done.returncode}, {summary} ({took:.0f} s)", flush=True)
            if done.returncode != 0:
                failed = [
                    ln for ln in done.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))
                ]
                print("\n".join(failed[:20]) or done.stdout[-3000:], flush=True)
    finally:
        _stop(hogs)
    passed = sum(1 for code, _, _ in results if code == 0)
    print(f"{passed} of {len(results)} rounds passed under load")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Plant known defects one at a time and check that the fast tests catch each of them.

Usage (from the repository root, in the project's virtual environment):

    python tests/mutation/run_mutants.py                 # every mutant in mutants.toml
    python tests/mutation/run_mutants.py --check         # only check that each still applies
    python tests/mutation/run_mutants.py --area trust --only cache-size-ignored
    python tests/mutation/run_mutants.py --json result.json

Each mutant in ``mutants.toml`` is a text edit (``find`` -> ``replace``) of one file under
``server/``, and the tests that must fail once it is applied. The run works on a copy of the
repository in a temporary folder, never on the working tree: the copy's ``server/`` is put first on
``PYTHONPATH`` (the editable install still points at the working tree, so the runner checks that
the copy is what gets imported), bytecode is never written, and every file is restored after its
mutant, whatever happened. A mutant is

* ``killed`` when its tests fail (or hang past ``--timeout``: a hang is caught too);
* ``survived`` when they pass: a missing test, unless the entry says why that is acceptable
  (``accepted``: an equivalent mutant, or one that fails closed);
* ``not applied`` when its ``find`` text is no longer in the file exactly once (the code moved on:
  update the entry), which is reported, never a crash.

This is not part of the test suite (pytest does not collect it: the file is not named
``test_*.py``) and not of CI: a full run takes minutes. The exit status is 1 when an unaccepted
mutant survived or a run could not be judged, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = Path(__file__).with_name("mutants.toml")
COPIED = ("server", "tests", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "node_modules", ".mypy*")


@dataclass(frozen=True)
class Edit:
    """One text replacement in one file."""

    find: str
    replace: str


@dataclass(frozen=True)
class Mutant:
    """A planted defect and the tests expected to catch it."""

    id: str
    area: str
    file: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]
    what: str = ""
    accepted: str = ""


@dataclass
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    result: str
    """``killed``, ``survived``, ``accepted`` (a survivor with a reason), ``not applied``,
    ``error``."""
    detail: str = ""
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)


def load_catalogue(path: Path) -> list[Mutant]:
    """The mutants of the catalogue, checked for the fields every entry needs."""
    with path.open("rb") as f:
        raw = tomllib.load(f)
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for entry in raw.get("mutant", []):
        mid = entry["id"]
        if mid in seen:
            raise SystemExit(f"{path.name}: duplicate mutant id {mid!r}")
        seen.add(mid)
        edits = [Edit(e["find"], e["replace"]) for e in entry.get("edit", [])]
        if "find" in entry:
            edits.insert(0, Edit(entry["find"], entry["replace"]))
        if not edits or not entry.get("tests"):
            raise SystemExit(f"{path.name}: mutant {mid!r} needs an edit and tests")
        mutants.append(
            Mutant(
                id=mid,
                area=entry["area"],
                file=entry["file"],
                edits=tuple(edits),
                tests=tuple(entry["tests"]),
                what=entry.get("what", ""),
                accepted=entry.get("accepted", ""),
            )
        )
    return mutants


def mutate(text: str, edits: tuple[Edit, ...]) -> tuple[str | None, str]:
    """The text with every edit applied, or None and why when one does not apply exactly once."""
    for edit in edits:
        count = text.count(edit.find)
        if count != 1:
            where = edit.find.strip().splitlines()[0][:60] if edit.find.strip() else "(empty)"
            state = "not found" if count == 0 else f"found {count} times"
            return None, f"target text {state}: {where!r}"
        text = text.replace(edit.find, edit.replace)
    return text, ""


def copy_repository(dest: Path) -> None:
    """Copy what the tests need (never the virtual environment or caches)."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=IGNORED, symlinks=True)
        else:
            shutil.copy2(src, dest / name)


def environment(copy: Path) -> dict[str, str]:
    """The tests' environment: the copy's package first, no bytecode written or reused."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(copy / "server"), str(copy), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def imported_from(copy: Path, env: dict[str, str]) -> Path:
    """Where ``agentls`` is imported from with this environment (must be inside the copy)."""
    out = subprocess.run(
        [sys.executable, "-c", "import agentls; print(agentls.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).resolve()


def run_tests(
    copy: Path, env: dict[str, str], tests: tuple[str, ...], timeout: float
) -> tuple[int | None, str]:
    """Run pytest on ``tests`` in the copy; the exit code (None on a hang) and the output."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-o",
        "console_output_style=classic",
        *tests,
    ]
    # Output goes to a file, not a pipe: programs a broken mutant leaves running may hold the
    # pipe open long after pytest itself has finished.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=copy,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a hang is stopped with everything in its session
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        log.seek(0)
        return code, log.read()


def kill_strays(copy: Path) -> int:
    """Kill what a mutant's tests left running: agent programs from the copy, in their own
    sessions (a mutant that breaks cancellation leaves them behind by design); how many."""
    marker = str(copy)
    killed = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(marker in part for part in cmdline):
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed += 1
    return killed


def failed_tests(output: str) -> list[str]:
    """The ``FAILED``/``ERROR`` lines of pytest's short summary, as test ids."""
    names = []
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            names.append(line.split()[1])
    return names


def judge(
    mutant: Mutant, copy: Path, env: dict[str, str], timeout: float, check_only: bool
) -> Outcome:
    """Apply one mutant in the copy, run its tests, restore the file whatever happens."""
    target = copy / mutant.file
    if not target.is_file():
        return Outcome(mutant, "not applied", f"no file {mutant.file}")
    original = target.read_text(encoding="utf-8")
    mutated, why = mutate(original, mutant.edits)
    if mutated is None:
        return Outcome(mutant, "not applied", why)
    if check_only:
        return Outcome(mutant, "applies")
    started = time.monotonic()
    try:
        target.write_text(mutated, encoding="utf-8")
        code, output = run_tests(copy, env, mutant.tests, timeout)
    finally:
        target.write_text(original, encoding="utf-8")
        stray = kill_strays(copy)
    seconds = time.monotonic() - started
    if stray:
        print(f"  ({stray} process(es) left by the tests were killed)", flush=True)
    if code is None:
        return Outcome(mutant, "killed", f"tests hung past {timeout:g} s", seconds)
    if code == 1:
        return Outcome(mutant, "killed", "", seconds, failed_tests(output))
    if code == 0:
        if mutant.accepted:
            return Outcome(mutant, "accepted", mutant.accepted, seconds)
        return Outcome(mutant, "survived", "", seconds)
    tail = "\n".join(output.strip().splitlines()[-5:])
    return Outcome(mutant, "error", f"pytest exit {code}: {tail}", seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE)
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutants only")
    parser.add_argument("--area", help="run the mutants of one area only (substring match)")
    parser.add_argument("--check", action="store_true", help="only check that mutants apply")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant's tests")
    parser.add_argument("--json", type=Path, help="also write the outcomes as JSON here")
    args = parser.parse_args(argv)

    mutants = load_catalogue(args.catalogue)
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            parser.error(f"unknown mutant id(s): {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m.id in args.only]
    if args.area:
        mutants = [m for m in mutants if args.area.lower() in m.area.lower()]
    if args.list:
        for m in mutants:
            print(f"{m.id:40} {m.area:24} {m.file}")
        return 0

    with tempfile.TemporaryDirectory(prefix="agentls-mutants-") as tmp:
        copy = Path(tmp)
        copy_repository(copy)
        env = environment(copy)
        origin = imported_from(copy, env)
        if not origin.is_relative_to(copy.resolve()):
            print(f"agentls is imported from {origin}, not from the copy", file=sys.stderr)
            return 2
        if not args.check:
            tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
            print(f"baseline: {len(tests)} test selection(s), unmutated ...", flush=True)
            code, output = run_tests(copy, env, tests, args.timeout * 4)
            if code != 0:
                print(output[-4000:])
                print("the tests fail without any mutant; fix that first", file=sys.stderr)
                return 2
        outcomes = []
        for i, mutant in enumerate(mutants, 1):
            outcome = judge(mutant, copy, env, args.timeout, args.check)
            outcomes.append(outcome)
            print(
                f"[{i:>3}/{len(mutants)}] {outcome.result:11} {mutant.id:40} "
                f"{outcome.seconds:6.1f}s  {outcome.detail or ', '.join(outcome.failed[:1])}",
                flush=True,
            )
    return report(outcomes, args.json)


def report(outcomes: list[Outcome], json_path: Path | None) -> int:
    """Print the summary (and survivors); write JSON if asked; the exit status."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    print("\n" + ", ".join(f"{n} {result}" for result, n in sorted(counts.items())))
    for o in outcomes:
        if o.result in ("survived", "error", "not applied"):
            print(f"  {o.result}: {o.mutant.id} ({o.mutant.file}) {o.detail}".rstrip())
    if json_path is not None:
        data: list[dict[str, Any]] = [
            {
                "id": o.mutant.id,
                "area": o.mutant.area,
                "file": o.mutant.file,
                "result": o.result,
                "detail": o.detail,
                "failed": o.failed,
                "seconds": round(o.seconds, 1),
            }
            for o in outcomes
        ]
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 1 if counts.get("survived") or counts.get("error") else 0


if __name__ == "__main__":
    raise SystemExit(main())

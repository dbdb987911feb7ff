"""The agent registry: the one owner of the agent definitions currently known.

It knows which definition files each workspace folder holds (found by walking only the three
``DEFINITION_GLOBS`` locations, never the whole tree), what each file parsed to, and the problems of
each file once cross-file rules are applied: duplicate names and backends the configuration does not
define. A broken file is an entry with problems, never an exception, and never stops the others
loading. Open editor buffers win over disk until the caller says the buffer is gone.

All methods that change state are meant to run on the event loop. The reading half is split out
(``scan_folder``, ``read_definition``): pure functions over immutable results that a worker thread
may run, whose results ``AgentRegistry.apply_scan`` then swaps in on the loop. The LSP layer turns
``Problem`` into diagnostics; nothing here knows about LSP.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentls.agents.definition import (
    AgentDefinition,
    ParseResult,
    Problem,
    Span,
    default_name,
    is_definition_path,
    parse_definition,
)
from agentls.errors import InvalidAgent, UnknownAgent
from agentls.workspace.reader import RawFile, read_regular

logger = logging.getLogger(__name__)

MAX_DEFINITION_BYTES = 1024 * 1024
"""A definition file larger than this is not read: a system prompt is text a person wrote."""

MAX_FILES_PER_FOLDER = 10_000
"""Walking stops after this many definition files in one folder, so a runaway tree cannot stall."""

_LOCATIONS: tuple[str, ...] = (".agents", ".claude/agents", ".github/agents")
"""The directories the walk visits; only ``.agents`` is walked recursively."""

_LOCATION_PARENTS = frozenset({".agents", ".claude", ".claude/agents", ".github", ".github/agents"})
"""Relative paths whose creation, deletion or move can add or remove definition files wholesale."""


@dataclass(frozen=True)
class AgentEntry:
    """One definition file as the registry sees it, cross-file problems included."""

    name: str
    source: Path
    definition: AgentDefinition | None
    """None when the file itself did not parse; set (but not runnable) on cross-file errors."""
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        """Whether the agent can run: no error-severity problem (hints, warnings do not count)."""
        return self.definition is not None and not any(p.severity == "error" for p in self.problems)

    def to_dict(self, display: Callable[[Path], str]) -> dict[str, Any]:
        """The ``agentls.agents.list`` form; ``display`` turns the source into what the user reads.

        Problems are ``"line N: message"`` strings (1-based lines) so terminal users can read them;
        anything milder than an error says so, because it does not stop the agent running.
        """
        d = self.definition
        return {
            "name": self.name,
            "description": d.description if d else "",
            "backend": d.backend if d else None,
            "model": d.model if d else None,
            "source": display(self.source),
            "valid": self.valid,
            "problems": [problem_text(p) for p in self.problems],
        }


def problem_text(problem: Problem) -> str:
    """A problem as one readable line: ``line 3: message`` (``line 3: hint: message`` if milder)."""
    if problem.severity == "error":
        return f"line {problem.line + 1}: {problem.message}"
    return f"line {problem.line + 1}: {problem.severity}: {problem.message}"


@dataclass(frozen=True)
class FolderScan:
    """What one folder's definition files parsed to; built off the loop, applied on it."""

    folder: Path
    """A realpath."""
    files: Mapping[Path, ParseResult]
    real: Mapping[Path, Path] = field(default_factory=dict)
    """Each file's realpath, so a file reached through two symlinks counts once."""
    texts: Mapping[Path, str] = field(default_factory=dict)
    """The text each file was parsed from (diagnostics are positioned against it)."""


def canonical(path: Path) -> Path:
    """The key a definition file is known by: its directory resolved, its own name kept.

    Resolving the directory makes editor paths and walked paths agree (``/tmp`` vs
    ``/private/tmp``); keeping the name means a symlinked definition file is still known by the
    name it has in the definition location, not by its target's.
    """
    return Path(os.path.realpath(path.parent)) / path.name


def read_definition(
    path: Path, within: Sequence[Path], max_bytes: int = MAX_DEFINITION_BYTES
) -> str | Problem | None:
    """The text of a definition file, a Problem saying why it cannot be had, or None if missing.

    Read through the safe reader (``workspace.reader``), so the rules are the same at start-up
    and on every reload the watcher or a save triggers: a symlink is followed only to a target
    inside ``within`` that is not on the deny-list (``.agents/reviewer.md -> ../.env`` and a late
    ``.agents/late.md -> ~/.ssh/id_rsa`` are refused, as None: no agent, like a missing file);
    a FIFO or device is a Problem, never a hang; a file over ``max_bytes`` is not read.
    """
    got = read_regular(path, max_bytes=max_bytes, within=within, follow_symlink=True)
    if isinstance(got, RawFile):
        return decode_definition(got.data)
    if got in ("missing", "outside_workspace", "secret"):
        if got != "missing":
            logger.info("%s is not read as an agent definition: %s", path, got.replace("_", " "))
        return None
    if got == "not_a_file":
        return Problem("not a regular file; an agent definition must be a plain text file")
    if got == "too_large":
        return _too_large(max_bytes)
    return Problem("cannot read this file")


def decode_definition(data: bytes) -> str | Problem:
    """UTF-8 text, or a Problem placed at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start)
        line_start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[line_start : e.start].decode("utf-8", "replace"))
        return Problem(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x}); an agent definition must be UTF-8 text",
            line,
            column,
            line,
            column + 1,
        )


def _too_large(max_bytes: int) -> Problem:
    return Problem(
        f"this file is larger than {max_bytes // 1024} KiB, the limit for an agent definition; "
        "it was not read"
    )


def _size_problem(text: str, max_bytes: int) -> Problem | None:
    """The size limit applied to an editor buffer, measured as UTF-8 like a file on disk."""
    if len(text) <= max_bytes // 4:
        return None
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        return _too_large(max_bytes)
    return None


def parse_text(
    path: Path, text: str | Problem, max_bytes: int = MAX_DEFINITION_BYTES
) -> ParseResult:
    """Parse a definition's text, or turn a read failure into an entry that carries it."""
    if isinstance(text, str):
        problem = _size_problem(text, max_bytes)
        if problem is None:
            return parse_definition(text, path)
        text = problem
    return ParseResult(default_name(path), None, (text,), name_known=False)


def definition_files(folder: Path) -> list[Path]:
    """Every definition file of a (realpath) folder, sorted, found by walking the three locations.

    Symlinked directories are not followed (the walk could otherwise leave the folder or loop);
    symlinked files are kept when their target is inside the folder.
    """
    found: list[Path] = []

    def consider(directory: str, name: str) -> None:
        path = Path(directory) / name
        rel = path.relative_to(folder).as_posix()
        if not is_definition_path(rel):
            return
        if not Path(os.path.realpath(path)).is_relative_to(folder):
            logger.info("skipping %s: it links outside the workspace folder", rel)
            return
        found.append(path)

    for location in _LOCATIONS:
        top = folder / location
        if os.path.islink(top) or not top.is_dir() or os.path.realpath(top) != str(top):
            continue
        if location == ".agents":
            for directory, dirnames, filenames in os.walk(
                top, onerror=_log_walk_error, followlinks=False
            ):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    consider(directory, name)
        else:
            try:
                names = sorted(entry.name for entry in os.scandir(top))
            except OSError as e:
                logger.warning("cannot list %s: %s", location, e.strerror)
                continue
            for name in names:
                consider(str(top), name)
        if len(found) >= MAX_FILES_PER_FOLDER:
            logger.warning(
                "more than %d agent definition files in %s; the rest are ignored",
                MAX_FILES_PER_FOLDER,
                folder,
            )
            break
    return sorted(found[:MAX_FILES_PER_FOLDER], key=str)


def _log_walk_error(error: OSError) -> None:
    """A folder the walk cannot list is skipped; say so, since its agents will be missing."""
    logger.warning("cannot list %s: %s", error.filename, error.strerror)


def scan_folder(folder: Path, max_bytes: int = MAX_DEFINITION_BYTES) -> FolderScan:
    """Read and parse every definition file of a folder. Pure: safe to run in a worker thread.

    A file reached twice through symlinks is kept once, under its lexically first path.
    """
    root = Path(os.path.realpath(folder))
    files: dict[Path, ParseResult] = {}
    real: dict[Path, Path] = {}
    texts: dict[Path, str] = {}
    seen: set[Path] = set()
    for path in definition_files(root):
        target = Path(os.path.realpath(path))
        if target in seen:
            continue
        text = read_definition(path, (root,), max_bytes)
        if text is None:  # deleted between the walk and the read, or refused
            continue
        seen.add(target)
        files[path] = parse_text(path, text, max_bytes)
        real[path] = target
        if isinstance(text, str):
            texts[path] = text
    return FolderScan(root, files, real, texts)


class AgentRegistry:
    """Owner of the definitions currently known, by file, with their problems.

    Every method that changes something returns the files whose problems changed (including files
    that went away while they had problems), which is exactly the set whose diagnostics need
    publishing again.
    """

    def __init__(self, *, max_bytes: int = MAX_DEFINITION_BYTES) -> None:
        self._max_bytes = max_bytes
        """Size limit of one definition file."""
        self._claims: dict[Path, set[Path]] = {}
        """Folder (realpath) -> the definition files it holds. A file may sit in nested folders."""
        self._parsed: dict[Path, ParseResult] = {}
        """File -> what its own text parsed to, before cross-file checks."""
        self._real: dict[Path, Path] = {}
        """File -> its realpath, to ignore a second path to a file already known."""
        self._buffers: dict[Path, str] = {}
        """Files whose editor buffer was given; it wins over disk until ``update(path, None)``."""
        self._texts: dict[Path, str] = {}
        """File -> the text it was last parsed from, so diagnostics need no second read."""
        self._backends: frozenset[str] | None = None
        """Backend names from the configuration; None until ``set_backends``, then checked."""
        self._default_backend: str | None = None
        self._entries: dict[Path, AgentEntry] = {}
        """File -> its entry with every problem; what callers see."""

    # -- changing what is known -------------------------------------------------------------

    def load_folder(self, folder: Path) -> set[Path]:
        """(Re)read each definition file of a workspace folder; return files whose problems changed.

        This reads files on the calling thread; to keep a large folder off the event loop, run
        ``scan_folder`` in a worker and pass the result to ``apply_scan``.
        """
        return self.apply_scan(scan_folder(folder, self._max_bytes))

    def apply_scan(self, scan: FolderScan) -> set[Path]:
        """Swap in a folder's scan. Open buffers keep winning over what the scan read from disk."""
        folder = scan.folder
        previous = self._claims.get(folder, set())
        files = dict(scan.files)
        real = dict(scan.real)
        texts = dict(scan.texts)
        for path, text in self._buffers.items():
            rel = _relative(path, folder)
            if rel is not None and is_definition_path(rel):
                files[path] = parse_text(path, text, self._max_bytes)
                real.setdefault(path, Path(os.path.realpath(path)))
                texts[path] = text
        self._claims[folder] = set(files)
        for path in previous - set(files):
            self._forget_if_unclaimed(path)
        self._parsed.update(files)
        self._real.update(real)
        for path in files:
            self._texts.pop(path, None)
        self._texts.update(texts)
        return self._refresh()

    def remove_folder(self, folder: Path) -> set[Path]:
        """Forget a workspace folder and its files (unless another known folder also holds them)."""
        files = self._claims.pop(Path(os.path.realpath(folder)), set())
        for path in files:
            self._forget_if_unclaimed(path)
        return self._refresh()

    def update(self, path: Path, text: str | None) -> set[Path]:
        """A definition file changed. Returns the files whose problems changed.

        ``text`` is the editor buffer, which then wins over disk; None re-reads the file from
        disk and stops preferring a buffer (call it on close, and for watcher events of files
        that are not open). A missing file is removed. A path that is not a definition file is
        ignored, except that creating, deleting or moving a definition directory rescans its
        folder.
        """
        key = canonical(path)
        folders = [f for f in self._claims if _is_definition_in(key, f)]
        if not folders:
            return self._rescan_for_directory(key) if text is None else set()
        target = Path(os.path.realpath(key))
        if any(p != key and r == target for p, r in self._real.items()):
            logger.debug("%s is another path to a known definition file; ignored", key)
            return set()
        if text is not None:
            self._buffers[key] = text
            result: ParseResult | None = parse_text(key, text, self._max_bytes)
        else:
            self._buffers.pop(key, None)
            # Judged against every known folder at this read, exactly as the start-up scan.
            read = read_definition(key, tuple(self._claims), self._max_bytes)
            result = None if read is None else parse_text(key, read, self._max_bytes)
            text = read if isinstance(read, str) else None
        if result is None:
            for f in folders:
                self._claims[f].discard(key)
            self._forget_if_unclaimed(key)
            return self._refresh()
        for f in folders:
            self._claims[f].add(key)
        self._parsed[key] = result
        self._real[key] = target
        if text is None:
            self._texts.pop(key, None)
        else:
            self._texts[key] = text
        return self._refresh()

    def set_backends(self, names: Collection[str], default: str | None) -> set[Path]:
        """Record the configured backend names and default, and revalidate every agent against them.

        From now on an agent naming an unknown backend, or naming none while there is no usable
        default, has an error on its ``backend`` key (or its first line).
        """
        self._backends = frozenset(names)
        self._default_backend = default
        return self._refresh()

    # -- reading ----------------------------------------------------------------------------

    def agents(self) -> list[AgentEntry]:
        """Every known entry, valid or not, sorted by name (then file)."""
        return sorted(self._entries.values(), key=lambda e: (e.name, str(e.source)))

    def get(self, name: str) -> AgentDefinition:
        """The runnable definition called ``name``.

        Raises ``UnknownAgent`` (listing the valid names) when there is none, and ``InvalidAgent``
        (naming the file and its first error) when it exists but cannot run.
        """
        candidates = sorted(
            (e for e in self._entries.values() if e.name == name), key=lambda e: str(e.source)
        )
        if not candidates:
            valid = sorted({e.name for e in self._entries.values() if e.valid})
            raise UnknownAgent(name, valid)
        known = [e for e in candidates if self._parsed[e.source].name_known]
        entry = (known or candidates)[0]
        if entry.valid and entry.definition is not None:
            return entry.definition
        first = next(p for p in entry.problems if p.severity == "error")
        raise InvalidAgent(
            f"agent {name!r} cannot run: {self._display(entry.source)} {problem_text(first)}"
        )

    def problems(self, path: Path) -> list[Problem]:
        """The problems of one definition file (empty when it has none or is not known)."""
        entry = self._entries.get(path) or self._entries.get(canonical(path))
        return list(entry.problems) if entry else []

    def text(self, path: Path) -> str | None:
        """The text a definition file was last parsed from (buffer or disk); None if unknown.

        Diagnostics are positioned against it, so publishing them never reads the file again.
        """
        return self._texts.get(path) or self._texts.get(canonical(path))

    def files(self) -> list[Path]:
        """Every definition file known, sorted: the files diagnostics are published for."""
        return sorted(self._entries, key=str)

    # -- internals --------------------------------------------------------------------------

    def _forget_if_unclaimed(self, path: Path) -> None:
        if any(path in files for files in self._claims.values()):
            return
        self._parsed.pop(path, None)
        self._real.pop(path, None)
        self._buffers.pop(path, None)
        self._texts.pop(path, None)

    def _rescan_for_directory(self, key: Path) -> set[Path]:
        """Rescan folders where ``key`` is a definition directory or holds known definition files.

        A watcher reports a moved or deleted directory once, not once per file inside it.
        """
        changed: set[Path] = set()
        for folder in list(self._claims):
            rel = _relative(key, folder)
            if rel is None:
                continue
            holds_known = any(p.is_relative_to(key) for p in self._claims[folder])
            if holds_known or rel in _LOCATION_PARENTS or rel.startswith(".agents/"):
                changed |= self.load_folder(folder)
        return changed

    def _display(self, path: Path) -> str:
        """A file as users read it: relative to its folder, prefixed by the folder if several."""
        for folder, files in self._claims.items():
            if path in files:
                rel = path.relative_to(folder).as_posix()
                return f"{folder.name}/{rel}" if len(self._claims) > 1 else rel
        return str(path)

    def _backend_problem(self, result: ParseResult, definition: AgentDefinition) -> Problem | None:
        backends = self._backends
        if backends is None:
            return None
        configured = ", ".join(sorted(backends)) if backends else "none are configured"
        if definition.backend is not None:
            if definition.backend in backends:
                return None
            span = result.spans.get("backend") or Span(0, 0, 0, 3)
            return span.problem(
                f"unknown backend {definition.backend!r}; configured backends: {configured}"
            )
        default = self._default_backend
        if default is None:
            message = (
                "no backend: name one with `backend:` or set `default_backend` in the "
                f"configuration (configured backends: {configured})"
            )
        elif default not in backends:
            message = (
                f"the default backend {default!r} is not configured; name one with `backend:` "
                f"(configured backends: {configured})"
            )
        else:
            return None
        return Problem(message, 0, 0, 0, 3)

    def _refresh(self) -> set[Path]:
        """Apply the cross-file rules to every file; return files whose problems changed."""
        entries: dict[Path, AgentEntry] = {}
        owners: dict[str, Path] = {}
        for path in sorted(self._parsed, key=str):
            result = self._parsed[path]
            problems = list(result.problems)
            if result.definition is not None:
                backend_problem = self._backend_problem(result, result.definition)
                if backend_problem is not None:
                    problems.append(backend_problem)
            if result.name_known:
                owner = owners.setdefault(result.name, path)
                if owner != path:
                    span = result.spans.get("name") or Span(0, 0, 0, 0)
                    problems.append(
                        span.problem(
                            f"another agent is already named {result.name!r} "
                            f"({self._display(owner)}); rename one of them"
                        )
                    )
            problems.sort(key=lambda p: (p.line, p.column))
            entries[path] = AgentEntry(result.name, path, result.definition, tuple(problems))
        previous = self._entries
        self._entries = entries
        return {
            path
            for path in previous.keys() | entries.keys()
            if (previous[path].problems if path in previous else ())
            != (entries[path].problems if path in entries else ())
        }


def _relative(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` in POSIX form, or None when it is not inside."""
    if not path.is_relative_to(folder) or path == folder:
        return None
    return path.relative_to(folder).as_posix()


def _is_definition_in(path: Path, folder: Path) -> bool:
    rel = _relative(path, folder)
    return rel is not None and is_definition_path(rel)

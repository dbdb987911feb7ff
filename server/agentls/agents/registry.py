"""The agent registry: the one owner of the agent definitions currently known.

It knows which definition files each workspace folder holds (found by walking only the
``agents.locations`` folders, never the whole tree), what each file parsed to, and the problems of
each file once cross-file rules are applied: duplicate names (one agent served to two tools is not
a duplicate: the earlier location wins), backends the configuration does not define, and model
names the configuration maps. A broken file is an entry with problems, never an exception, and
never stops the others loading. Files that are not agents at all (a ``README.md``-like note without
front matter in ``.claude/agents``) are entries with one piece of information and are not listed.
Open editor buffers win over disk until the caller says the buffer is gone.
A handoff (``agents.handoffs``) to a name no agent has is a problem of its file too.

Symlinked folders are followed when their target is inside the workspace folder (Claude Code
follows them, and many repositories link ``.claude/agents`` to a folder of their own); a link that
points out is skipped, logged and listed by ``skipped_links`` for ``agentls doctor``.

All methods that change state are meant to run on the event loop. The reading half is split out
(``scan_folder``, ``read_definition``): pure functions over immutable results that a worker thread
may run, whose results ``AgentRegistry.apply_scan`` then swaps in on the loop. The LSP layer turns
``Problem`` into diagnostics; nothing here knows about LSP.
"""

from __future__ import annotations

import difflib
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
    parse_definition,
)
from agentls.agents.handoffs import target_problem
from agentls.agents.locations import (
    LOCATIONS,
    Format,
    Location,
    default_name,
    format_of,
    location_of,
    may_hold_definitions,
)
from agentls.agents.recipe import RecipeStep
from agentls.errors import InvalidAgent, UnknownAgent
from agentls.workspace.reader import RawFile, read_regular

logger = logging.getLogger(__name__)

MAX_DEFINITION_BYTES = 1024 * 1024
"""A definition file larger than this is not read: a system prompt is text a person wrote."""

MAX_FILES_PER_FOLDER = 10_000
"""Walking stops after this many definition files in one folder, so a runaway tree cannot stall."""

_PRECEDENCE: dict[str, int] = {location.format: i for i, location in enumerate(LOCATIONS)}
"""Which format's file is used when one agent is defined in several formats (lower wins)."""

ModelCheck = Callable[[AgentDefinition], "str | None"]
"""Says why an agent's ``model`` will not be sent as written (a hint), or None."""

FanOutCheck = Callable[[str], "str | None"]
"""Says why a recipe step's ``for_each`` glob cannot run (it matches too many files), or None."""


@dataclass(frozen=True)
class AgentEntry:
    """One definition file as the registry sees it, cross-file problems included."""

    name: str
    source: Path
    definition: AgentDefinition | None
    """None when the file itself did not parse; set (but not runnable) on cross-file errors."""
    problems: tuple[Problem, ...]
    listed: bool = True
    """False for files that are no agent (not a definition) or whose agent another file serves."""
    format: Format = "agentls"

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
            "tools": list(d.tools or ()) if d else [],
            "tool_groups": list(d.tool_groups) if d else [],
            "inputs": [{"name": n, "placeholder": p} for n, p in d.inputs] if d else [],
            "handoffs": [h.to_dict() for h in d.handoffs] if d else [],
            "format": self.format,
            "kind": "recipe" if d is not None and d.is_recipe else "agent",
            "steps": [step_summary(s) for s in d.steps] if d else [],
            "source": display(self.source),
            "valid": self.valid,
            "problems": [problem_text(p) for p in self.problems],
        }


def step_summary(step: RecipeStep) -> dict[str, Any]:
    """A recipe step as ``agents.list`` shows it (templates as written)."""
    return {
        "id": step.id,
        "agent": step.agent,
        "needs": list(step.needs),
        "for_each": step.for_each,
    }


def problem_text(problem: Problem) -> str:
    """A problem as one readable line: ``line 3: message`` (``line 3: hint: message`` if milder)."""
    if problem.severity == "error":
        return f"line {problem.line + 1}: {problem.message}"
    return f"line {problem.line + 1}: {problem.severity}: {problem.message}"


@dataclass(frozen=True)
class SkippedLink:
    """A symlink in a definition location that points outside its workspace folder."""

    path: Path
    """The link itself, under the workspace folder."""
    is_dir: bool

    def entry(self, rel: str) -> ParseResult:
        """A file link's registry entry: no agent, with the message as information on it."""
        reason = self.message(rel)
        return ParseResult(
            default_name(self.path),
            None,
            (Problem(reason, 0, 0, 0, 0, "information"),),
            name_known=False,
            not_agent=reason,
            format=format_of(self.path),
        )

    def message(self, rel: str) -> str:
        """What the log, ``doctor`` and the diagnostic say; names the link, not its target."""
        what = "folder" if self.is_dir else "file"
        return (
            f"skipped {rel}: this symlinked {what} points outside the workspace folder, "
            "and agentls reads nothing there"
        )


@dataclass(frozen=True)
class FoundFile:
    """A definition file found by the walk."""

    path: Path
    """The path as found (through any symlinked folder, by the link's name)."""
    real: Path
    location: Location


@dataclass(frozen=True)
class FolderScan:
    """What one folder's definition files parsed to; built off the loop, applied on it."""

    folder: Path
    """A realpath."""
    files: Mapping[Path, ParseResult]
    real: Mapping[Path, Path] = field(default_factory=dict)
    """Each file's realpath, so a file reached through two symlinks counts once."""
    skipped: tuple[SkippedLink, ...] = ()
    """Symlinks the walk did not follow because they point outside the folder."""
    followed: tuple[Path, ...] = ()
    """Realpaths of symlinked folders the walk followed: changes there change definitions."""
    texts: Mapping[Path, str] = field(default_factory=dict)
    """The text each file was parsed from (diagnostics are positioned against it, and the next
    scan keeps the parse of a file whose text did not change)."""


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
    path: Path,
    text: str | Problem,
    max_bytes: int = MAX_DEFINITION_BYTES,
    fmt: Format | None = None,
) -> ParseResult:
    """Parse a definition's text, or turn a read failure into an entry that carries it."""
    fmt = fmt or format_of(path)
    if isinstance(text, str):
        problem = _size_problem(text, max_bytes)
        if problem is None:
            return parse_definition(text, path, fmt)
        text = problem
    return ParseResult(default_name(path), None, (text,), name_known=False, format=fmt)


def definition_files(folder: Path) -> list[Path]:
    """Every definition file of a (realpath) folder, sorted (see ``walk_folder``)."""
    return [found.path for found in walk_folder(folder)[0]]


def walk_folder(folder: Path) -> tuple[list[FoundFile], list[SkippedLink], list[Path]]:
    """Find the definition files of a (realpath) folder by walking only the definition locations.

    Hidden names are skipped; recursive locations are walked into subfolders. A symlink (to a
    folder, a file, or the location itself) is followed only when its target is inside the folder;
    one pointing out is returned as skipped. A folder reached twice (a link loop, two links to one
    place) is walked once. Each file costs one realpath only when it or its folder is a link.

    Returns the files found (sorted by path), the links skipped, and the realpaths of the linked
    folders that were followed.
    """
    root = str(folder)
    found: list[FoundFile] = []
    skipped: list[SkippedLink] = []
    followed: list[Path] = []
    visited: set[str] = set()

    def inside(real: str) -> bool:
        return real == root or real.startswith(root + os.sep)

    def walk(top: str, real_top: str, location: Location) -> None:
        # iterative: a hostile tree nested thousands of folders deep must not overflow the stack
        pending = [(top, real_top)]
        while pending:
            directory, real_dir = pending.pop()
            if real_dir in visited:
                continue
            visited.add(real_dir)
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as e:
                _log_walk_error(e)
                continue
            subfolders: list[tuple[str, str]] = []
            for entry in entries:
                name = entry.name
                if name.startswith(".") or len(found) >= MAX_FILES_PER_FOLDER:
                    continue
                try:
                    is_link = entry.is_symlink()
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                if is_dir:
                    if not location.recursive:
                        continue
                    real = os.path.realpath(entry.path) if is_link else os.path.join(real_dir, name)
                    if not inside(real):
                        skipped.append(SkippedLink(Path(entry.path), True))
                        continue
                    if real in visited:
                        continue
                    if is_link:
                        followed.append(Path(real))
                    subfolders.append((entry.path, real))
                elif location.matches_name(name):
                    if is_link:
                        real = os.path.realpath(entry.path)
                        if not inside(real):
                            skipped.append(SkippedLink(Path(entry.path), False))
                            continue
                    else:
                        real = os.path.join(real_dir, name)
                    found.append(FoundFile(Path(entry.path), Path(real), location))
            pending.extend(reversed(subfolders))

    for location in LOCATIONS:
        top = os.path.join(root, *location.directory.split("/"))
        if not os.path.isdir(top):
            if os.path.islink(top) and not inside(os.path.realpath(top)):
                skipped.append(SkippedLink(Path(top), True))
            continue
        real_top = os.path.realpath(top)
        if not inside(real_top):
            # the location itself, or a folder on the way to it, links out of the folder
            skipped.append(SkippedLink(_outer_link(folder, location), True))
            continue
        if real_top != top:
            followed.append(Path(real_top))
        if real_top in visited:
            continue
        walk(top, real_top, location)
        if len(found) >= MAX_FILES_PER_FOLDER:
            logger.warning(
                "more than %d agent definition files in %s; the rest are ignored",
                MAX_FILES_PER_FOLDER,
                folder,
            )
            break
    found.sort(key=lambda f: str(f.path))
    return found[:MAX_FILES_PER_FOLDER], skipped, followed


def _outer_link(folder: Path, location: Location) -> Path:
    """The first symlink on the way from ``folder`` to a location: the one to name to the user."""
    path = folder
    for part in location.directory.split("/"):
        path = path / part
        if os.path.islink(path):
            return path
    return path


def _log_walk_error(error: OSError) -> None:
    """A folder the walk cannot list is skipped; say so, since its agents will be missing."""
    logger.warning("cannot list %s: %s", error.filename, error.strerror)


def scan_folder(
    folder: Path,
    max_bytes: int = MAX_DEFINITION_BYTES,
    known: Mapping[Path, tuple[str, ParseResult]] | None = None,
) -> FolderScan:
    """Read and parse every definition file of a folder. Pure: safe to run in a worker thread.

    A file reached twice through symlinks is kept once, under its lexically first path. A file
    link that points outside the folder is an entry that says so (information), never read.
    ``known`` holds the previous scan's texts and parses: a file whose text is unchanged keeps its
    parse (a rescan of 1,000 agents reads them all but parses only what changed).
    """
    root = Path(os.path.realpath(folder))
    files: dict[Path, ParseResult] = {}
    real: dict[Path, Path] = {}
    texts: dict[Path, str] = {}
    seen: set[Path] = set()
    found, skipped, followed = walk_folder(root)
    for item in found:
        if item.real in seen:
            continue
        text = read_definition(item.path, (root,), max_bytes)
        if text is None:  # deleted between the walk and the read, or refused
            continue
        seen.add(item.real)
        real[item.path] = item.real
        if isinstance(text, str):
            texts[item.path] = text
            previous = known.get(item.path) if known else None
            if previous is not None and previous[0] == text:
                files[item.path] = previous[1]
                continue
        files[item.path] = parse_text(item.path, text, max_bytes, item.location.format)
    for link in skipped:
        if not link.is_dir:
            files[link.path] = link.entry(link.path.relative_to(root).as_posix())
            real[link.path] = link.path
    return FolderScan(root, files, real, tuple(skipped), tuple(followed), texts)


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
        self._model_check: ModelCheck | None = None
        """Set by ``set_model_check``: a hint for a model that will not be sent as written."""
        self._fan_out_check: FanOutCheck | None = None
        """Set by ``set_fan_out_check``: an error for a ``for_each`` over too many files."""
        self._skipped: dict[Path, tuple[SkippedLink, ...]] = {}
        """Folder -> symlinks its walk did not follow (they point out of it)."""
        self._followed: dict[Path, tuple[Path, ...]] = {}
        """Folder -> realpaths of linked folders its walk followed."""
        self.version = 0
        """Goes up whenever the entries are rebuilt: callers cache what they derive from them."""

    # -- changing what is known -------------------------------------------------------------

    def load_folder(self, folder: Path) -> set[Path]:
        """(Re)read each definition file of a workspace folder; return files whose problems changed.

        This reads files on the calling thread; to keep a large folder off the event loop, run
        ``scan_folder`` in a worker and pass the result to ``apply_scan``.
        """
        real_folder = Path(os.path.realpath(folder))
        known = {
            path: (self._texts[path], self._parsed[path])
            for path in self._claims.get(real_folder, ())
            if path in self._texts and path in self._parsed and path not in self._buffers
        }
        return self.apply_scan(scan_folder(folder, self._max_bytes, known))

    def apply_scan(self, scan: FolderScan) -> set[Path]:
        """Swap in a folder's scan. Open buffers keep winning over what the scan read from disk."""
        folder = scan.folder
        previous = self._claims.get(folder, set())
        files = dict(scan.files)
        real = dict(scan.real)
        texts = dict(scan.texts)
        for path, text in self._buffers.items():
            rel = _relative(path, folder)
            location = location_of(rel) if rel is not None else None
            if location is not None:
                files[path] = parse_text(path, text, self._max_bytes, location.format)
                real.setdefault(path, Path(os.path.realpath(path)))
                texts[path] = text
        known = set(self._skipped.get(folder, ()))
        for link in scan.skipped:
            if link not in known:
                logger.warning("%s", link.message(link.path.relative_to(folder).as_posix()))
        self._skipped[folder] = scan.skipped
        self._followed[folder] = scan.followed
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
        real_folder = Path(os.path.realpath(folder))
        files = self._claims.pop(real_folder, set())
        self._skipped.pop(real_folder, None)
        self._followed.pop(real_folder, None)
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
        key = self._key(path)
        folders = [f for f in self._claims if _is_definition_in(key, f)]
        if not folders:
            if text is None and self.follows(path):
                return self.rescan_following([path])
            return self._rescan_for_directory(key) if text is None else set()
        target = Path(os.path.realpath(key))
        if any(p != key and r == target for p, r in self._real.items()):
            logger.debug("%s is another path to a known definition file; ignored", key)
            return set()
        fmt = _format_in(key, folders[0])
        if text is not None:
            self._buffers[key] = text
            result: ParseResult | None = parse_text(key, text, self._max_bytes, fmt)
        else:
            self._buffers.pop(key, None)
            # Judged against every known folder at this read, exactly as the start-up scan.
            read = read_definition(key, tuple(self._claims), self._max_bytes)
            result = None if read is None else parse_text(key, read, self._max_bytes, fmt)
            text = read if isinstance(read, str) else None
            if read is None and _links_out(key, folders):
                # as at start-up: a link out of the folder is named, never silently missing
                rel = _relative(key, folders[0]) or key.name
                link = SkippedLink(key, False)
                logger.warning("%s", link.message(rel))
                result = link.entry(rel)
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

    def set_model_check(self, check: ModelCheck | None) -> set[Path]:
        """Record how to judge agents' models (from the configuration); revalidate every agent.

        ``check`` returns a hint for an agent whose ``model`` will not be sent as written (mapped
        through ``[models]``, or replaced by the backend's own model), shown on its ``model`` key.
        """
        self._model_check = check
        return self._refresh()

    def set_fan_out_check(self, check: FanOutCheck | None) -> set[Path]:
        """Record how to judge recipes' ``for_each`` globs (by the workspace index); revalidate.

        ``check`` returns why a glob cannot run (it matches more files than ``max_fan_out``),
        shown as an error on the step's ``for_each``.
        """
        self._fan_out_check = check
        return self._refresh()

    # -- reading ----------------------------------------------------------------------------

    def agents(self) -> list[AgentEntry]:
        """Every listed entry, valid or not, sorted by name (then file).

        Files that are not agents, and files whose agent another format's file serves, are left
        out; they still have problems (``files``, ``problems``).
        """
        return sorted(
            (e for e in self._entries.values() if e.listed), key=lambda e: (e.name, str(e.source))
        )

    def skipped_links(self) -> list[tuple[Path, SkippedLink]]:
        """Symlinks in definition locations that were not followed, with their folder."""
        return [(folder, link) for folder, links in self._skipped.items() for link in links]

    def follows(self, path: Path) -> bool:
        """Whether ``path`` lies in a symlinked folder that a walk followed (it may hold agents)."""
        return any(
            path.is_relative_to(target) for targets in self._followed.values() for target in targets
        )

    def get(self, name: str) -> AgentDefinition:
        """The runnable definition called ``name``.

        Raises ``UnknownAgent`` (listing the valid names) when there is none, and ``InvalidAgent``
        (naming the file and its first error) when it exists but cannot run.
        """
        candidates = sorted(
            (e for e in self._entries.values() if e.name == name and e.listed),
            key=lambda e: str(e.source),
        )
        if not candidates:
            valid = sorted({e.name for e in self._entries.values() if e.valid and e.listed})
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
        entry = (
            self._entries.get(path)
            or self._entries.get(Path(os.path.abspath(path)))
            or self._entries.get(canonical(path))
        )
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

    def _key(self, path: Path) -> Path:
        """The key a changed path is known by: as given (through a symlinked folder, by the
        link's name), else with its directory resolved, else the known file it is a path to."""
        lexical = Path(os.path.abspath(path))
        if any(_is_definition_in(lexical, f) for f in self._claims):
            return lexical
        key = canonical(path)
        if any(_is_definition_in(key, f) for f in self._claims):
            return key
        if self.follows(key):
            target = Path(os.path.realpath(key))
            for known, real in self._real.items():
                if real == target:
                    return known
        return key

    def rescan_following(self, paths: Collection[Path]) -> set[Path]:
        """Changes inside followed symlinked folders: rescan each folder that follows one, once.

        Files there are known by their path through the link, and a new file can appear in any
        subfolder, so the folder is walked again (only its definition locations).
        """
        changed: set[Path] = set()
        for folder, targets in list(self._followed.items()):
            if any(path.is_relative_to(t) for path in paths for t in targets):
                changed |= self.load_folder(folder)
        return changed

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
            if holds_known or may_hold_definitions(rel):
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

    def _recipe_problems(
        self, recipe: AgentDefinition, owners: Mapping[str, tuple[tuple[int, str], Path]]
    ) -> list[Problem]:
        """A recipe's steps checked against the other files: each names an agent that exists
        and is not itself a recipe; each ``for_each`` passes the fan-out check."""
        problems: list[Problem] = []
        names = sorted(n for n, (_, p) in owners.items() if not _is_recipe(self._parsed[p]))
        for step in recipe.steps:
            span = step.agent_span or Span(0, 0, 0, 3)
            owner = owners.get(step.agent)
            if owner is None:
                close = difflib.get_close_matches(step.agent, names, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
                problems.append(
                    span.problem(
                        f"step {step.id!r}: no agent is named {step.agent!r} "
                        f"(agents: {shown or 'none'}){hint}"
                    )
                )
            elif _is_recipe(self._parsed[owner[1]]):
                problems.append(
                    span.problem(
                        f"step {step.id!r}: {step.agent!r} is a recipe; a step runs an agent "
                        "(list its steps here instead)"
                    )
                )
            if step.for_each is not None and self._fan_out_check is not None:
                why = self._fan_out_check(step.for_each)
                if why is not None:
                    where = step.for_each_span or span
                    problems.append(where.problem(f"step {step.id!r}: {why}"))
        return problems

    def _refresh(self) -> set[Path]:
        """Apply the cross-file rules to every file; return files whose problems changed.

        Names: among files whose name is known, the agent is served by the file of the earliest
        location (``.agents``, ``.claude/agents``, ``.github/agents``, ``.github/prompts``), the
        lexically first within it. Another file of the same format with that name is a duplicate
        (an error); a file of another format is the same agent written for another tool (a hint,
        and it is not listed).
        """
        owners: dict[str, tuple[tuple[int, str], Path]] = {}
        for path, result in self._parsed.items():
            if result.name_known and result.not_agent is None:
                rank = (_PRECEDENCE.get(result.format, len(_PRECEDENCE)), str(path))
                current = owners.get(result.name)
                if current is None or rank < current[0]:
                    owners[result.name] = (rank, path)
        entries: dict[Path, AgentEntry] = {}
        for path in sorted(self._parsed, key=str):
            result = self._parsed[path]
            if result.not_agent is not None:
                entries[path] = AgentEntry(
                    result.name, path, None, result.problems, listed=False, format=result.format
                )
                continue
            problems = list(result.problems)
            listed = True
            definition = result.definition
            if definition is not None and definition.is_recipe:
                problems.extend(self._recipe_problems(definition, owners))
            elif definition is not None:
                backend_problem = self._backend_problem(result, definition)
                if backend_problem is not None:
                    problems.append(backend_problem)
                hint = self._model_check(definition) if self._model_check else None
                if hint is not None:
                    span = result.spans.get("model") or Span(0, 0, 0, 3)
                    problems.append(span.problem(hint, "hint"))
                for i, handoff in enumerate(definition.handoffs):
                    target = target_problem(handoff, owners)
                    if target is not None:
                        span = result.spans.get(f"handoffs.{i}") or Span(0, 0, 0, 3)
                        problems.append(span.problem(*target))
            if result.name_known:
                owner = owners[result.name][1]
                if owner != path:
                    span = result.spans.get("name") or Span(0, 0, 0, 3)
                    owner_format = self._parsed[owner].format
                    if owner_format == result.format:
                        problems.append(
                            span.problem(
                                f"another agent is already named {result.name!r} "
                                f"({self._display(owner)}); rename one of them"
                            )
                        )
                    else:
                        listed = False
                        problems.append(
                            span.problem(
                                f"agent {result.name!r} is also defined in "
                                f"{self._display(owner)}, which agentls runs (the order is "
                                ".agents, .claude/agents, .github/agents, .github/prompts); "
                                "this file stays for the other tool",
                                "hint",
                            )
                        )
            problems.sort(key=lambda p: (p.line, p.column))
            entries[path] = AgentEntry(
                result.name, path, definition, tuple(problems), listed, result.format
            )
        previous = self._entries
        self._entries = entries
        self.version += 1
        return {
            path
            for path in previous.keys() | entries.keys()
            if (previous[path].problems if path in previous else ())
            != (entries[path].problems if path in entries else ())
        }


def _is_recipe(result: ParseResult) -> bool:
    return result.definition is not None and result.definition.is_recipe


def _relative(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` in POSIX form, or None when it is not inside."""
    if not path.is_relative_to(folder) or path == folder:
        return None
    return path.relative_to(folder).as_posix()


def _is_definition_in(path: Path, folder: Path) -> bool:
    rel = _relative(path, folder)
    return rel is not None and location_of(rel) is not None


def _links_out(path: Path, folders: Collection[Path]) -> bool:
    """Whether ``path`` is a symlink whose target lies outside every one of ``folders``."""
    if not os.path.islink(path):
        return False
    real = Path(os.path.realpath(path))
    return not any(real.is_relative_to(folder) for folder in folders)


def _format_in(path: Path, folder: Path) -> Format:
    """The format of the location ``path`` is in (relative to ``folder``), else from the path."""
    rel = _relative(path, folder)
    location = location_of(rel) if rel is not None else None
    return location.format if location is not None else format_of(path)

"""Which files exist in the workspace and may be used: the owner of that knowledge.

A walk of each folder (``os.scandir``, in a worker thread) records every usable file with its size
and mtime, and every file it saw but left out, with the reason. It never descends into an ignored
or secret directory (``node_modules`` costs nothing) and never follows a symlink: one that points
out of the workspace is recorded as ``outside_workspace``; one that points inside is skipped, its
target being indexed where it really lives.

The walk builds fresh snapshots from immutable inputs and returns them; the event loop swaps them
in. After that, the snapshots are changed on the loop only, by ``note_changes`` (a few ``lstat``
calls per event batch). Changes noted while a walk was running are applied again on top of its
result, so an edit made mid-walk is not lost. A change to an ignore file, a new directory, or a
batch too large to apply cheaply (a ``git checkout``) schedules a walk of that folder in the
background; the old snapshot keeps answering until the new one is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import stat
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pathspec
from cachetools import LRUCache

from agentls.errors import InvalidArguments
from agentls.workspace.filters import IgnoreRules, compile_patterns
from agentls.workspace.roots import WorkspaceRoots

logger = logging.getLogger(__name__)

ExclusionReason = Literal[
    "gitignored",
    "agentlsignored",
    "secret",
    "too_large",
    "not_a_file",
    "missing",
    "outside_workspace",
    "unreadable",
]

IndexState = Literal["empty", "scanning", "ready"]

LARGE_BATCH = 512
"""A change batch bigger than this is answered with a walk of the folder, not path by path."""

MAX_LISTED_IN_EXCLUDED_DIRS = 1000
"""How many files ``match`` lists, per call, from excluded directories a glob names explicitly."""

MATCH_SLICE = 2_000
"""Files matched against a glob between two yields to the event loop (``expand``): about 10 ms
of ``pathspec`` matching on the project's 2-vCPU machine."""

_GLOB_CHARS = re.compile(r"[*?\[\\]")


@dataclass(frozen=True)
class FileEntry:
    """A usable file as the index last saw it."""

    path: Path
    """The realpath."""
    folder: Path
    """The workspace folder holding it."""
    rel: str
    """The posix path relative to ``folder``."""
    size: int
    mtime_ns: int


@dataclass
class _Snapshot:
    """What one walk found in one folder; changed on the event loop once published."""

    folder: Path
    rules: IgnoreRules
    entries: dict[Path, FileEntry] = field(default_factory=dict)
    excluded: dict[Path, tuple[str, str, int]] = field(default_factory=dict)
    """Files seen and left out: ``path -> (rel, reason, size)``."""
    excluded_dirs: dict[str, str] = field(default_factory=dict)
    """Directories not descended into: ``rel -> reason``."""
    dirs: set[str] = field(default_factory=lambda: {""})
    """Directories walked (relative; ``""`` is the folder itself)."""


def _inside_any(path: str, folders: Sequence[Path]) -> bool:
    """Whether a symlink's target lies in a workspace folder (judged by realpath)."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(f) for f in folders)


def _walk_folder(folder: Path, all_folders: Sequence[Path], max_file_bytes: int) -> _Snapshot:
    """Walk one folder; blocking, for a worker thread. Inputs are immutable, the result is new."""
    rules = IgnoreRules.root(folder)
    snap = _Snapshot(folder=folder, rules=rules)
    nested = {str(f) for f in all_folders if f != folder and f.is_relative_to(folder)}
    stack: list[tuple[str, str]] = [("", str(folder))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                items = list(it)
        except OSError as e:
            if rel_dir:
                snap.excluded_dirs[rel_dir] = "unreadable"
            else:
                logger.warning("cannot list workspace folder %s: %s", folder, e.strerror or e)
            continue
        if rel_dir and any(item.name == ".gitignore" for item in items):
            rules.add_gitignore_file(rel_dir)
        for item in items:
            name = item.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if item.is_symlink():
                    if not _inside_any(item.path, all_folders):
                        snap.excluded[Path(item.path)] = (rel, "outside_workspace", 0)
                    continue
                if item.is_dir(follow_symlinks=False):
                    if name == ".git" or item.path in nested:
                        continue
                    reason = rules.own_reason(rel, True)
                    if reason is not None:
                        snap.excluded_dirs[rel] = reason
                        continue
                    snap.dirs.add(rel)
                    stack.append((rel, item.path))
                    continue
                reason = rules.own_reason(rel, False)
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished mid-walk; its event will follow
            path = Path(item.path)
            if reason is not None:
                snap.excluded[path] = (rel, reason, st.st_size)
            elif not stat.S_ISREG(st.st_mode):
                snap.excluded[path] = (rel, "not_a_file", 0)
            elif st.st_size > max_file_bytes:
                snap.excluded[path] = (rel, "too_large", st.st_size)
            else:
                snap.entries[path] = FileEntry(path, folder, rel, st.st_size, st.st_mtime_ns)
    return snap


def _walk_folders(
    folders: Sequence[Path], all_folders: Sequence[Path], max_file_bytes: int
) -> list[_Snapshot]:
    """Walk several folders in one thread hop (each walk is I/O bound and cheap to sequence)."""
    return [_walk_folder(f, all_folders, max_file_bytes) for f in folders]


@functools.lru_cache(maxsize=128)
def _compile_globs(patterns: tuple[str, ...]) -> pathspec.GitIgnoreSpec | None:
    """An agent's globs as one spec; memoised because the same agent runs again and again."""
    for pattern in patterns:
        if "\x00" in pattern:
            raise InvalidArguments("context", "a glob must not contain a NUL byte")
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except ValueError as e:
            raise InvalidArguments("context", f"invalid glob {pattern[:200]!r}") from e
    return compile_patterns(patterns, "context globs")


def _named_dirs(patterns: Sequence[str]) -> list[str]:
    """The directories positive globs name literally (``build/**`` names ``build/``).

    Only an explicit name reaches into a directory the walk left out: ``**/*.js`` must not list
    all of ``node_modules``, but ``build/**`` should say why nothing came from ``build/``.
    """
    named: list[str] = []
    for raw in patterns:
        if raw.startswith("!") or raw.startswith("#"):
            continue
        pattern = raw.strip().lstrip("/")
        wild = _GLOB_CHARS.search(pattern)
        literal = pattern[: wild.start()] if wild else pattern
        if wild is None:
            named.append(literal.rstrip("/") + "/")  # a plain name may be a directory...
            literal = literal.rstrip("/")
        if "/" in literal:  # ...or a file, listed from its parent
            named.append(literal[: literal.rfind("/") + 1])
    return [n for n in named if n != "/"]


def _list_dir_files(folder: Path, rel_dir: str, budget: int) -> list[tuple[Path, str]]:
    """Up to ``budget`` files under a directory, without following symlinks (names only)."""
    found: list[tuple[Path, str]] = []
    stack = [rel_dir]
    while stack and len(found) < budget:
        current = stack.pop()
        try:
            with os.scandir(folder / current) as it:
                items = list(it)
        except OSError:
            continue
        for item in items:
            rel = f"{current}/{item.name}"
            try:
                if item.is_dir(follow_symlinks=False):
                    stack.append(rel)
                    continue
            except OSError:
                continue
            found.append((Path(item.path), rel))
            if len(found) >= budget:
                break
    return found


class WorkspaceIndex:
    """The files of every workspace folder that may be used, and why the others may not."""

    def __init__(self, roots: WorkspaceRoots, *, max_file_bytes: int) -> None:
        """An empty index; ``scan`` fills it.

        Args:
            roots: the workspace folders (shared with the rest of the server, read only here).
            max_file_bytes: files bigger than this are recorded as ``too_large``.
        """
        self._roots = roots
        """Where the folders and containment come from."""
        self._max_file_bytes = max_file_bytes
        """The per-file size limit."""
        self._snaps: dict[Path, _Snapshot] = {}
        """The current snapshot of each walked folder."""
        self._state: IndexState = "empty"
        """``empty`` before any scan, ``scanning`` during a full scan, ``ready`` after."""
        self._ready = asyncio.Event()
        """Set when the state is ``ready``."""
        self._dirty: set[Path] = set()
        """Folders waiting for a walk."""
        self._walker: asyncio.Task[None] | None = None
        """The task walking ``_dirty`` folders, one batch after another."""
        self._noted_while_walking: set[Path] | None = None
        """Paths noted during the running walk; re-applied on top of its result."""
        self._generation = 0
        """Bumped on every change, so cached glob matches know they are out of date."""
        self._match_cache: LRUCache[
            tuple[Path, tuple[str, ...]], tuple[int, list[FileEntry], list[tuple[Path, str]]]
        ] = LRUCache(maxsize=64)
        """Recent ``match`` results by (folder, patterns), tagged with the generation."""

    @property
    def state(self) -> IndexState:
        """``"empty"``, ``"scanning"`` or ``"ready"``."""
        return self._state

    async def scan(self) -> None:
        """Walk every workspace folder (again) and swap the results in.

        Folders no longer in the roots are dropped. The walks run in a worker thread; callers
        that are cancelled do not cancel the walk, which other callers may be waiting for.
        """
        current = set(self._roots.folders)
        for gone in [f for f in self._snaps if f not in current]:
            del self._snaps[gone]
        self._generation += 1
        self._state = "scanning"
        self._ready.clear()
        self._request_walk(current)
        walker = self._walker
        if walker is not None:
            await asyncio.shield(walker)

    async def wait_ready(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (API)
        """Wait until a full scan has completed.

        Args:
            timeout: seconds to wait at most; None waits as long as it takes.

        Returns:
            Whether the index is ready.
        """
        if self._state == "ready":
            return True
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop a walk in progress (server shutdown)."""
        walker = self._walker
        if walker is not None:
            walker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await walker

    def _request_walk(self, folders: Iterable[Path]) -> None:
        """Mark folders for a walk and start the walker unless it is already running."""
        self._dirty.update(folders)
        if self._dirty and (self._walker is None or self._walker.done()):
            self._walker = asyncio.get_running_loop().create_task(
                self._walk_loop(), name="agentls-index-walk"
            )

    async def _walk_loop(self) -> None:
        """Walk dirty folders until none are left; the only writer of whole snapshots."""
        try:
            while self._dirty:
                wanted = tuple(f for f in self._roots.folders if f in self._dirty)
                self._dirty.clear()
                if wanted:
                    await self._walk(wanted)
        finally:
            # Also on cancellation (close): nobody may be left waiting for a scan that stopped.
            self._state = "ready"
            self._ready.set()

    async def _walk(self, folders: tuple[Path, ...]) -> None:
        """Walk in a thread, swap the snapshots in, then replay what changed meanwhile."""
        self._noted_while_walking = set()
        try:
            snaps = await asyncio.to_thread(
                _walk_folders, folders, self._roots.folders, self._max_file_bytes
            )
        except Exception:
            logger.exception("walking the workspace failed")
            snaps = []
        finally:
            noted = self._noted_while_walking or set()
            self._noted_while_walking = None
        current = set(self._roots.folders)
        for snap in snaps:
            if snap.folder in current:
                self._snaps[snap.folder] = snap
        self._generation += 1
        if noted:
            self._apply_changes(noted)
        logger.debug("indexed %s", ", ".join(str(f) for f in folders))

    def entry(self, path: Path) -> FileEntry | None:
        """The usable file at ``path`` as last seen, or None.

        Args:
            path: a realpath.
        """
        folder = self._roots.folder_of(path)
        snap = self._snaps.get(folder) if folder is not None else None
        return snap.entries.get(path) if snap is not None else None

    def known_size(self, path: Path) -> int | None:
        """The size the index recorded for a file, usable or not (for the manifest).

        Args:
            path: a realpath.
        """
        folder = self._roots.folder_of(path)
        snap = self._snaps.get(folder) if folder is not None else None
        if snap is None:
            return None
        entry = snap.entries.get(path)
        if entry is not None:
            return entry.size
        excluded = snap.excluded.get(path)
        return excluded[2] if excluded is not None else None

    def exclusion(self, path: Path) -> ExclusionReason | None:
        """Why a path may not be used, judged now (it need not have been walked).

        Args:
            path: a realpath (as ``WorkspaceRoots.resolve`` returns).

        Returns:
            ``"outside_workspace"``, ``"secret"``, ``"agentlsignored"``, ``"gitignored"``,
            ``"missing"``, ``"not_a_file"``, ``"too_large"`` or ``"unreadable"``; None when it
            may be used.
        """
        folder = self._roots.folder_of(path)
        if folder is None:
            return "outside_workspace"
        rel = path.relative_to(folder).as_posix()
        if rel == ".":
            return "not_a_file"
        snap = self._snaps.get(folder)
        rules = snap.rules if snap is not None else IgnoreRules.for_path(folder, rel)
        reason = rules.reason(rel, False)
        if reason is not None:
            return reason
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        except (OSError, ValueError):
            return "unreadable"
        if stat.S_ISLNK(st.st_mode):
            real = Path(os.path.realpath(path))
            return "not_a_file" if real == path else self.exclusion(real)
        if not stat.S_ISREG(st.st_mode):
            return "not_a_file"
        if st.st_size > self._max_file_bytes:
            return "too_large"
        return None

    def match(
        self, folder: Path, patterns: Sequence[str]
    ) -> tuple[list[FileEntry], list[tuple[Path, str]]]:
        """The files of a folder that glob patterns select, in one go (see ``expand``).

        Args:
            folder: a workspace folder (as in ``WorkspaceRoots.folders``).
            patterns: gitignore-style globs relative to ``folder`` (``**`` crosses directories, a
                pattern without ``/`` matches at any depth, a leading ``!`` excludes, the last
                matching pattern wins).

        Returns:
            The usable entries that match, and the files the walk left out that the patterns
            select, with the reason. Inside a directory the walk did not enter (an ignored or
            secret one), files are listed only when a pattern names that directory literally
            (``build/**``, not ``**/*.js``), and at most ``MAX_LISTED_IN_EXCLUDED_DIRS`` of them.

        Raises:
            InvalidArguments: a pattern is not a valid glob (field ``context``).
        """
        steps = self._match_steps(folder, patterns)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: tuple[list[FileEntry], list[tuple[Path, str]]] = done.value
                return result

    async def expand(
        self, folder: Path, patterns: Sequence[str]
    ) -> tuple[list[FileEntry], list[tuple[Path, str]]]:
        """``match``, handing the event loop back every ``MATCH_SLICE`` files.

        A ``**/*`` over 100,000 files took seconds of matching in one go; in slices, requests
        that arrive meanwhile (``agentls.status``, a cancel) are answered between two of them.
        Each slice matches a copy of the snapshot taken when the call began, so changes noted
        meanwhile cannot disturb it (they show in the next call).

        Raises:
            InvalidArguments: a pattern is not a valid glob (field ``context``).
        """
        steps = self._match_steps(folder, patterns)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: tuple[list[FileEntry], list[tuple[Path, str]]] = done.value
                return result
            await asyncio.sleep(0)

    def _match_steps(
        self, folder: Path, patterns: Sequence[str]
    ) -> Generator[None, None, tuple[list[FileEntry], list[tuple[Path, str]]]]:
        """The matching of ``match``, pausing (``yield``) after each slice of files."""
        key = (folder, tuple(patterns))
        cached = self._match_cache.get(key)
        if cached is not None and cached[0] == self._generation:
            return list(cached[1]), list(cached[2])
        spec = _compile_globs(key[1])
        snap = self._snaps.get(folder)
        if spec is None or snap is None:
            return [], []
        generation = self._generation
        match = spec.match_file
        usable = list(snap.entries.values())
        left_out = list(snap.excluded.items())
        entries: list[FileEntry] = []
        excluded: list[tuple[Path, str]] = []
        for start in range(0, len(usable), MATCH_SLICE):
            entries.extend(e for e in usable[start : start + MATCH_SLICE] if match(e.rel))
            yield
        for start in range(0, len(left_out), MATCH_SLICE):
            part = left_out[start : start + MATCH_SLICE]
            excluded.extend((p, info[1]) for p, info in part if match(info[0]))
            yield
        excluded.extend(self._in_excluded_dirs(snap, key[1], match))
        if generation == self._generation:
            self._match_cache[key] = (generation, entries, excluded)
        return list(entries), list(excluded)

    def _in_excluded_dirs(
        self, snap: _Snapshot, patterns: tuple[str, ...], match: Callable[[str], bool]
    ) -> list[tuple[Path, str]]:
        """Files in left-out directories that the patterns name explicitly, with the reason."""
        named = _named_dirs(patterns)
        if not named or not snap.excluded_dirs:
            return []
        out: list[tuple[Path, str]] = []
        for rel_dir, reason in snap.excluded_dirs.items():
            prefix = f"{rel_dir}/"
            # "src/**" does not name src/node_modules: only names inside the directory count,
            # and only the part they name is listed (the shortest names cover the longer ones).
            starts: list[str] = []
            for name in sorted({n for n in named if n.startswith(prefix)}, key=len):
                if not any(name.startswith(f"{s}/") for s in starts):
                    starts.append(name.rstrip("/"))
            for start in starts:
                budget = MAX_LISTED_IN_EXCLUDED_DIRS - len(out)
                out.extend(
                    (path, reason)
                    for path, rel in _list_dir_files(snap.folder, start, budget)
                    if match(rel)
                )
            if len(out) >= MAX_LISTED_IN_EXCLUDED_DIRS:
                logger.info("listing of excluded files for %s stopped at %d", patterns, len(out))
                break
        return list(dict.fromkeys(out))

    def note_changes(self, paths: Iterable[Path]) -> None:
        """Bring the index up to date with created, modified or deleted paths (on the loop).

        Args:
            paths: absolute paths from the watcher or the editor; paths outside the workspace
                and inside ``.git/`` are ignored.
        """
        batch = set(paths)
        if not batch:
            return
        if len(batch) > LARGE_BATCH:
            folders = {self._roots.folder_of(p) for p in batch}
            self._request_walk(f for f in folders if f is not None)
            return
        if self._noted_while_walking is not None:
            self._noted_while_walking.update(batch)
        self._apply_changes(batch)

    def _apply_changes(self, paths: Iterable[Path]) -> None:
        """Update snapshots path by path; folders that need more get a background walk."""
        rewalk: set[Path] = set()
        for path in paths:
            folder = self._roots.folder_of(path)
            if folder is None:
                continue
            snap = self._snaps.get(folder)
            if snap is None:
                continue  # not walked yet: the walk will see the change
            if self._apply_one(snap, path, path.relative_to(folder).as_posix()):
                rewalk.add(folder)
        self._generation += 1
        if rewalk:
            self._request_walk(rewalk)

    def _apply_one(self, snap: _Snapshot, path: Path, rel: str) -> bool:
        """Update one path; returns True when the folder needs a walk instead."""
        if rel == ".":
            return True
        if "/.git/" in f"/{rel}/":
            return rel == ".git/info/exclude"
        if snap.rules.is_ignore_file(rel):
            return True
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in snap.excluded_dirs:
                return False  # inside a directory the walk left out: nothing to record
        try:
            st = os.lstat(path)
        except OSError:
            self._forget(snap, path, rel)
            return False
        if stat.S_ISDIR(st.st_mode):
            if rel in snap.dirs or rel in snap.excluded_dirs:
                return False
            reason = snap.rules.reason(rel, True)
            if reason is not None:
                snap.excluded_dirs[rel] = reason
                return False
            return True  # a new directory (perhaps moved in with content): walk it
        if rel in snap.dirs or rel in snap.excluded_dirs:
            self._forget(snap, path, rel)
        snap.entries.pop(path, None)
        snap.excluded.pop(path, None)
        if stat.S_ISLNK(st.st_mode):
            if not _inside_any(str(path), self._roots.folders):
                snap.excluded[path] = (rel, "outside_workspace", 0)
            return False
        reason = snap.rules.reason(rel, False)
        if reason is not None:
            snap.excluded[path] = (rel, reason, st.st_size)
        elif not stat.S_ISREG(st.st_mode):
            snap.excluded[path] = (rel, "not_a_file", 0)
        elif st.st_size > self._max_file_bytes:
            snap.excluded[path] = (rel, "too_large", st.st_size)
        else:
            snap.entries[path] = FileEntry(path, snap.folder, rel, st.st_size, st.st_mtime_ns)
        return False

    @staticmethod
    def _forget(snap: _Snapshot, path: Path, rel: str) -> None:
        """Drop a vanished path, and everything under it if it was a directory."""
        snap.entries.pop(path, None)
        snap.excluded.pop(path, None)
        was_dir = rel in snap.dirs or snap.excluded_dirs.pop(rel, None) is not None
        if not was_dir:
            return
        prefix = f"{rel}/"
        snap.dirs.discard(rel)
        for d in [d for d in snap.dirs if d.startswith(prefix)]:
            snap.dirs.discard(d)
        for d in [d for d in snap.excluded_dirs if d.startswith(prefix)]:
            del snap.excluded_dirs[d]
        for p in [p for p, e in snap.entries.items() if e.rel.startswith(prefix)]:
            del snap.entries[p]
        for p in [p for p, info in snap.excluded.items() if info[0].startswith(prefix)]:
            del snap.excluded[p]

    def usable(self) -> list[FileEntry]:
        """Every usable file of every folder, the most recently changed first.

        The order is the one the context builder ranks glob matches by, so a cache warmed from
        the front of this list holds what runs are most likely to attach.
        """
        entries = [e for snap in self._snaps.values() for e in snap.entries.values()]
        entries.sort(key=lambda e: (-e.mtime_ns, e.rel))
        return entries

    def stats(self) -> dict[str, Any]:
        """Figures for ``agentls.status`` and ``agentls.metrics``.

        Returns:
            ``state``, ``files`` (usable), ``bytes`` (their total size), ``excluded`` (files and
            directories left out) and ``folders`` (how many are indexed).
        """
        files = 0
        total = 0
        excluded = 0
        for snap in self._snaps.values():
            files += len(snap.entries)
            total += sum(e.size for e in snap.entries.values())
            excluded += len(snap.excluded) + len(snap.excluded_dirs)
        return {
            "state": self._state,
            "files": files,
            "bytes": total,
            "excluded": excluded,
            "folders": len(self._snaps),
        }

"""The context builder over a real workspace: order, budgets, truncation, reasons, buffers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from agentls.agents.definition import AgentDefinition
from agentls.backends.base import render_prompt
from agentls.context.builder import (
    MIN_PROMPT_BYTES,
    ContextBuilder,
    ContextRequest,
    ContextResult,
    ManifestEntry,
    Selection,
    expanded_size,
    extract_selection,
    prompt_bytes_limit,
)
from agentls.context.tokens import estimate_tokens
from agentls.errors import InvalidArguments
from agentls.workspace.cache import FileCache
from agentls.workspace.index import WorkspaceIndex
from agentls.workspace.roots import WorkspaceRoots

MAX_FILE = 64 * 1024


class Buffers:
    """An editor with some files open (a real ``BufferSource``, in memory)."""

    def __init__(self, texts: dict[Path, str] | None = None) -> None:
        self.texts = dict(texts or {})
        self.asked: list[Path] = []

    def text(self, path: Path) -> str | None:
        self.asked.append(path)
        return self.texts.get(path)

    def open_paths(self) -> list[Path]:
        return list(self.texts)


def agent(
    body: str = "You are careful.",
    *,
    context: tuple[str, ...] = (),
    include: tuple[str, ...] = (),
    name: str = "reviewer",
) -> AgentDefinition:
    return AgentDefinition(
        name=name, source=Path("/nowhere/.agents/a.md"), body=body, context=context, include=include
    )


def write(root: Path, rel: str, text: str | bytes = "x\n", *, age: float | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    if age is not None:
        t = time.time() - age
        os.utime(path, (t, t))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path)) / "proj"
    write(root, ".gitignore", "node_modules/\n*.log\n")
    write(root, ".agentlsignore", "private/\n")
    write(root, "src/a.py", "def a():\n    return 1\n", age=500)
    write(root, "src/b.py", "def b():\n    return 2\n", age=400)
    write(root, "src/c.py", "def c():\n    return 3\n", age=300)
    write(root, "lib/old.py", "OLD = 1\n", age=200)
    write(root, "lib/new.py", "NEW = 2\n", age=100)
    write(root, "lib/mid.py", "MID = 3\n", age=150)
    return root


def make(*folders: Path, max_file: int = MAX_FILE) -> tuple[ContextBuilder, FileCache]:
    roots = WorkspaceRoots(list(folders))
    index = WorkspaceIndex(roots, max_file_bytes=max_file)
    cache = FileCache(max_bytes=16 * 1024 * 1024)
    return ContextBuilder(roots, index, cache, max_file_bytes=max_file), cache


async def build(
    builder: ContextBuilder,
    a: AgentDefinition,
    request: ContextRequest,
    buffers: Buffers | None = None,
    *,
    max_files: int = 100,
    max_context_tokens: int = 100_000,
) -> ContextResult:
    return await builder.build(
        a,
        request,
        buffers or Buffers(),
        max_files=max_files,
        max_context_tokens=max_context_tokens,
    )


def rows(result: ContextResult) -> list[tuple[str, str, str, str | None]]:
    return [(m.path, m.source, m.status, m.reason) for m in result.manifest]


async def test_sources_come_in_order_and_each_file_once(ws: Path) -> None:
    builder, _ = make(ws)
    d = write(ws, "src/d.py", "def d(): ...\n")
    buffers = Buffers(
        {d: "def d(): ...  # unsaved\n", ws / "src" / "c.py": "def c():\n    return 3\n"}
    )
    request = ContextRequest(
        task="Explain",
        selection=Selection(ws / "src" / "a.py", 0, 4, 0, 5),
        active_file=ws / "src" / "b.py",
        files=(ws / "src" / "c.py", ws / "lib" / "old.py"),
    )
    result = await build(
        builder,
        agent(context=("lib/*.py", "src/b.py"), include=("selection", "active_file", "open_files")),
        request,
        buffers,
    )
    assert rows(result) == [
        ("src/a.py", "selection", "included", None),
        ("src/b.py", "active_file", "included", None),
        ("src/c.py", "file", "included", None),
        ("lib/old.py", "file", "included", None),
        ("src/d.py", "open_file", "included", None),
        ("src/c.py", "open_file", "excluded", "duplicate"),
        ("lib/new.py", "glob", "included", None),  # newest first
        ("lib/mid.py", "glob", "included", None),
        ("lib/old.py", "glob", "excluded", "duplicate"),
        ("src/b.py", "glob", "excluded", "duplicate"),
    ]
    user = result.user
    order = [
        user.index('<selection path="src/a.py" lines="1-1">\na\n</selection>'),
        user.index('<file path="src/b.py" source="active_file">\ndef b():'),
        user.index('<file path="src/c.py" source="file">'),
        user.index('<file path="lib/old.py" source="file">'),
        user.index('<file path="src/d.py" source="open_file">\ndef d(): ...  # unsaved\n</file>'),
        user.index('<file path="lib/new.py" source="glob">\nNEW = 2\n</file>'),
        user.index('<file path="lib/mid.py" source="glob">'),
        user.index("<task>\nExplain\n</task>"),
    ]
    assert order == sorted(order)
    assert user.count("def c():") == 1 and user.count("OLD = 1") == 1
    assert user.endswith("<task>\nExplain\n</task>\n")


async def test_default_include_is_selection_then_active_file(ws: Path) -> None:
    builder, _ = make(ws)
    b = ws / "src" / "b.py"
    buffers = Buffers({ws / "src" / "c.py": "open but not asked for\n"})
    with_selection = await build(
        builder,
        agent(),
        ContextRequest(task="t", selection=Selection(b, 1, 0, 2, 0), active_file=b),
        buffers,
    )
    assert rows(with_selection) == [
        ("src/b.py", "selection", "included", None),
        ("src/b.py", "active_file", "excluded", "duplicate"),
    ]
    assert '<selection path="src/b.py" lines="2-2">\n    return 2\n</selection>' in (
        with_selection.user
    )
    no_selection = await build(builder, agent(), ContextRequest(task="t", active_file=b), buffers)
    assert rows(no_selection) == [("src/b.py", "active_file", "included", None)]
    assert "open but not asked for" not in no_selection.user
    # an agent that asks only for open files gets neither the selection nor the active file
    only_open = await build(
        builder,
        agent(include=("open_files",)),
        ContextRequest(task="t", selection=Selection(b, 0, 0, 1, 0), active_file=b),
        buffers,
    )
    assert rows(only_open) == [("src/c.py", "open_file", "included", None)]


async def test_excluded_files_are_listed_with_reasons_and_never_read(
    ws: Path, tmp_path: Path
) -> None:
    secret = write(ws, ".env", "API_KEY=sk-canary-123\n")
    ignored = write(ws, "node_modules/pkg/index.js", "module.exports = 'ignored'\n")
    private = write(ws, "private/plan.md", "private plan\n")
    binary = write(ws, "img.png", b"\x89PNG\x00\x00IHDR")
    big = write(ws, "big.txt", "z" * (MAX_FILE + 1))
    outside = write(Path(os.path.realpath(tmp_path)), "elsewhere/notes.txt", "outside text\n")
    builder, _ = make(ws)
    buffers = Buffers({secret: "API_KEY=sk-canary-from-buffer\n"})
    result = await build(
        builder,
        agent(include=("active_file", "open_files"), context=("*.log", "**/*.env", ".env*")),
        ContextRequest(
            task="t",
            active_file=outside,
            files=(secret, ignored, private, binary, big, ws / "missing.py", ws / "src"),
        ),
        buffers,
    )
    assert rows(result) == [
        (str(outside), "active_file", "excluded", "outside_workspace"),
        (".env", "file", "excluded", "secret"),
        ("node_modules/pkg/index.js", "file", "excluded", "gitignored"),
        ("private/plan.md", "file", "excluded", "agentlsignored"),
        ("img.png", "file", "excluded", "binary"),
        ("big.txt", "file", "excluded", "too_large"),
        ("missing.py", "file", "excluded", "missing"),
        ("src", "file", "excluded", "not_a_file"),
        (".env", "open_file", "excluded", "duplicate"),
    ]
    for text in ("sk-canary", "ignored", "private plan", "PNG", "zzzz", "outside text"):
        assert text not in result.prompt
    assert secret not in buffers.asked  # the buffer of a secret file is not even asked for
    sizes = {m.path: (m.size, m.bytes, m.tokens) for m in result.manifest if m.source == "file"}
    assert sizes["big.txt"] == (MAX_FILE + 1, 0, 0)
    assert sizes[".env"] == (len("API_KEY=sk-canary-123\n"), 0, 0)
    assert "<task>\nt\n</task>" in result.user


async def test_a_secret_file_is_not_even_opened(ws: Path) -> None:
    fifo = ws / ".env"
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer() -> None:
        # open() for writing blocks until somebody opens the FIFO for reading
        fd = os.open(fifo, os.O_WRONLY)
        opened.set()
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        builder, _ = make(ws)
        result = await build(
            builder,
            agent(include=("active_file",), context=("**",)),
            ContextRequest(task="t", active_file=fifo, files=(fifo,)),
        )
        assert rows(result)[:2] == [
            (".env", "active_file", "excluded", "secret"),
            (".env", "file", "excluded", "duplicate"),
        ]
        assert not opened.wait(0.2)
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release the writer
        thread.join(2)
    assert opened.is_set()  # the probe itself works: a reader does release it


async def test_max_files_counts_attached_files(ws: Path) -> None:
    builder, _ = make(ws)
    write(ws, "lib/bad.bin", b"\x00\x01", age=50)  # newest, unreadable as text: frees its slot
    result = await build(builder, agent(context=("lib/*",)), ContextRequest(task="t"), max_files=2)
    assert rows(result) == [
        ("lib/bad.bin", "glob", "excluded", "binary"),
        ("lib/new.py", "glob", "included", None),
        ("lib/mid.py", "glob", "included", None),
        ("lib/old.py", "glob", "excluded", "max_files"),
    ]
    none = await build(builder, agent(context=("lib/*.py",)), ContextRequest(task="t"), max_files=0)
    assert {m.reason for m in none.manifest} == {"max_files"}
    assert "<file" not in none.user


async def test_token_budget_truncates_at_a_line_then_excludes(ws: Path) -> None:
    lines = [f"line {i:04d} " + "x" * 40 + "\n" for i in range(100)]  # 51 bytes each
    body = "".join(lines)
    write(ws, "big/first.txt", body, age=30)
    write(ws, "big/second.txt", body, age=20)
    write(ws, "big/third.txt", "tiny\n", age=10)
    builder, _ = make(ws)
    a = agent(body="System.", context=("big/*",))
    full = await build(builder, a, ContextRequest(task="go"))
    assert [m.status for m in full.manifest] == ["included"] * 3
    budget = full.tokens - estimate_tokens(len(body)) // 2  # room for about 1.5 of the big files
    result = await build(builder, a, ContextRequest(task="go"), max_context_tokens=budget)
    assert rows(result) == [
        ("big/third.txt", "glob", "included", None),
        ("big/second.txt", "glob", "included", None),
        ("big/first.txt", "glob", "truncated", "budget"),
    ]
    assert result.tokens <= budget
    assert result.tokens == estimate_tokens(len(result.prompt.encode()))
    block = result.user.split('<file path="big/first.txt" source="glob">\n')[1].split("</file>")[0]
    kept, marker = block.rsplit("\n[agentls: truncated", 1)
    kept += "\n"
    assert body.startswith(kept) and kept.endswith("\n") and len(kept) >= 256
    shown = kept.count("\n")
    assert marker.startswith(f" to fit the token budget; lines 1-{shown} of 100 shown]")
    entry = next(m for m in result.manifest if m.path == "big/first.txt")
    assert (entry.bytes, entry.size) == (len(kept), len(body))
    # with no useful part left, a file is excluded for the budget instead
    tight = full.tokens - estimate_tokens(len(body) * 2)
    squeezed = await build(builder, a, ContextRequest(task="go"), max_context_tokens=tight)
    assert [m.reason for m in squeezed.manifest] == [None, "budget", "budget"]
    assert squeezed.tokens <= tight


async def test_open_buffers_win_over_disk(ws: Path) -> None:
    builder, cache = make(ws)
    b = ws / "src" / "b.py"
    unsaved = ws / "src" / "brand_new.py"  # exists only in the editor
    buffers = Buffers({b: "def b():\n    return 'edited'\n", unsaved: "fresh = True\n"})
    result = await build(
        builder,
        agent(include=("active_file",), context=("src/b.py",)),
        ContextRequest(task="t", active_file=b, files=(unsaved,)),
        buffers,
    )
    assert "return 'edited'" in result.user and "return 2" not in result.user
    assert '<file path="src/brand_new.py" source="file">\nfresh = True\n</file>' in result.user
    assert rows(result)[1] == ("src/brand_new.py", "file", "included", None)
    assert cache.stats()["misses"] == 0  # nothing was read from disk
    # a glob match that is open uses the buffer too
    globbed = await build(builder, agent(context=("src/b.py",)), ContextRequest(task="t"), buffers)
    assert "return 'edited'" in globbed.user


async def test_variables_are_filled_once_and_unknown_ones_kept(ws: Path) -> None:
    builder, _ = make(ws)
    b = ws / "src" / "b.py"
    body = (
        "Agent {{agent}} in {{ workspace }} on {{file}}.\n"
        "Task: {{task}}\nSelected: {{selection}}\nLanguage: {{lang}}\nKeep: {{unknown}}\n"
    )
    result = await build(
        builder,
        agent(body=body, name="rev"),
        ContextRequest(
            task="fix {{agent}}",  # not expanded again
            selection=Selection(b, 0, 4, 0, 5),
            active_file=b,
            variables={"lang": "Python", "task": "overridden?"},
        ),
    )
    assert result.system == (
        "Agent rev in proj on src/b.py.\n"
        "Task: fix {{agent}}\nSelected: b\nLanguage: Python\nKeep: {{unknown}}\n"
    )
    assert result.prompt == render_prompt(result.system, result.user)
    assert result.tokens == estimate_tokens(len(result.prompt.encode()))


def test_selection_uses_utf16_positions_and_lsp_line_breaks() -> None:
    path = Path("/x")
    text = "s = '😀é'\r\nsecond\rthird\nfourth"
    assert extract_selection(text, Selection(path, 0, 5, 0, 7)) == ("😀", 1, 1)
    assert extract_selection(text, Selection(path, 0, 7, 0, 8)) == ("é", 1, 1)
    assert extract_selection(text, Selection(path, 1, 0, 3, 0)) == ("second\rthird\n", 2, 3)
    assert extract_selection(text, Selection(path, 3, 2, 1, 3)) == ("ond\rthird\nfo", 2, 4)
    assert extract_selection(text, Selection(path, 3, 0, 99, 99)) == ("fourth", 4, 4)
    assert extract_selection(text, Selection(path, 0, 99, 1, 2)) == ("\r\nse", 1, 2)
    with pytest.raises(InvalidArguments) as info:
        extract_selection(text, Selection(path, -1, 0, 0, 1))
    assert info.value.field == "range"


async def test_selection_from_an_unsaved_buffer(ws: Path) -> None:
    builder, _ = make(ws)
    a = ws / "src" / "a.py"
    buffers = Buffers({a: "edited = '😀'\nmore\n"})
    result = await build(
        builder, agent(), ContextRequest(task="t", selection=Selection(a, 0, 10, 1, 4)), buffers
    )
    assert '<selection path="src/a.py" lines="1-2">\n😀\'\nmore\n</selection>' in result.user
    entry = result.manifest[0]
    assert (entry.source, entry.bytes) == ("selection", len("😀'\nmore".encode()))
    # an empty selection attaches nothing
    empty = await build(
        builder, agent(), ContextRequest(task="t", selection=Selection(a, 1, 2, 1, 2)), buffers
    )
    assert empty.manifest == []


async def test_several_folders_are_globbed_and_named(ws: Path, tmp_path: Path) -> None:
    other = Path(os.path.realpath(tmp_path)) / "shared"
    write(other, "lib/util.py", "UTIL = 1\n", age=1)
    builder, _ = make(ws, other)
    result = await build(builder, agent(context=("lib/*.py",)), ContextRequest(task="t"))
    assert [m.path for m in result.manifest] == [
        "shared/lib/util.py",
        "proj/lib/new.py",
        "proj/lib/mid.py",
        "proj/lib/old.py",
    ]
    assert '<file path="shared/lib/util.py" source="glob">' in result.user


async def test_content_is_utf8_and_paths_are_escaped(ws: Path) -> None:
    write(ws, 'odd/a"b<c>&.py', "name = 'x'\n")
    write(ws, "odd/latin1.txt", "café\n".encode("latin-1"))
    write(ws, "odd/emoji.md", "😀 中文\n")
    builder, _ = make(ws)
    result = await build(builder, agent(context=("odd/*",)), ContextRequest(task="t"))
    assert '<file path="odd/a&quot;b&lt;c&gt;&amp;.py" source="glob">' in result.user
    assert "caf\ufffd\n" in result.user
    assert "😀 中文\n" in result.user


async def test_the_cache_is_warm_for_the_next_run(ws: Path) -> None:
    builder, cache = make(ws)
    time.sleep(0.05)  # past the racy window of freshly written files
    a = agent(context=("src/*.py", "lib/*.py"))
    first = await build(builder, a, ContextRequest(task="t"))
    misses = cache.stats()["misses"]
    assert misses == 6
    second = await build(builder, a, ContextRequest(task="t"))
    assert second.user == first.user
    stats = cache.stats()
    assert (stats["hits"], stats["misses"]) == (6, misses)
    # an external edit is seen at once, even before any watcher event
    write(ws, "src/a.py", "def a():\n    return 'changed'\n")
    third = await build(builder, a, ContextRequest(task="t"))
    assert "return 'changed'" in third.user


async def test_bad_input_is_refused_clearly(ws: Path) -> None:
    builder, _ = make(ws)
    request = ContextRequest(task="t")
    with pytest.raises(InvalidArguments, match="max_files"):
        await build(builder, agent(), request, max_files=-1)
    with pytest.raises(InvalidArguments, match="max_context_tokens"):
        await build(builder, agent(), request, max_context_tokens=-5)
    with pytest.raises(InvalidArguments, match="variables"):
        await build(builder, agent(), ContextRequest(task="t", variables={"n": 3}))  # type: ignore[dict-item]
    with pytest.raises(InvalidArguments, match="context"):
        await build(builder, agent(context=("\\",)), request)


def test_manifest_entry_protocol_form() -> None:
    entry = ManifestEntry("src/a.py", "glob", "truncated", "budget", 100, 400, 30)
    assert entry.to_dict() == {
        "path": "src/a.py",
        "source": "glob",
        "status": "truncated",
        "reason": "budget",
        "bytes": 100,
        "size": 400,
        "tokens": 30,
        "secrets": [],
    }


async def test_warm_assembly_of_a_thousand_files_is_served_from_memory(tmp_path: Path) -> None:
    """Warm builds of 1,000 files / 10 MB read nothing again (how fast: ``agentls bench``)."""
    root = Path(os.path.realpath(tmp_path)) / "big"
    chunk = ("value = 'some source code here'\n" * 320)[:10_000]
    for i in range(1000):
        write(root, f"pkg{i % 20}/mod{i}.py", chunk, age=10 + i)
    builder, cache = make(root)
    a = agent(context=("**/*.py",))
    await build(builder, a, ContextRequest(task="t"), max_files=1000, max_context_tokens=10**7)
    misses = cache.stats()["misses"]
    for _ in range(5):
        result = await build(
            builder, a, ContextRequest(task="t"), max_files=1000, max_context_tokens=10**7
        )
    assert len(result.manifest) == 1000 and all(m.status == "included" for m in result.manifest)
    assert cache.stats()["hits"] >= 5000
    assert cache.stats()["misses"] == misses


async def test_the_user_message_is_kept_as_bytes_and_decoded_on_demand(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    write(root, "src/a.py", "print('naïve 😀')\n")
    write(root, "src/b.py", "x = 1\n")
    builder, _cache = make(root)
    result = await build(builder, agent(context=("src/*.py",)), ContextRequest(task="t"))
    assert result.user == result.user_bytes.decode("utf-8")
    assert "print('naïve 😀')" in result.user
    assert result.prompt_bytes == result.prompt.encode("utf-8")
    bare = await build(builder, agent(body="  "), ContextRequest(task="t"))
    assert bare.prompt_bytes == bare.user_bytes and bare.prompt == bare.user


@pytest.mark.parametrize(
    "body",
    [
        "",
        "no variables at all",
        "{{task}}" * 50,
        "é {{ task }} {{unknown}} {{selection}}{{task}} 😀 {{file}}{{",
        "{{selection}}" * 3 + "{{agent}}{{workspace}}{{extra}}",
    ],
)
def test_expanded_size_is_the_size_of_the_filled_in_body(body: str) -> None:
    values = {"task": "tâche " * 7, "selection": "sel😀\n", "agent": "a", "extra": "", "file": ""}
    definition = AgentDefinition(name="a", body=body, source=Path("a.md"))
    filled = ContextBuilder._system_prompt(definition, values)
    assert expanded_size(body, values) == len(filled.encode("utf-8"))


def test_the_default_prompt_bound_follows_the_token_budget() -> None:
    assert prompt_bytes_limit(60_000) == MIN_PROMPT_BYTES
    assert prompt_bytes_limit(1_000_000) == 4 * 4 * 1_000_000
    assert prompt_bytes_limit(1_000_000, configured=1234) == 1234


async def test_an_unchanged_build_is_reused_once_every_file_is_revalidated(ws: Path) -> None:
    builder, cache = make(ws)
    time.sleep(0.05)  # past the racy window of freshly written files
    a = agent(context=("src/*.py", "lib/*.py"))
    first = await build(builder, a, ContextRequest(task="t"))
    again = await build(builder, a, ContextRequest(task="t"))
    assert again is first  # the same bytes, not assembled again
    assert cache.stats()["hits"] == 6  # yet each of the 6 files was checked against the disk
    # anything the prompt depends on gives a new assembly
    assert (await build(builder, a, ContextRequest(task="other"))).user != first.user
    tight = await build(builder, a, ContextRequest(task="t"), max_files=2)
    assert tight is not first and len([m for m in tight.manifest if m.status == "included"]) == 2
    src = ws / "src/a.py"
    edited = await build(builder, a, ContextRequest(task="t"), Buffers({src: "EDITED = 1\n"}))
    assert "EDITED = 1" in edited.user
    cache.clear()
    cleared = await build(builder, a, ContextRequest(task="t"))
    assert cleared is not first and cleared.user == first.user


async def test_a_reused_build_never_serves_a_stale_file(ws: Path) -> None:
    """Write then build at once, many times: each build shows the file as it is now."""
    builder, _cache = make(ws)
    a = agent(context=("src/*.py", "lib/*.py"))
    path = ws / "src/b.py"
    await build(builder, a, ContextRequest(task="t"))
    for i in range(40):
        # same size each time: only the mtime (and the content) tell the versions apart
        path.write_text(f"VERSION = {i:04d}\n", encoding="utf-8")
        result = await build(builder, a, ContextRequest(task="t"))
        assert f"VERSION = {i:04d}\n" in result.user, i
        assert (await build(builder, a, ContextRequest(task="t"))).user == result.user
    path.unlink()
    gone = await build(builder, a, ContextRequest(task="t"))
    assert "VERSION" not in gone.user
    assert ("src/b.py", "glob", "excluded", "missing") in rows(gone)


async def test_the_prompt_as_json_is_what_orjson_makes_of_the_text(tmp_path: Path) -> None:
    """Encoded chunk by chunk, with characters of every width across the chunk boundaries."""
    import orjson

    root = Path(os.path.realpath(tmp_path)) / "ws"
    line = 'é"\\\t\x0c\x01中😀😀😀中中éé plain\n'
    write(root, "src/a.py", line * 8000)  # about 300 KB: several chunks, mostly multi-byte
    write(root, "src/b.py", "x = 1\n")
    builder, _cache = make(root, max_file=1 << 20)
    result = await build(
        builder, agent(context=("src/*.py",)), ContextRequest(task="t"), max_context_tokens=10**6
    )
    assert ("src/a.py", "glob", "included", None) in rows(result)
    assert result.prompt_json == orjson.dumps(result.prompt)
    assert orjson.loads(result.prompt_json) == result.prompt


@pytest.mark.parametrize(
    "body",
    [
        "${input:topic} ${input:topic:What} ${file}${fileBasename} ${selection}{{task}} ${HOME}",
        "é ${workspaceFolder}${selectedText}${fileDirname}/${fileBasenameNoExtension} ${input:no}",
    ],
)
def test_expanded_size_counts_copilot_variables(body: str) -> None:
    values = {"task": "tâche", "selection": "sel😀\n", "file": "src/app.py", "workspace": "ws"}
    inputs = {"topic": "caching ✓"}
    definition = AgentDefinition(name="a", body=body, source=Path("a.md"), format="copilot")
    filled = ContextBuilder._system_prompt(definition, values, inputs)
    assert "${input:topic" not in filled and "${file}" not in filled
    assert expanded_size(body, values, inputs, copilot=True) == len(filled.encode("utf-8"))

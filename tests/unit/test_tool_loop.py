"""The tool loop through the whole run path (service, engine, loop, backend) against fake providers.

Each test runs a real ``AgentService`` over a real workspace folder, with an HTTP backend that
talks to a ``FakeProvider`` on 127.0.0.1 replaying scripted tool-call streams, in both APIs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.providers import Call, FakeProvider, stall, status, stream, tool_calls

from agentls.config import load_settings
from agentls.execution.records import RunRecord
from agentls.requests import RunArgs
from agentls.service import AgentService, NoBuffers

SECRET = "AKIAZ7QWERTYUIOPASDF"  # an AWS access key id shape: the scanner must redact it


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, ".agents/fixer.md", "---\nname: fixer\n---\nFix the code.\n")
    write(root, ".agents/reader.md", "---\nname: reader\ntools: [Read]\n---\nRead.\n")
    write(root, ".agents/plain.md", "---\nname: plain\ntools: []\n---\nNo tools.\n")
    write(root, ".agents/short.md", "---\nname: short\nmax_turns: 3\n---\nShort.\n")
    write(root, ".agents/quick.md", "---\nname: quick\ntimeout: 2\n---\nQuick.\n")
    write(root, ".agents/small.md", "---\nname: small\nmax_context_tokens: 600\n---\nS.\n")
    write(root, ".agents/cmd.md", "---\nname: cmd\nbackend: cmd\ntools: [Read]\n---\nC.\n")
    write(root, ".agents/nt.md", "---\nname: nt\nbackend: notools\n---\nN.\n")
    write(root, "src/long.py", "".join(f"line_{n} = {n}\n" for n in range(400)))
    write(root, "src/cart.py", "def total(items):\n    return sum(items)\n")
    write(root, "src/dup.py", "x = 1\nx = 1\n")
    write(root, "src/keys.py", f"AWS_KEY = '{SECRET}'\nregion = 'eu'\n")
    write(root, ".env", "API_TOKEN=hunter2-secret-value\n")
    write(root, "logo.bin", b"\x89PNG\x00\x00binary")
    write(root, ".gitignore", "build/\n")
    write(root, "build/out.txt", "ignored\n")
    (tmp_path / "outside.txt").write_text("outside the workspace\n")
    big = root / "huge.log"
    with big.open("wb") as f:  # 50 MB, sparse: never read
        f.truncate(50 * 1024 * 1024)
    return root


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param) as fake:
        yield fake


@pytest.fixture
async def service(
    workspace: Path, provider: FakeProvider, tmp_path: Path
) -> AsyncIterator[AgentService]:
    backend: dict[str, Any] = {
        "kind": provider.kind,
        "base_url": provider.base_url,
        "model": provider.model,
        "max_retries": 0,
    }
    command = {"kind": "command", "argv": [sys.executable, "-c", "print('from a command')"]}
    options = {
        "default_backend": "fake",
        "backends": {"fake": backend, "cmd": command, "notools": {**backend, "tools": False}},
        "data_dir": str(tmp_path),
        "limits": {"max_tool_calls": 10},
    }
    settings = load_settings([workspace], options, user_file=tmp_path / "none.toml")
    svc = AgentService(settings, [workspace], watch=False)
    await svc.start()
    await svc.index.wait_ready(timeout=30)
    try:
        yield svc
    finally:
        await svc.shutdown()


class Trace:
    """An observer keeping the tool-call notifications."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.tool_began = asyncio.Event()

    def started(self, run_id: str) -> None: ...

    def output(self, run_id: str, seq: int, text: str) -> None: ...

    def tool_call(self, run_id: str, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event["status"] == "started":
            self.tool_began.set()

    def finished(self, record: RunRecord) -> None: ...


class Buffers(NoBuffers):
    """Unsaved editor buffers."""

    def __init__(self, texts: dict[Path, str]) -> None:
        self.texts = texts

    def text(self, path: Path) -> str | None:
        return self.texts.get(path)

    def open_paths(self) -> list[Path]:
        return list(self.texts)


async def run(
    svc: AgentService, agent: str = "fixer", observer: Any = None, buffers: Any = None
) -> dict[str, Any]:
    return await asyncio.wait_for(
        svc.run(RunArgs(agent=agent, task="go"), buffers or NoBuffers(), observer), 60
    )


def tool_results(provider: FakeProvider, request_no: int) -> list[tuple[str, str]]:
    """``(call id, content)`` of the tool results a request sent back, in order."""
    body = provider.requests[request_no].json
    out: list[tuple[str, str]] = []
    for message in body["messages"]:
        if message.get("role") == "tool":
            out.append((message["tool_call_id"], message["content"]))
        elif message.get("role") == "user" and isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    out.append((block["tool_use_id"], block["content"]))
    return out


async def test_reads_two_files_in_parallel_and_answers(
    service: AgentService, provider: FakeProvider
) -> None:
    a = Call("read_file", {"path": "src/cart.py"})
    b = Call("read_file", {"path": "src/keys.py"})
    provider.script(tool_calls(a, b, text=("Let me look.",)), stream("Looks ", "fine."))
    trace = Trace()
    result = await run(service, observer=trace)
    assert result["status"] == "succeeded", result
    assert result["output"] == "Let me look.Looks fine."
    assert result["turns"] == 2
    assert [c["call_id"] for c in result["tool_calls"]] == [a.id, b.id]
    assert {c["status"] for c in result["tool_calls"]} == {"succeeded"}
    results = tool_results(provider, 1)
    assert [r[0] for r in results] == [a.id, b.id]  # answered in the order of the calls
    assert "1\tdef total(items):" in results[0][1]
    assert SECRET not in json.dumps(provider.requests[1].json)  # redacted like attached context
    tool_rows = [m for m in result["manifest"] if m["source"] == "tool"]
    assert [m["path"] for m in tool_rows] == ["src/cart.py", "src/keys.py"]
    assert tool_rows[1]["secrets"] and tool_rows[1]["secrets"][0]["line"] == 1
    assert sorted(e["status"] for e in trace.events) == ["started"] * 2 + ["succeeded"] * 2
    # the tools were offered in the API's own shape
    sent = provider.requests[0].json["tools"]
    names = [t["function"]["name"] if "function" in t else t["name"] for t in sent]
    assert names == ["read_file", "list_files", "search", "propose_edit"]
    # usage is summed over the turns
    assert result["usage"]["prompt_tokens"] == 2 * 12
    stored = service.history.get(result["id"])
    assert stored is not None and stored.tool_calls == result["tool_calls"]


@pytest.mark.parametrize("quirk", ["ollama", "no_index"])
async def test_index_quirks_of_parallel_calls(
    service: AgentService, provider: FakeProvider, quirk: Any
) -> None:
    if provider.kind == "anthropic":
        pytest.skip("an OpenAI-compatible quirk")
    a = Call("read_file", {"path": "src/cart.py"})
    b = Call("list_files", {"glob": "src/*.py"})
    provider.script(tool_calls(a, b, quirk=quirk, arg_piece=3 if quirk == "no_index" else 0))
    result = await run(service)
    assert result["status"] == "succeeded", result
    assert [(c["call_id"], c["tool"], c["status"]) for c in result["tool_calls"]] == [
        (a.id, "read_file", "succeeded"),
        (b.id, "list_files", "succeeded"),
    ]
    listed = tool_results(provider, 1)[1][1]
    assert listed.splitlines() == ["src/cart.py", "src/dup.py", "src/keys.py", "src/long.py"]


async def test_arguments_split_across_many_chunks(
    service: AgentService, provider: FakeProvider
) -> None:
    call = Call("search", {"pattern": "return sum", "glob": "src/**"})
    provider.script(tool_calls(call, arg_piece=1))
    result = await run(service)
    assert result["tool_calls"][0]["status"] == "succeeded", result
    assert result["tool_calls"][0]["arguments"] == {"pattern": "return sum", "glob": "src/**"}
    assert tool_results(provider, 1)[0][1] == "src/cart.py:2:     return sum(items)\n"


async def test_refusals_are_answered_to_the_model(
    service: AgentService, provider: FakeProvider, workspace: Path
) -> None:
    calls = [
        Call("read_file", '{"path": "src/cart.py"'),  # malformed JSON
        Call("read_file", {"path": ".env"}),
        Call("read_file", {"path": "../outside.txt"}),
        Call("read_file", {"path": "logo.bin"}),
        Call("read_file", {"path": "huge.log"}),
        Call("read_file", {"path": "build/out.txt"}),
        Call("run_shell", {"cmd": "rm -rf /"}),
        Call("propose_edit", {"path": "src/dup.py", "old_text": "x = 1\n", "new_text": "y\n"}),
        Call("propose_edit", {"path": "src/big.py", "old_text": "", "new_text": "x" * 1_100_000}),
    ]
    provider.script(tool_calls(*calls, arg_piece=65536), stream("Sorry."))
    result = await run(service)
    assert result["status"] == "succeeded", result
    statuses = [c["status"] for c in result["tool_calls"]]
    assert statuses == ["failed"] + ["refused"] * 8
    answers = [content for _, content in tool_results(provider, 1)]
    assert "not valid JSON" in answers[0]
    assert "secret" in answers[1]
    assert "outside the workspace" in answers[2]
    assert "binary" in answers[3]
    assert "larger than" in answers[4]
    assert ".gitignore" in answers[5]
    assert "no tool named 'run_shell'" in answers[6]
    assert "occurs 2 times" in answers[7]
    assert "new_text is larger than the file size limit" in answers[8]
    sent = json.dumps([r.json for r in provider.requests])
    assert "hunter2" not in sent and "outside the workspace\\n" not in sent
    assert result["edits"] == []
    assert [m for m in result["manifest"] if m["source"] == "tool"] == []


async def test_proposed_edit_is_in_the_result_and_never_written(
    service: AgentService, provider: FakeProvider, workspace: Path
) -> None:
    edit = Call(
        "propose_edit",
        {"path": "src/cart.py", "old_text": "sum(items)", "new_text": "sum(items, 0.0)"},
    )
    new = Call("propose_edit", {"path": "src/new.py", "old_text": "", "new_text": "N = 1\n"})
    provider.script(tool_calls(edit, new), stream("Proposed."))
    result = await run(service)
    assert [e["id"] for e in result["edits"]] == ["e1", "e2"]
    first = result["edits"][0]
    assert first["range"] == {
        "start": {"line": 1, "character": 11},
        "end": {"line": 1, "character": 21},
    }
    assert first["state"] == "proposed" and first["base"].startswith("sha256:")
    assert "-    return sum(items)\n+    return sum(items, 0.0)\n" in first["diff"]
    assert result["edits"][1]["create"] is True
    near_secret = Call(
        "propose_edit", {"path": "src/keys.py", "old_text": "region = 'eu'", "new_text": "r = 1"}
    )
    provider.script(tool_calls(near_secret), stream("ok"))
    result = await run(service)
    [edit] = result["edits"]
    assert "-region = 'eu'" in edit["diff"] and SECRET not in json.dumps(result)
    assert (workspace / "src/cart.py").read_text() == "def total(items):\n    return sum(items)\n"
    assert not (workspace / "src/new.py").exists()


async def test_a_model_that_never_stops_is_bounded_by_max_turns(
    service: AgentService, provider: FakeProvider
) -> None:
    provider.script(*(tool_calls(Call("list_files", {})) for _ in range(3)))
    result = await run(service, agent="short")
    assert result["status"] == "failed"
    assert "max_turns = 3" in result["error"]
    assert result["turns"] == 3 and len(result["tool_calls"]) == 3
    assert len(provider.requests) == 3


async def test_tools_empty_means_single_shot(service: AgentService, provider: FakeProvider) -> None:
    result = await run(service, agent="plain")
    assert result["status"] == "succeeded" and result["turns"] == 1
    assert "tools" not in provider.requests[0].json


async def test_only_granted_groups_are_offered(
    service: AgentService, provider: FakeProvider
) -> None:
    provider.script(tool_calls(Call("search", {"pattern": "x"})), stream("ok"))
    result = await run(service, agent="reader")
    tools = provider.requests[0].json["tools"]
    assert len(tools) == 1 and "read_file" in json.dumps(tools)
    assert result["tool_calls"][0]["status"] == "refused"


async def test_model_without_tools_runs_single_shot_and_is_remembered(
    service: AgentService, provider: FakeProvider
) -> None:
    message = f"registry.ollama.ai/library/{provider.model} does not support tools"
    refusal = {"error": {"message": message}}
    provider.script(status(400, refusal), stream("plain answer"))
    result = await run(service)
    assert result["status"] == "succeeded", (result["error"], result["notes"])
    assert result["output"] == "plain answer"
    assert any("does not support tools" in n for n in result["notes"])
    assert "tools" in provider.requests[0].json and "tools" not in provider.requests[1].json
    again = await run(service)
    assert again["status"] == "succeeded"
    assert "tools" not in provider.requests[2].json
    assert any("earlier run" in n for n in again["notes"])


async def test_cancel_during_streaming_keeps_partial_output_and_trace(
    service: AgentService, provider: FakeProvider
) -> None:
    provider.script(tool_calls(Call("list_files", {})), stall(after=2))
    task = asyncio.ensure_future(run(service))
    for _ in range(200):
        if service.engine.active() and service.engine.active()[0]["output_chars"]:
            break
        await asyncio.sleep(0.05)
    run_id = service.engine.active()[0]["id"]
    assert service.cancel(run_id) == {"cancelled": True}
    assert (await task)["status"] == "cancelled"
    record = service.history.get(run_id)
    assert record is not None and record.status == "cancelled"
    assert record.output == "Hello, "
    assert [c["status"] for c in record.tool_calls] == ["succeeded"]
    assert provider.wait_disconnect(10)


async def test_cancel_during_a_tool_call(
    service: AgentService, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.script(tool_calls(Call("search", {"pattern": "x"})))
    trace = Trace()
    gate = asyncio.Event()
    original = service.cache.read_many

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()  # never set: the tool is stuck until cancelled
        return await original(*args, **kwargs)

    monkeypatch.setattr(service.cache, "read_many", slow)
    task = asyncio.ensure_future(run(service, observer=trace))
    await asyncio.wait_for(trace.tool_began.wait(), 30)
    run_id = service.engine.active()[0]["id"]
    service.cancel(run_id)
    assert (await task)["status"] == "cancelled"
    record = service.history.get(run_id)
    assert record is not None and record.status == "cancelled"
    assert record.tool_calls[0]["status"] == "failed"
    assert record.tool_calls[0]["summary"] == "stopped before it finished"


async def test_the_unsaved_buffer_wins_over_the_disk(
    service: AgentService, provider: FakeProvider, workspace: Path
) -> None:
    cart = (workspace / "src" / "cart.py").resolve()
    buffers = Buffers({cart: "def total(items):\n    return 0  # unsaved\n"})
    read = Call("read_file", {"path": "src/cart.py"})
    edit = Call(
        "propose_edit", {"path": "src/cart.py", "old_text": "return 0", "new_text": "return 1"}
    )
    provider.script(tool_calls(read, edit), stream("ok"))
    result = await run(service, buffers=buffers)
    assert "return 0  # unsaved" in tool_results(provider, 1)[0][1]
    assert [e["old_text"] for e in result["edits"]] == ["return 0"]


async def test_tool_calls_beyond_the_limit_are_refused_to_the_model(
    service: AgentService, provider: FakeProvider
) -> None:
    provider.script(
        tool_calls(*(Call("list_files", {}) for _ in range(6))),
        tool_calls(*(Call("list_files", {}) for _ in range(6))),
        stream("done"),
    )
    result = await run(service)
    assert result["status"] == "succeeded", result
    assert [c["status"] for c in result["tool_calls"]] == ["succeeded"] * 10 + ["refused"] * 2
    assert "limit of 10 tool calls" in tool_results(provider, 2)[-1][1]


async def test_tool_results_count_toward_the_context_budget(
    service: AgentService, provider: FakeProvider
) -> None:
    first = Call("read_file", {"path": "src/long.py"})
    second = Call("read_file", {"path": "src/long.py", "offset": 200})
    provider.script(tool_calls(first), tool_calls(second), stream("done"))
    result = await run(service, agent="small")
    assert result["status"] == "succeeded", result
    cut = tool_results(provider, 1)[0][1]
    assert cut.endswith("[cut: the context budget is used up]\n")
    assert len(cut.encode()) < 600 * 4
    assert "context budget is used up" in tool_results(provider, 2)[-1][1]


async def test_the_run_timeout_covers_the_whole_loop(
    service: AgentService, provider: FakeProvider
) -> None:
    provider.script(tool_calls(Call("list_files", {})), stall(after=1))
    result = await run(service, agent="quick")
    assert result["status"] == "timed_out", result
    assert result["output"] == "Hello"
    assert [c["status"] for c in result["tool_calls"]] == ["succeeded"]
    assert result["turns"] == 2


async def test_command_backends_stay_single_shot_with_a_note(
    service: AgentService, provider: FakeProvider
) -> None:
    result = await run(service, agent="cmd")
    assert result["status"] == "succeeded", result
    assert result["output"].strip() == "from a command"
    assert result["notes"] == ["backend 'cmd' runs a command, single-shot: tools are not offered"]
    assert provider.requests == []


async def test_a_backend_with_tools_false_is_never_offered_tools(
    service: AgentService, provider: FakeProvider
) -> None:
    result = await run(service, agent="nt")
    assert result["status"] == "succeeded" and result["turns"] == 1
    assert result["notes"] == ["backend 'notools' sets tools = false: ran without tools"]
    assert "tools" not in provider.requests[0].json


async def test_a_listed_file_moved_out_by_a_folder_link_is_refused_at_the_read(
    service: AgentService, provider: FakeProvider, workspace: Path
) -> None:
    """``search`` takes the index's list on trust; the read itself (the safe reader, judged
    against the workspace folders) still refuses a file whose folder became a link out of them."""
    elsewhere = workspace.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cart.py").write_text("outside the workspace\n", encoding="utf-8")
    shutil.rmtree(workspace / "src")
    (workspace / "src").symlink_to(elsewhere)  # the index is not told (no watcher)
    pattern = "outside the workspace|name: fixer"
    provider.script(tool_calls(Call("search", {"pattern": pattern, "regex": True})), stream("."))
    result = await run(service)
    assert result["status"] == "succeeded", result
    assert [c["status"] for c in result["tool_calls"]] == ["succeeded"]
    ((_, answer),) = tool_results(provider, 1)
    assert answer == ".agents/fixer.md:2: name: fixer\n"  # the rest was searched
    tool_rows = [m["path"] for m in result["manifest"] if m["source"] == "tool"]
    assert tool_rows == [".agents/fixer.md"]

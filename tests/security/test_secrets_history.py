"""Finding 7, last part, through the real server: a model that repeats secrets does not get them
into the run's result or into history (memory, ``agentls.history.get``, the SQLite file)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.security.secrets_helpers import (
    CANARIES,
    agent_file,
    command,
    files_under,
    serve,
)

MODEL = f"""\
import sys
sys.stdin.read()
print("Here is what I found:")
print("OPENAI_API_KEY={CANARIES["openai_key"]}")
print("maps: {CANARIES["google_api_key"]}", flush=True)
print("db: postgres://app:{CANARIES["postgres_password"]}@db/app")
print("hf: {CANARIES["huggingface_token"]}")
print("That is all.")
"""
"""A command "model" that prints secrets, as a model with tools might after reading files."""


async def test_model_output_is_redacted_before_history_and_counted(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    agent_file(root, "talker", "Talk. {{task}}\n")
    home = tmp_path / "home"
    async with serve(root, home, model=MODEL) as client:
        result = await command(client, "agentls.run", {"agent": "talker", "task": "go"})
        stored = await command(client, "agentls.history.get", {"id": result["id"]})
        listed = await command(client, "agentls.history.list", {})
    assert result["status"] == "succeeded", result.get("error")
    output = result["output"]
    assert output.startswith("Here is what I found:") and "That is all." in output
    assert "db: postgres://app:[REDACTED:url_password]@db/app" in output
    assert [(s["line"], s["kind"]) for s in result["output_secrets"]] == [
        (2, "openai_key"),
        (3, "google_api_key"),
        (4, "url_password"),
        (5, "huggingface_token"),
    ]
    assert stored["output"] == output and stored["output_secrets"] == result["output_secrets"]
    on_disk = files_under(home / "data")
    assert on_disk  # the history file exists
    for answer in (output, str(stored), str(listed)):
        assert [k for k, v in CANARIES.items() if v in answer] == []
    assert [k for k, v in CANARIES.items() if v.encode() in on_disk] == []

"""Finding 7 (and the body part of finding 3) through the real server: what a hostile workspace
puts in files, in definitions and in credential-named files never reaches the prompt."""

from __future__ import annotations

import os
from pathlib import Path

from tests.security.secrets_helpers import (
    CANARIES,
    LEAKY_FILE,
    LEAKY_KINDS,
    agent_file,
    command,
    serve,
    write,
)


def _workspace(tmp_path: Path) -> Path:
    return Path(os.path.realpath(tmp_path)) / "ws"


def _no_canary(text: str) -> None:
    leaked = [kind for kind, value in CANARIES.items() if value in text]
    assert leaked == [], f"reached the prompt: {leaked}"


async def test_secrets_inside_files_are_redacted_and_listed(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    write(root, "src/settings.py", LEAKY_FILE)
    agent_file(root, "reader", "Read the settings. {{task}}\n", context='["src/*.py"]')
    async with serve(root, tmp_path / "home") as client:
        preview = await command(client, "agentls.context.preview", {"agent": "reader", "task": "t"})
        dry = await command(
            client, "agentls.run", {"agent": "reader", "task": "t", "dry_run": True}
        )
    for answer in (preview, dry):
        _no_canary(answer["prompt"])
        rows = {m["path"]: m for m in answer["manifest"]}
        assert rows["src/settings.py"]["status"] == "included"
        found = [(s["line"], s["kind"]) for s in rows["src/settings.py"]["secrets"]]
        assert found == LEAKY_KINDS
    assert "DONE = True" in preview["prompt"]  # the rest of the file is there
    assert "postgres://app:[REDACTED:url_password]@db.internal" in preview["prompt"]


async def test_a_definition_body_is_scanned_redacted_and_listed(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    agent_file(
        root,
        "deployer",
        f"""\
        You deploy the app.
        Use the key {CANARIES["openai_key"]} for the model
        and {CANARIES["google_api_key"]} for maps;
        the database is postgres://ops:{CANARIES["postgres_password"]}@db/prod.
        Task: {{{{task}}}}
        """,
    )
    async with serve(root, tmp_path / "home") as client:
        preview = await command(
            client, "agentls.context.preview", {"agent": "deployer", "task": "ship it"}
        )
    prompt = preview["prompt"]
    _no_canary(prompt)
    assert "Use the key [REDACTED:openai_key] for the model" in prompt
    assert "Task: ship it" in prompt
    rows = [m for m in preview["manifest"] if m["source"] == "agent"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["path"], row["status"]) == (".agents/deployer.md", "included")
    # Lines of the definition file (the front matter takes four).
    assert [(s["line"], s["kind"]) for s in row["secrets"]] == [
        (6, "openai_key"),
        (7, "google_api_key"),
        (8, "url_password"),
    ]
    assert row["bytes"] > 0 and row["tokens"] > 0


DENIED = [
    "infra/prod.tfvars",
    "infra/.terraform/terraform.tfstate",
    "client_secret_123.apps.googleusercontent.com.json",
    ".config/gcloud/application_default_credentials.json",
    ".vault-token",
    "keys/AuthKey_ABC123.p8",
    ".s3cfg",
    ".boto",
    "deploy_key",
    "etc/ssh/ssh_host_ed25519_key",
    "credentials",
    ".config/gh/hosts.yml",
    ".bash_history",
    ".zsh_history",
    "certs/server.pem.bak",
    ".netrc~",
    ".env.orig",
    ".env.swp",
]
"""Credential files of finding 7 that the deny-list missed."""


async def test_deny_listed_files_never_reach_the_prompt(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    canaries = {}
    for i, rel in enumerate(DENIED):
        canaries[rel] = f"canary-denied-{i:03d}-value"
        write(root, rel, f"token = {canaries[rel]}\n")
    write(root, "src/ok.py", "OK = 1\n")
    agent_file(root, "everything", "Read it all.\n", context='["**/*", "**/.*", "**/.*/**"]')
    async with serve(root, tmp_path / "home") as client:
        preview = await command(
            client,
            "agentls.context.preview",
            {
                "agent": "everything",
                "task": "t",
                "files": [(root / rel).as_uri() for rel in DENIED[:4]],
            },
        )
    prompt = preview["prompt"]
    leaked = [rel for rel, canary in canaries.items() if canary in prompt]
    assert leaked == []
    assert "OK = 1" in prompt
    reasons = {m["path"]: m["reason"] for m in preview["manifest"] if m["status"] == "excluded"}
    for rel in DENIED[:4]:
        assert reasons.get(rel) == "secret", rel


async def test_agentlsignore_cannot_re_include_what_git_info_exclude_leaves_out(
    tmp_path: Path,
) -> None:
    root = _workspace(tmp_path)
    write(root, ".agentlsignore", "!*\n!**/*\n")
    write(root, ".gitignore", "*.log\n")
    write(root, ".git/info/exclude", "private/\nnotes.txt\n")
    write(root, "private/plan.md", "canary-private-plan\n")
    write(root, "notes.txt", "canary-private-notes\n")
    write(root, "app.log", "an ordinary log line\n")
    write(root, ".env", "canary-env\n")
    agent_file(root, "all", "All.\n", context='["**/*", "*"]')
    async with serve(root, tmp_path / "home") as client:
        preview = await command(
            client,
            "agentls.context.preview",
            {"agent": "all", "task": "t", "files": [(root / "notes.txt").as_uri()]},
        )
    prompt = preview["prompt"]
    for canary in ("canary-private-plan", "canary-private-notes", "canary-env"):
        assert canary not in prompt
    assert "an ordinary log line" in prompt  # the workspace's own .gitignore may be overridden
    reasons = {m["path"]: m["reason"] for m in preview["manifest"] if m["status"] == "excluded"}
    assert reasons.get("notes.txt") == "gitignored"

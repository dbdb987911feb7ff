"""Secrets inside included text: a corpus of secrets is redacted, clean text is left alone."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest
from tests.unit.test_context_builder import Buffers, agent, build, make, write

from agentls.agents.definition import AgentDefinition
from agentls.context.builder import ContextRequest, Selection
from agentls.context.secrets import SecretScanner, redact, scan

# Built from pieces so this file itself does not look like it holds live credentials.
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_TEMP = "ASIA" + "Y34FZKBOKMUTVV7A"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_FINE = (
    "github_pat_"
    + "11ABCDEFG0123456789_"
    + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01"
)
GITLAB = "glpat-" + "xYz12AbC34dEf56GhI78"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_HOOK = "https://hooks.slack.com/services/" + "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJ" + "zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GENERIC = "q8Zr3Lx9Pw2Vn7Kt5Hy1"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
PRIVATE_KEY = "\n".join(
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        "QyNTUxOQAAACBqZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleWZha2UAAAA=",
        "-----END OPENSSH PRIVATE KEY-----",
    ]
)

SECRETS: list[tuple[str, str, str]] = [
    # (text, the secret that must vanish, kind)
    (f'aws_id = "{AWS}"\n', AWS, "aws_access_key"),
    (f"export AWS_ACCESS_KEY_ID={AWS_TEMP}\n", AWS_TEMP, "aws_access_key"),
    (f"gh auth: {GITHUB}\n", GITHUB, "github_token"),
    (f"GH={GITHUB_FINE}\n", GITHUB_FINE, "github_token"),
    (f"url = 'https://oauth2:{GITLAB}@gitlab.com/x.git'\n", GITLAB, "gitlab_token"),
    (f"slack({SLACK!r})\n", SLACK, "slack_token"),
    (f"WEBHOOK = '{SLACK_HOOK}'\n", SLACK_HOOK, "slack_token"),
    (f"Authorization: Bearer {JWT}\n", JWT, "jwt"),
    (f'API_KEY = "{GENERIC}"\n', GENERIC, "generic_secret"),
    (f"db_password: {GENERIC}\n", GENERIC, "generic_secret"),
    (f'"client_secret": "{GENERIC}",\n', GENERIC, "generic_secret"),
    (f"STRIPE_KEY = '{STRIPE}'\n", STRIPE, "generic_secret"),
    (f"{PRIVATE_KEY}\n", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "private_key"),
]

CLEAN = [
    'password = "hunter2"\n',  # too short to be anything but an example
    "token = tokenizer.next_token()\n",  # code, not a value
    "auth_str = base64.standard_b64encode(credentials).decode()\n",
    "secret_key = settings.SECRET_KEY_FROM_ENVIRONMENT\n",  # a dotted name
    "key = 'aaaaaaaaaaaaaaaaaaaaaaaa'\n",  # long but not random
    "description: the token-bucket algorithm keeps a key per client\n",
    "AKIA is how AWS access key ids begin; AKIAshort is not one.\n",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
    "glob.glob('**/*.py'); ghost = 1; eyJ is base64 for '{\"'\n",
    "naïve café — 中文 😀 key: value\n",
    "PKCS8_PRIV_KEY_INFO = pkcs8_priv_key_info_st\n",  # an identifier of short words
    "api_key_header = 'X-Api-Key-Header-Name-2'\n",
]


def assert_redacted_on_line_3(text: str, secret: str, kind: str) -> None:
    """``text`` as the third line of a file: its secret replaced and reported on that line."""
    before = "line one\nline two\n"
    data = (before + text + "tail\n").encode()
    result = redact(data)
    out = result.data.decode()
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out
    assert out.startswith(before) and out.endswith("tail\n")
    assert [(f.line, f.kind) for f in result.findings] == [(3, kind)]
    assert scan(data) == [(3, kind)]


@pytest.mark.parametrize(("text", "secret", "kind"), SECRETS, ids=[s[2] for s in SECRETS])
def test_each_kind_of_secret_is_redacted_and_reported(text: str, secret: str, kind: str) -> None:
    assert_redacted_on_line_3(text, secret, kind)


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_is_untouched(text: str) -> None:
    data = text.encode()
    result = redact(data)
    assert result.findings == ()
    assert result.data == data


def test_the_standard_library_is_clean() -> None:
    """A real tree of clean code (the running interpreter's own modules) gets no redactions."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [
        p
        for p in sorted(stdlib.rglob("*.py"))
        if p.relative_to(stdlib).parts[0] not in ("site-packages", "dist-packages", "test")
    ]
    assert len(files) > 500
    flagged = [(p.name, scan(p.read_bytes())) for p in files]
    assert [f for f in flagged if f[1]] == []


def test_several_secrets_keep_their_lines_and_the_rest_of_the_text() -> None:
    text = "\n".join(
        [
            "# config",
            f"aws = {AWS}",
            PRIVATE_KEY,
            f"token = {JWT}",  # a JWT in an assignment is reported once, as a JWT
            "done = True",
        ]
    ).encode()
    result = redact(text)
    assert [(f.line, f.kind) for f in result.findings] == [
        (2, "aws_access_key"),
        (3, "private_key"),
        (7, "jwt"),
    ]
    out = result.data.decode()
    assert out.splitlines() == [
        "# config",
        "aws = [REDACTED:aws_access_key]",
        "[REDACTED:private_key]",
        "token = [REDACTED:jwt]",
        "done = True",
    ]
    for f in result.findings:
        assert result.data[f.start :].startswith(b"[REDACTED:" + f.kind.encode())


def test_an_unterminated_private_key_is_redacted_to_the_end() -> None:
    data = b"x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAKCAQEA\n"
    result = redact(data)
    assert result.data == b"x\n[REDACTED:private_key]"


def test_the_scanner_remembers_by_content_and_scans_once() -> None:
    scanner = SecretScanner(max_entries=4)
    dirty = f"k = {AWS}\n".encode()
    clean = b"print('hello')\n"
    first = scanner.redact(dirty)
    assert scanner.redact(dirty) == first
    assert scanner.redact(clean).data is not None and scanner.redact(clean).data == clean
    assert scanner.memo_hits == 2
    assert scanner.scanned_bytes == len(dirty) + len(clean)
    for i in range(10):  # the memo stays bounded
        scanner.redact(f"{i}\n".encode())
    assert len(scanner._memo) <= 4


async def test_the_prompt_is_redacted_and_the_manifest_lists_each_secret(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    write(root, "src/settings.py", f"DEBUG = True\nAWS_KEY = '{AWS}'\nSLACK = '{SLACK}'\n")
    write(root, "src/clean.py", "print('hi')\n")
    builder, _cache = make(root)
    result = await build(builder, agent(context=("src/*.py",)), ContextRequest(task="t"))
    assert AWS not in result.prompt and SLACK not in result.prompt
    assert "AWS_KEY = '[REDACTED:aws_access_key]'" in result.user
    rows = {m.path: m.to_dict() for m in result.manifest}
    assert rows["src/settings.py"]["secrets"] == [
        {"line": 2, "kind": "aws_access_key"},
        {"line": 3, "kind": "slack_token"},
    ]
    assert rows["src/clean.py"]["secrets"] == []
    again = await build(builder, agent(context=("src/*.py",)), ContextRequest(task="t"))
    assert again.user == result.user  # served from the memo, same answer


async def test_selection_buffers_and_truncated_files_are_redacted(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path)) / "ws"
    active = write(root, "a.py", f"x = 1\ntoken = '{GITHUB}'\n")
    big = write(root, "big.py", f"k = '{GITLAB}'\n" + "y = 2\n" * 3000 + f"late = '{AWS}'\n")
    buffers = Buffers({active: f"x = 1\ntoken = '{GITHUB}'\nextra = '{JWT}'\n"})
    builder, _cache = make(root)
    request = ContextRequest(
        task="t",
        selection=Selection(active, 1, 0, 3, 0),
        active_file=active,
        files=(big,),
    )
    a = agent(body="Look at {{selection}}", include=("selection", "active_file"))
    result = await build(builder, a, request, buffers, max_context_tokens=2_000)
    for secret in (GITHUB, JWT, GITLAB, AWS):
        assert secret not in result.prompt
    rows = {(m.path, m.source): m for m in result.manifest}
    # Lines of the file, not of the selection (which starts on line 2).
    assert rows[("a.py", "selection")].secrets == ((2, "github_token"), (3, "jwt"))
    assert rows[("a.py", "active_file")].reason == "duplicate"
    cut = rows[("big.py", "file")]
    assert cut.status == "truncated"
    assert cut.secrets == ((1, "gitlab_token"),)  # the AWS key was cut off, not listed
    assert "[REDACTED:github_token]" in result.system


async def test_the_agent_body_is_redacted_before_variables_and_listed(tmp_path: Path) -> None:
    """A definition is a file of the repository: its body is scanned like any attached file."""
    root = Path(os.path.realpath(tmp_path)) / "ws"
    write(root, "src/a.py", "x = 1\n")
    builder, _cache = make(root)
    body = f"You deploy with {AWS}.\nAuth: {JWT}\nTask: {{{{task}}}}\n"
    a = AgentDefinition(
        name="deployer", source=root / ".agents" / "deployer.md", body=body, body_line=4
    )
    # The task is the user's own text and is put in as typed, after the body was redacted.
    result = await build(builder, a, ContextRequest(task="use token AKIA-not-a-key"))
    assert AWS not in result.system and JWT not in result.system
    assert result.system.startswith("You deploy with [REDACTED:aws_access_key].\n")
    assert "Auth: [REDACTED:jwt]\nTask: use token AKIA-not-a-key" in result.system
    entry = result.definition
    assert entry is not None
    assert (entry.path, entry.source, entry.status) == (".agents/deployer.md", "agent", "included")
    assert entry.secrets == ((5, "aws_access_key"), (6, "jwt"))  # lines in the file
    assert entry.bytes == len(result.system.rstrip().encode()) and entry.size == len(body)
    assert all(m.source != "agent" for m in result.manifest)  # files only
    clean = await build(builder, agent(), ContextRequest(task="t"))
    assert clean.definition is not None and clean.definition.secrets == ()

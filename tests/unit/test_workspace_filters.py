"""Secrets, ignore files (root, nested, .agentlsignore, .git/info/exclude) and the binary rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentls.workspace.filters import IgnoreRules, is_secret, looks_binary


@pytest.mark.parametrize(
    "rel",
    [
        ".env",
        ".env.local",
        "config/.env.production",
        "deploy/prod.env",
        "certs/server.pem",
        "tls/private.key",
        "id_rsa",
        "home/id_rsa.pub",
        "keys/id_ed25519",
        "id_ecdsa",
        ".npmrc",
        "web/.npmrc",
        ".pypirc",
        ".netrc",
        ".git-credentials",
        "cert.p12",
        "cert.PFX",
        "infra/terraform.tfstate",
        "infra/terraform.tfstate.backup",
        "kubeconfig",
        "ops/cluster.kubeconfig",
        ".aws/credentials",
        ".aws/config",
        "home/.ssh/config",
        ".ssh",
        ".gnupg/pubring.kbx",
        ".kube/config",
        "store.jks",
        "passwords.kdbx",
        "putty.ppk",
        "CREDENTIALS.JSON",
    ],
)
def test_secret_names_are_denied(rel: str) -> None:
    assert is_secret(rel)


@pytest.mark.parametrize(
    "rel",
    [
        "src/main.py",
        "README.md",
        "environment.yml",
        "docs/keys.md",
        "src/key_utils.py",
        "monkey.py",
        "src/environment/settings.py",
        "ssh/notes.txt",
        "aws/lambda.py",
        "tfstate.md",
        "keyboard.c",
    ],
)
def test_ordinary_names_are_not_secret(rel: str) -> None:
    assert not is_secret(rel)


def test_looks_binary_uses_the_first_8_kib() -> None:
    assert looks_binary(b"PK\x03\x04\x00\x00")
    assert not looks_binary("plain text, é 中 😀".encode())
    assert not looks_binary(b"a" * 8192 + b"\x00")  # git looks no further
    assert looks_binary(b"a" * 8191 + b"\x00")
    assert not looks_binary(b"")


def write(root: Path, rel: str, text: str = "x\n") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = Path(os.path.realpath(tmp_path))
    write(root, ".gitignore", "*.log\nbuild/\n/top-only.txt\n*.gen.py\n")
    write(root, "src/.gitignore", "!important.log\ngen/\n")
    write(root, ".agentlsignore", "notes/\n!schema.gen.py\n!.env\n")
    write(root, ".git/info/exclude", "local-scratch/\n")
    return root


@pytest.mark.parametrize(
    ("rel", "is_dir", "expected"),
    [
        ("app.log", False, "gitignored"),
        ("src/deep/trace.log", False, "gitignored"),
        ("src/important.log", False, None),  # the nested .gitignore re-includes it
        ("important.log", False, "gitignored"),  # ...only under src/
        ("build", True, "gitignored"),
        ("build/out.js", False, "gitignored"),  # inside an ignored directory
        ("build", False, None),  # "build/" matches directories only
        ("top-only.txt", False, "gitignored"),
        ("src/top-only.txt", False, None),  # anchored to the root
        ("src/gen/x.py", False, "gitignored"),
        ("gen/x.py", False, None),
        ("a.gen.py", False, "gitignored"),
        ("schema.gen.py", False, None),  # .agentlsignore re-includes it
        ("notes/todo.md", False, "agentlsignored"),
        ("local-scratch/x.txt", False, "gitignored"),  # .git/info/exclude
        (".git/config", False, "gitignored"),
        ("sub/.git/HEAD", False, "gitignored"),
        (".env", False, "secret"),  # no ignore file can re-include a secret
        ("src/main.py", False, None),
    ],
)
def test_ignore_rules_follow_git_semantics(
    repo: Path, rel: str, is_dir: bool, expected: str | None
) -> None:
    rules = IgnoreRules.load(repo)
    assert rules.reason(rel, is_dir) == expected
    # judging one path without a walk reads only its ancestors' files, with the same verdict
    assert IgnoreRules.for_path(repo, rel).reason(rel, is_dir) == expected


def test_load_does_not_read_ignore_files_inside_ignored_directories(repo: Path) -> None:
    write(repo, "build/.gitignore", "!*.log\n")
    write(repo, "src/gen/.gitignore", "*\n")
    rules = IgnoreRules.load(repo)
    sources = {p.relative_to(repo).as_posix() for p in rules.sources}
    assert sources == {".agentlsignore", ".git/info/exclude", ".gitignore", "src/.gitignore"}


def test_an_invalid_line_is_skipped_and_the_rest_applies(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path))
    write(root, ".gitignore", "*.tmp\n\\\n!\ncache/\n")
    rules = IgnoreRules.load(root)
    assert rules.reason("a.tmp", False) == "gitignored"
    assert rules.reason("cache/x", False) == "gitignored"
    assert rules.reason("a.py", False) is None


def test_no_ignore_files_ignores_only_git_and_secrets(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path))
    rules = IgnoreRules.load(root)
    assert rules.reason("anything/at/all.py", False) is None
    assert rules.reason(".git", True) == "gitignored"
    assert rules.reason("x/.ssh/known_hosts", False) == "secret"


def test_crlf_ignore_file(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path))
    (root / ".gitignore").write_bytes(b"*.log\r\ndist/\r\n")
    rules = IgnoreRules.load(root)
    assert rules.reason("x.log", False) == "gitignored"
    assert rules.reason("dist/a.js", False) == "gitignored"
    assert rules.is_ignore_file("a/b/.gitignore")
    assert rules.is_ignore_file(".agentlsignore")
    assert not rules.is_ignore_file("src/.agentlsignore")


@pytest.mark.parametrize(
    "rel",
    [
        "infra/prod.tfvars",
        "infra/secrets.auto.tfvars",
        "infra/vars.tfvars.json",
        ".terraform/providers/x/state",
        "infra/.terraform",
        "client_secret.json",
        "auth/client_secret_1234-abcd.apps.googleusercontent.com.json",
        ".config/gcloud/application_default_credentials.json",
        ".vault-token",
        "keys/AuthKey_ABC123.p8",
        ".s3cfg",
        ".boto",
        "deploy_key",
        "ci/deploy_key.pub",
        "etc/ssh/ssh_host_ed25519_key",
        "ssh_host_rsa_key",
        "credentials",
        "home/.config/gcloud/credentials",
        ".config/gh/hosts.yml",
        "gh/hosts.yml",
        ".bash_history",
        "home/.zsh_history",
        ".zhistory",
        ".python_history",
        ".psql_history",
        ".local/share/fish/fish_history",
        "certs/server.pem.bak",
        ".netrc~",
        ".env.orig",
        ".env.swp",
        ".server.pem.swp",
        ".id_rsa.swo",
        "#.env#",
        "id_rsa.bak~",
        "credentials.json.old",
        ".npmrc.backup",
    ],
)
def test_more_secret_names_are_denied(rel: str) -> None:
    assert is_secret(rel)


@pytest.mark.parametrize(
    "rel",
    [
        "infra/main.tf",
        "infra/variables.tf",
        "docs/terraform.md",
        "client_secret.py",  # code about client secrets, not one
        "src/client.json",
        "docs/credentials.md",
        "src/credentials_store.py",
        "vault_token_renewal.go",
        "p8.txt",
        "boto_helpers.py",
        "ssh_host_key_checking.md",
        "gh/hosts.md",
        "other/hosts.yml",
        "history.md",
        "src/history.py",
        "bash_history_parser.py",
        "notes.bak",
        "main.py.orig",
        ".main.py.swp",
        "README.md~",
        "#scratch.py#",
        "config.yml.old",
    ],
)
def test_more_ordinary_names_are_not_secret(rel: str) -> None:
    assert not is_secret(rel)


@pytest.mark.parametrize(
    ("agentlsignore", "gitignore"), [("!*\n", ""), ("!*\n!**/*\n", ""), ("", "!*\n!private/\n")]
)
def test_no_repository_file_re_includes_what_git_info_exclude_leaves_out(
    tmp_path: Path, agentlsignore: str, gitignore: str
) -> None:
    root = Path(os.path.realpath(tmp_path))
    write(root, ".agentlsignore", agentlsignore)
    write(root, ".gitignore", "*.log\n" + gitignore)
    write(root, ".git/info/exclude", "private/\nnotes.txt\n")
    write(root, "private/plan.md")
    write(root, "notes.txt")
    write(root, "app.log")
    write(root, ".env")
    rules = IgnoreRules.load(root)
    assert rules.reason("private", True) == "gitignored"
    assert rules.reason("private/plan.md", False) == "gitignored"
    assert rules.reason("notes.txt", False) == "gitignored"
    assert rules.reason(".env", False) == "secret"
    assert rules.reason("src/main.py", False) is None
    # What the repository's own .gitignore leaves out, its own "!*" may still bring back.
    assert rules.reason("app.log", False) is None

"""The detector corpus: each kind of secret is found, its near-misses are not, and the anchored
scan finds exactly what the slow reference scan (every pattern over the whole text) finds."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.test_context_secrets import assert_redacted_on_line_3

from agentls.context.secrets import KINDS, _reference_spans, _spans, redact, redact_text

# Built from pieces so this file itself does not look like it holds live credentials.
OPENAI_LEGACY = "sk-" + "Xq7Lp2Vb9Rt4Mn8Ks3Dh6Fj1Gw5Ha0Ze2Yc4Ub7Io9Pe3Wr6Tl"
OPENAI_PROJECT = (
    "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7CDe0FGh3IJ-kL6MNo9PQr_2STu5VWx8YZa"
)
ANTHROPIC = (
    "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7-Zx6Yw5Vu4Ts3Rq2Po1Nm0Lk9Ji8Hg7FeAA"
)
GOOGLE = "AIza" + "SyD4v7Qx2Lm9Pk3Rt8Wn5Hb1Jc6Fg0Ze4Ua"
HUGGINGFACE = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
BEARER = "Zm9vYmFyYmF6" + "cXV4MTIzNDU2Nzg5MGFiY2Rl"
PGP = "\n".join(
    [
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        "",
        "lQOYBGJhc2UBCADGx0b3p0ZXN0a2V5ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZQ",
        "=abcd",
        "-----END PGP PRIVATE KEY BLOCK-----",
    ]
)
PUTTY = "\n".join(
    [
        "PuTTY-User-Key-File-3: ssh-ed25519",
        "Encryption: none",
        "Comment: eddsa-key-20240101",
        "Public-Lines: 2",
        "AAAAC3NzaC1lZDI1NTE5AAAAIEZha2VGYWtlRmFrZUZha2VGYWtlRmFrZUZha2VG",
        "YWtl",
        "Private-Lines: 1",
        "AAAAIFNlY3JldFNlY3JldFNlY3JldFNlY3JldFNlY3JldFNlYw==",
        "Private-MAC: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]
)

SECRETS: list[tuple[str, str, str]] = [
    # (text, the secret that must vanish, kind)
    (f"OPENAI_API_KEY={OPENAI_LEGACY}\n", OPENAI_LEGACY, "openai_key"),
    (f"client = OpenAI(api_key='{OPENAI_PROJECT}')\n", OPENAI_PROJECT, "openai_key"),
    (f"use {OPENAI_PROJECT} for the demo\n", OPENAI_PROJECT, "openai_key"),
    (f"export ANTHROPIC_API_KEY={ANTHROPIC}\n", ANTHROPIC, "anthropic_key"),
    (f"the key is {ANTHROPIC}.\n", ANTHROPIC, "anthropic_key"),
    (f"maps = load('{GOOGLE}')\n", GOOGLE, "google_api_key"),
    (f"login({HUGGINGFACE})\n", HUGGINGFACE, "huggingface_token"),
    (f"Authorization: Bearer {BEARER}\n", BEARER, "bearer_token"),
    (f"curl -H 'Authorization: BEARER {BEARER}' https://x\n", BEARER, "bearer_token"),
    (f"{PGP}\n", "lQOYBGJhc2UBCADGx0b3p0ZXN0a2V5", "private_key"),
    (f"{PUTTY}\n", "AAAAIFNlY3JldFNlY3JldFNlY3J", "putty_key"),
    ("DB=postgres://app:s3cr3t-Pa55@db.internal:5432/app\n", "s3cr3t-Pa55", "url_password"),
    ("cache = redis://:hunter2hunter2@cache:6379/0\n", "hunter2hunter2", "url_password"),
    ("see https://bob:pw@example.com/x\n", "bob:pw@", "url_password"),
    (
        "service_account_api_key" + " " * 60 + "= 'q8Zr3Lx9Pw2Vn7Kt5Hy1'\n",  # aligned columns
        "q8Zr3Lx9Pw2Vn7Kt5Hy1",
        "generic_secret",
    ),
]

NEAR_MISSES = [
    "import sklearn; task-sk-learn; disk-usage-information-for-everyone-here\n",
    "sk-this-is-a-placeholder-for-your-own-key\n",  # words, not a key
    "OPENAI_API_KEY=sk-...\n",
    "AIzaShort and AIza followed by nothing\n",
    "from huggingface_hub import hf_hub_download; hf_token = os.environ['HF_TOKEN']\n",
    "hf_" + "abcdefghijklmnopqrstuvwxyzabcdefgh" + "\n",  # one case: an identifier
    "headers = {'Authorization': f'Bearer {self.api_key}'}\n",
    'headers["Authorization"] = "Bearer " + token\n',
    "Authorization: Bearer <token>\n",
    "Authorization: Bearer ${GITHUB_TOKEN}\n",
    "the bearer of bad news is a messenger_of_ill_tidings\n",
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQENBGJhc2U=\n-----END PGP PUBLIC KEY BLOCK-----\n",
    "-----BEGIN PGP SIGNATURE-----\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
    "Putty is a terminal; PuTTY-User-Key is not a file header\n",
    "postgres://app@db.internal:5432/app\n",  # no password
    "http://localhost:8080/path?q=1#frag\n",
    "postgres://app:${DB_PASSWORD}@db/app and redis://:{password}@cache\n",
    "mysql://user:password@localhost/db  (the docs' example)\n",
    "mongodb://<user>:<password>@host/db\n",
    "email me: bob@example.com, ssh git@github.com:org/repo.git\n",
    "ftp://anonymous:***@ftp.example.org/\n",
]


@pytest.mark.parametrize(("text", "secret", "kind"), SECRETS, ids=[s[2] for s in SECRETS])
def test_each_new_kind_is_redacted_and_reported(text: str, secret: str, kind: str) -> None:
    assert_redacted_on_line_3(text, secret, kind)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_left_alone(text: str) -> None:
    data = text.encode()
    assert redact(data).findings == ()


def test_a_url_password_keeps_the_user_and_host_visible() -> None:
    out = redact(b"a postgres://app:s3cr3t-Pa55@db:5432/x and redis://:Zq9Lw2Xc8Vb7@c/0\n")
    assert out.data == (
        b"a postgres://app:[REDACTED:url_password]@db:5432/x and "
        b"redis://:[REDACTED:url_password]@c/0\n"
    )


def test_a_putty_key_is_redacted_up_to_its_mac_line_only() -> None:
    out = redact(f"{PUTTY}\nafter = 1\n".encode()).data.decode()
    assert out == "[REDACTED:putty_key]\nafter = 1\n"


def test_redact_text_round_trips_unicode_and_lone_surrogates() -> None:
    text = f"é \ud800 {GOOGLE} 😀"
    clean, findings = redact_text(text)
    assert clean == "é \ud800 [REDACTED:google_api_key] 😀"
    assert [f.kind for f in findings] == ["google_api_key"]
    assert redact_text("nothing here") == ("nothing here", ())
    assert redact_text(f"x {GOOGLE}", marker="[redacted]")[0] == "x [redacted]"


def _corpus() -> list[bytes]:
    from tests.unit import test_context_secrets as older

    texts = [t for t, _s, _k in SECRETS] + NEAR_MISSES
    texts += [t for t, _s, _k in older.SECRETS] + older.CLEAN
    joined = "".join(texts)
    return [t.encode() for t in texts] + [joined.encode()]


def test_the_anchored_scan_finds_what_the_reference_scan_finds() -> None:
    """Anchors are an optimisation only: same spans as every pattern over the whole text."""
    corpus = _corpus()
    found_kinds = set()
    for data in corpus:
        fast = _spans(data)
        assert fast == _reference_spans(data), data[:80]
        found_kinds |= {kind for _s, _e, kind in fast}
    assert found_kinds == set(KINDS)  # the corpus exercises every detector


def test_the_anchored_scan_agrees_on_a_sample_of_the_standard_library() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))[:80]
    assert len(files) > 40
    for path in files:
        data = path.read_bytes()
        assert _spans(data) == _reference_spans(data) == [], path.name


_PIECES = [
    *(t for t, _s, _k in SECRETS),
    *NEAR_MISSES,
    *(
        "api_key",
        "DB_PASSWORD",
        "token",
        "client_secret",
        "auth",
        " = ",
        "=",
        ": ",
        ":",
        ":=",
        " ",
        "\t",
        "\n",
        '"',
        "'",
        "-",
        "_",
        ".",
        "(",
        "sk-",
        "sk-ant-api03-",
        "gh",
        "ghp_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "hf_",
        "AKIA",
        "ASIA",
        "AIza",
        "eyJ",
        "GR1348941",
        "Bearer ",
        "BEARER\t",
        "://",
        "postgres://",
        "u:",
        "@",
        "@host",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        "-----END RSA PRIVATE KEY-----",
        "PuTTY-User-Key-File-2: ssh-rsa",
        "Private-MAC: 0a1b",
        "https://hooks.slack.com/services/T0/B0/x",
    ),
]
_VALUES = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=8,
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_PIECES), _VALUES), max_size=30))
def test_anchored_and_reference_scans_agree_on_random_mixtures(parts: list[str]) -> None:
    data = "".join(parts).encode()
    assert _spans(data) == _reference_spans(data)

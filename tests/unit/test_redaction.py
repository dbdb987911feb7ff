"""scrub() and RedactionFilter: secrets out of every message, ordinary text left alone."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agentls.redaction import REDACTED, RedactionFilter, scrub

KEY_ALPHABET = st.characters(
    categories=(),
    include_characters="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
)


def test_known_values_are_removed_longest_first() -> None:
    text = "key=abc123456789 and its prefix abc123 and again abc123456789"
    assert scrub(text, ["abc123", "abc123456789"]) == (
        f"key={REDACTED} and its prefix {REDACTED} and again {REDACTED}"
    )


def test_empty_none_and_very_short_values_are_ignored() -> None:
    assert scrub("a short pin: 1234, nothing else", ["", None, "1234", "a"]) == (
        "a short pin: 1234, nothing else"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Incorrect API key provided: sk-proj-AbC123dEf456GhI789.",
            f"Incorrect API key provided: {REDACTED}.",
        ),
        ("anthropic said sk-ant-api03-abcdefghij_KLMNOP-qrs", f"anthropic said {REDACTED}"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", f"Authorization: {REDACTED}"),
        ("header was 'bearer abcdefgh12345678'", f"header was 'bearer {REDACTED}'"),
        ("x-api-key: 0123456789abcdef", f"x-api-key: {REDACTED}"),
        ('{"api_key": "hunter2hunter2", "ok": 1}', f'{{"api_key": "{REDACTED}", "ok": 1}}'),
        ("OPENAI_API_KEY=whatever-it-is ran", f"OPENAI_API_KEY={REDACTED} ran"),
        ("password=correct-horse;next", f"password={REDACTED};next"),
        ("push with ghp_0123456789abcdefghijABCDEFGHIJ0123", f"push with {REDACTED}"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijkl", REDACTED),
        ("aws AKIAIOSFODNN7EXAMPLE here", f"aws {REDACTED} here"),
        ("slack xoxb-123456789012-abcdefABCDEF", f"slack {REDACTED}"),
    ],
)
def test_well_known_shapes_are_removed(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "token budget exceeded: 60000 tokens, calibration pending",
        "Basic authentication is not supported by this server",
        "task-1234567890 finished; see the secret-file deny list",
        "HTTP 500 from api.openai.com: server_error: The server had an error",
        "connection failed: could not connect to 127.0.0.1:8080 ([Errno 111] Connection refused)",
        "the key is in the environment variable OPENAI_API_KEY",
    ],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert scrub(text) == text


@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    secret=st.text(KEY_ALPHABET, min_size=6, max_size=60),
)
def test_a_known_value_never_survives(before: str, after: str, secret: str) -> None:
    assume(secret not in REDACTED)
    out = scrub(before + secret + after + secret, [secret])
    assert secret not in out


@given(
    before=st.text(max_size=30),
    body=st.text(KEY_ALPHABET, min_size=20, max_size=60),
    prefix=st.sampled_from(["sk-", "sk-ant-", "sk-proj-", "ghp_"]),
)
def test_a_key_shape_never_survives_between_words(before: str, body: str, prefix: str) -> None:
    if prefix == "ghp_":  # GitHub tokens are alphanumeric
        body = body.replace("-", "a").replace("_", "b")
    key = prefix + body
    out = scrub(f"{before} {key} trailing")
    assert key not in out
    assert out.endswith(f"{REDACTED} trailing")


@given(st.text(max_size=200))
def test_scrubbing_twice_changes_nothing_more(text: str) -> None:
    once = scrub(text, ["canary-0123456789"])
    assert scrub(once, ["canary-0123456789"]) == once


def test_filter_scrubs_formatted_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter(["canary-secret-value"]))
    log = logging.getLogger("agentls.test_redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("calling with %s and %s", "canary-secret-value", "Bearer abcdefgh12345678")
        try:
            raise RuntimeError("failed with key canary-secret-value")
        except RuntimeError:
            log.exception("request failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert "canary-secret-value" not in output
    assert "abcdefgh12345678" not in output
    assert f"calling with {REDACTED} and Bearer {REDACTED}" in output
    assert "RuntimeError: failed with key" in output  # the traceback is kept, only the key goes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Shapes the scrubber gets from the content detectors (context/secrets.py).
        (
            "connect failed: postgres://app:s3cr3t-Pa55@db:5432/x",
            f"connect failed: postgres://app:{REDACTED}@db:5432/x",
        ),
        ("key AIza" + "SyD4v7Qx2Lm9Pk3Rt8Wn5Hb1Jc6Fg0Ze4Ua rejected", f"key {REDACTED} rejected"),
        ("hf token hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh bad", f"hf token {REDACTED} bad"),
        (
            "leaked -----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBGJh\n"
            "-----END PGP PRIVATE KEY BLOCK----- end",
            f"leaked {REDACTED} end",
        ),
    ],
)
def test_the_content_detectors_also_scrub_messages(text: str, expected: str) -> None:
    assert scrub(text) == expected

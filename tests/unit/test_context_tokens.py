"""Token estimates from bytes, and the inverse the builder budgets with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentls.context.tokens import bytes_within, estimate_tokens


def test_estimate_rounds_up() -> None:
    assert estimate_tokens(0) == 0
    assert estimate_tokens(1) == 1
    assert estimate_tokens(4) == 1
    assert estimate_tokens(5) == 2
    assert estimate_tokens(1000, bytes_per_token=3.3) == 304


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: estimate_tokens(-1), "n_bytes"),
        (lambda: estimate_tokens(10, 0), "bytes_per_token"),
        (lambda: estimate_tokens(10, float("nan")), "bytes_per_token"),
        (lambda: bytes_within(-1), "tokens"),
        (lambda: bytes_within(10, -2.0), "bytes_per_token"),
    ],
)
def test_bad_input_is_a_clear_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


@given(st.integers(0, 10**9), st.floats(0.5, 16, allow_nan=False))
def test_bytes_within_is_the_largest_size_within_the_budget(tokens: int, ratio: float) -> None:
    n = bytes_within(tokens, ratio)
    assert estimate_tokens(n, ratio) <= tokens
    assert estimate_tokens(n + 1, ratio) > tokens

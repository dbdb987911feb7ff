"""How many tokens a prompt costs, estimated from its size in bytes.

One function on purpose: budgets are enforced with it everywhere, so a later calibration (per
backend, from the usage figures providers report) changes one place. Four UTF-8 bytes per token is
the usual figure for English text and code with BPE tokenizers; it errs high for non-Latin
scripts, which cost more bytes per token, so a budget is rarely exceeded by the estimate.
"""

from __future__ import annotations

import math

DEFAULT_BYTES_PER_TOKEN = 4.0
"""UTF-8 bytes per token assumed until a backend is calibrated."""


def estimate_tokens(n_bytes: int, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN) -> int:
    """The estimated token count of ``n_bytes`` bytes of UTF-8 text, rounded up.

    Args:
        n_bytes: the size of the text in UTF-8 bytes.
        bytes_per_token: the calibration; must be positive.

    Raises:
        ValueError: a negative size or a non-positive ratio.
    """
    if n_bytes < 0:
        raise ValueError("n_bytes must not be negative")
    if not bytes_per_token > 0:
        raise ValueError("bytes_per_token must be positive")
    return math.ceil(n_bytes / bytes_per_token)


def bytes_within(tokens: int, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN) -> int:
    """The most bytes whose estimate stays within ``tokens``: the inverse of ``estimate_tokens``.

    Args:
        tokens: a token budget.
        bytes_per_token: the same calibration as for ``estimate_tokens``.

    Raises:
        ValueError: a negative budget or a non-positive ratio.
    """
    if tokens < 0:
        raise ValueError("tokens must not be negative")
    if not bytes_per_token > 0:
        raise ValueError("bytes_per_token must be positive")
    n = math.floor(tokens * bytes_per_token)
    while n > 0 and estimate_tokens(n, bytes_per_token) > tokens:  # float rounding, once at most
        n -= 1
    return n

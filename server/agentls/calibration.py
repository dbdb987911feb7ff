"""Bytes-per-token calibration, learned from the prompt token counts providers report.

Budgets are enforced with an estimate (``context.tokens.estimate_tokens``: bytes divided by a
ratio). Four bytes per token is a fair guess for English and code, but tokenizers differ by model
and text, so every successful run that reports ``prompt_tokens`` refines the ratio of its
``(backend, model)`` pair with an exponential moving average. The ratios live in
``data_dir/calibration.json`` so they survive restarts; the file is tiny and rewritten atomically.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from agentls.context.tokens import DEFAULT_BYTES_PER_TOKEN

logger = logging.getLogger(__name__)

FILE_NAME = "calibration.json"
SMOOTHING = 0.3
"""Weight of the newest observation; older ones fade geometrically."""
MIN_RATIO, MAX_RATIO = 1.0, 8.0
"""Observations outside this range are not tokenizer behaviour but accounting quirks; clamp."""
MIN_PROMPT_BYTES = 256
"""Tiny prompts are dominated by the provider's fixed per-message overhead; they teach nothing."""
MAX_KEYS = 256
"""At most this many (backend, model) pairs are remembered; the least used go first."""
SAVE_INTERVAL = 10.0
"""Seconds between writes of the file; ``flush`` writes what is left (at shutdown)."""


@dataclass(frozen=True)
class Estimate:
    """The ratio a run uses, and whether it was learned (else it is the default guess)."""

    bytes_per_token: float
    calibrated: bool
    samples: int = 0

    def to_dict(self) -> dict[str, float | bool | int]:
        """The protocol form (``token_estimate`` in results)."""
        return {
            "bytes_per_token": round(self.bytes_per_token, 3),
            "calibrated": self.calibrated,
            "samples": self.samples,
        }


class Calibration:
    """Owner of the learned ratios; changed on the event loop only."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._ratios: dict[str, tuple[float, int]] = {}
        """``backend\\x00model`` -> (ratio, samples)."""
        self._dirty = False
        self._saved_at = float("-inf")
        self._load()

    @staticmethod
    def _key(backend: str, model: str | None) -> str:
        return f"{backend}\x00{model or ''}"

    def estimate(self, backend: str | None, model: str | None) -> Estimate:
        """The ratio to budget a run on this backend and model with."""
        if backend is None:
            return Estimate(DEFAULT_BYTES_PER_TOKEN, False)
        found = self._ratios.get(self._key(backend, model))
        if found is None:
            return Estimate(DEFAULT_BYTES_PER_TOKEN, False)
        return Estimate(found[0], True, found[1])

    def observe(
        self, backend: str, model: str | None, prompt_bytes: int, prompt_tokens: int
    ) -> Estimate:
        """Learn from one run's reported prompt tokens; returns the updated estimate."""
        if prompt_tokens <= 0 or prompt_bytes < MIN_PROMPT_BYTES:
            return self.estimate(backend, model)
        observed = min(MAX_RATIO, max(MIN_RATIO, prompt_bytes / prompt_tokens))
        key = self._key(backend, model)
        old = self._ratios.pop(key, None)
        if old is None:
            ratio, samples = observed, 1
        else:
            ratio, samples = (1 - SMOOTHING) * old[0] + SMOOTHING * observed, old[1] + 1
        self._ratios[key] = (ratio, samples)  # re-inserted: most recently used last
        while len(self._ratios) > MAX_KEYS:
            self._ratios.pop(next(iter(self._ratios)))
        self._dirty = True
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL:
            self.flush()
        return Estimate(ratio, True, samples)

    def flush(self) -> None:
        """Write the ratios if they changed since the last write."""
        if self._dirty:
            self._save()
            self._dirty = False
            self._saved_at = time.monotonic()

    def _load(self) -> None:
        if self._path is None:
            return
        try:
            data = orjson.loads(self._path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError):
            logger.warning("calibration file %s is unreadable; starting afresh", self._path)
            return
        if not isinstance(data, dict):
            return
        for key, value in data.items():
            if (
                isinstance(key, str)
                and isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], int | float)
                and isinstance(value[1], int)
                and MIN_RATIO <= value[0] <= MAX_RATIO
            ):
                self._ratios[key] = (float(value[0]), value[1])

    def _save(self) -> None:
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".calibration-")
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps({k: list(v) for k, v in self._ratios.items()}))
            os.replace(tmp, self._path)
        except OSError as e:  # calibration is an optimisation; never fail a run over it
            logger.warning("could not save calibration: %s", e.strerror or e)

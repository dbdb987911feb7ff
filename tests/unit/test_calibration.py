"""Bytes-per-token calibration: learning, smoothing, persistence, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls.calibration import MAX_RATIO, Calibration


def test_uncalibrated_until_usage_is_seen(tmp_path: Path) -> None:
    cal = Calibration(tmp_path / "c.json")
    first = cal.estimate("local", "m")
    assert (first.bytes_per_token, first.calibrated) == (4.0, False)
    learned = cal.observe("local", "m", prompt_bytes=3000, prompt_tokens=1000)
    assert learned.calibrated and learned.bytes_per_token == pytest.approx(3.0)
    assert cal.estimate("local", "other-model").calibrated is False
    assert cal.estimate("other", "m").calibrated is False


def test_moving_average_and_clamping(tmp_path: Path) -> None:
    cal = Calibration(tmp_path / "c.json")
    cal.observe("b", None, 3000, 1000)
    smoothed = cal.observe("b", None, 5000, 1000)
    assert 3.0 < smoothed.bytes_per_token < 5.0 and smoothed.samples == 2
    wild = Calibration(None).observe("b", None, 100_000, 1)
    assert wild.bytes_per_token == MAX_RATIO


def test_tiny_prompts_teach_nothing(tmp_path: Path) -> None:
    cal = Calibration(tmp_path / "c.json")
    assert cal.observe("b", None, 40, 20).calibrated is False
    assert cal.observe("b", None, 4000, 0).calibrated is False


def test_survives_a_restart_and_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "c.json"
    Calibration(path).observe("b", "m", 3500, 1000)
    again = Calibration(path).estimate("b", "m")
    assert again.calibrated and again.bytes_per_token == pytest.approx(3.5)
    path.write_bytes(b"{not json")
    assert Calibration(path).estimate("b", "m").calibrated is False
    path.write_bytes(b'{"b\\u0000m": [99.0, 1], "x\\u0000": "bad"}')
    assert Calibration(path).estimate("b", "m").calibrated is False


def test_writes_are_throttled_and_flushed(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cal = Calibration(path)
    cal.observe("b", None, 3000, 1000)  # the first observation is written at once
    cal.observe("b", None, 5000, 1000)  # within the interval: kept in memory
    assert Calibration(path).estimate("b", None).samples == 1
    cal.flush()
    assert Calibration(path).estimate("b", None).samples == 2

import pytest

from engine.core.timeparse import TimeParseError, parse_time

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, fixed: no test reads the clock


@pytest.mark.parametrize("text, expected", [
    ("1767225600", NOW),
    ("1700000000", 1_700_000_000.0),
    ("1767225600.5", NOW + 0.5),
    (" 1767225600 ", NOW),
])
def test_seconds_since_1970(text, expected):
    assert parse_time(text, now=0.0) == expected


@pytest.mark.parametrize("text", [
    "2026-01-01", "2026-01-01T00:00", "2026-01-01T00:00:00", "2026-01-01 00:00:00", "2026-01-01T00:00Z",
    "2026-01-01T00:00:00z", "2026-01-01T01:00:00+01:00", "2025-12-31T19:00:00-05:00", "2026-01-01T00:00:00.000+00:00",
])
def test_iso_8601_with_or_without_an_offset(text):
    assert parse_time(text, now=0.0) == NOW


def test_a_time_without_an_offset_is_utc_not_local(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    if hasattr(time, "tzset"):
        time.tzset()
    try:
        assert parse_time("2026-01-01T08:00") == NOW + 8 * 3600
    finally:
        monkeypatch.undo()
        if hasattr(time, "tzset"):
            time.tzset()


@pytest.mark.parametrize("text, seconds", [
    ("45s", 45), ("30m", 1800), ("8h", 8 * 3600), ("2d", 2 * 86400), ("1w", 7 * 86400), ("2D", 2 * 86400),
    ("0m", 0),
])
def test_a_span_is_now_minus_the_span(text, seconds):
    assert parse_time(text, now=NOW) == NOW - seconds


@pytest.mark.parametrize("text", ["last tuesday", "", "soon", "30 minutes", "2026-13-01", "1.5h", "-2d", "2026-01-01T25:00"])
def test_a_bad_value_is_one_sentence(text):
    with pytest.raises(TimeParseError) as e:
        parse_time(text, now=NOW)
    msg = str(e.value)
    assert msg.startswith(f"{text!r} is not a time: use ") and "\n" not in msg and msg.count(". ") == 0
    assert isinstance(e.value, ValueError)

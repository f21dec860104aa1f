"""The two shared builders the floor plan insists on: one backoff rule, one dead-letter shape."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qwatch.deadletters import ERROR_CAP, dead_letter
from qwatch.ids import event_id
from qwatch.retry import backoff_delay


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=3600),
    u=st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_is_doubling_capped_and_jitter_keeps_at_least_half(
    attempt: int, base: float, cap: float, u: float
) -> None:
    plain = backoff_delay(attempt, base, cap)
    assert plain == min(cap, base * 2.0 ** min(attempt - 1, 30))
    jittered = backoff_delay(attempt, base, cap, jitter=lambda: u)
    assert plain / 2 <= jittered <= plain
    assert backoff_delay(attempt + 1, base, cap) >= plain  # never shrinks as failures go on


def test_first_retry_waits_the_base_and_doublings_can_stop_early() -> None:
    assert backoff_delay(1, 2.0) == 2.0
    assert backoff_delay(4, 2.0) == 16.0
    assert backoff_delay(20, 1.0, max_doublings=5) == 32.0


def test_dead_letter_id_is_deterministic_and_names_its_input() -> None:
    a = dead_letter(source="pypi-json", reason="json", error="bad", pointer="https://x/p", observed_at=1)
    b = dead_letter(source="pypi-json", reason="json", error="other text", pointer="https://x/p", observed_at=2)
    assert a.event_id == b.event_id == event_id("pypi-json", "https://x/p", "json")
    keyed = dead_letter(source="webhook", reason="delivery", error="e", pointer="u", observed_at=1, key="alert-1")
    assert keyed.event_id == event_id("webhook", "alert-1", "delivery")
    two_bodies = {
        dead_letter(source="s", reason="r", error="e", pointer="p", observed_at=1, extra_key=(d,)).event_id
        for d in ("a", "b")
    }
    assert len(two_bodies) == 2


def test_dead_letter_caps_and_escapes_what_it_keeps() -> None:
    letter = dead_letter(
        source="s",
        reason="r",
        error="\x1b[31m" + "x" * 5000,
        pointer="p",
        observed_at=1,
        payload=b"\xff\xfe" + b"y" * 10_000,
        payload_cap=100,
    )
    assert "\x1b" not in letter.error and len(letter.error) < ERROR_CAP + 40
    assert letter.payload is not None and len(letter.payload) <= 100 and letter.payload.startswith("\ufffd")
    assert dead_letter(source="s", reason="r", error="e", pointer="p", observed_at=1, payload=b"").payload is None

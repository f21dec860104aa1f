"""The webhook HMAC cannot be bypassed: ``verify_signature`` accepts exactly one thing and never raises.

Accepted: ``sha256=<hex HMAC(secret, "<ts>." + body)>`` with the plain decimal timestamp the sender wrote, within the
tolerance, in any header letter case. Everything else is refused, including the inputs that used to raise
(``²`` or 5,000 digits as a timestamp) and headers repeated with different values.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from qwatch.config import Secret
from subscribers.alerts import webhook
from subscribers.alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature

SECRET = "whsec-test-key"
NOW = 1_800_000_000
BODY = b'{"specversion":"1.0","id":"a1","data":{"package":"delta"}}'
TOLERANCE = 300.0


def _headers(body: bytes = BODY, ts: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body, ts), TIMESTAMP_HEADER: str(ts)}


def _verify(headers: dict[str, str], body: bytes = BODY, secret: str | Secret = SECRET) -> bool:
    return verify_signature(secret, body, headers, tolerance=TOLERANCE, now=NOW)


def test_a_genuine_request_verifies_in_any_header_case() -> None:
    good = _headers()
    assert _verify(good) and _verify(good, secret=Secret(SECRET))
    assert _verify({k.upper(): v for k, v in good.items()})
    assert _verify({k.lower(): f"  {v} " for k, v in good.items()})  # header values arrive trimmed or not
    assert _verify(_headers(ts=NOW - 300)) and _verify(_headers(ts=NOW + 300))  # the edges of the tolerance


def _forged_signature(kind: str) -> str:
    mac = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256)
    return {
        "empty": "",
        "garbage": "sha256=not-hex-at-all",
        "bare-hex": mac.hexdigest(),
        "upper-prefix": "SHA256=" + mac.hexdigest(),
        "sha1": "sha1=" + hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha1).hexdigest(),
        "sha512": "sha512=" + hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha512).hexdigest(),
        "no-timestamp-in-mac": "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),
        "upper-hex": "sha256=" + mac.hexdigest().upper(),
        "truncated": "sha256=" + mac.hexdigest()[:32],
        "two-signatures": f"sha256=00, sha256={mac.hexdigest()}",
        "non-ascii": "sha256=" + "é" * 64,
    }[kind]


@pytest.mark.parametrize(
    "kind",
    ["empty", "garbage", "bare-hex", "upper-prefix", "sha1", "sha512", "no-timestamp-in-mac", "upper-hex",
     "truncated", "two-signatures", "non-ascii"],
)  # fmt: skip
def test_forged_or_malformed_signatures_are_refused(kind: str) -> None:
    assert not _verify({SIGNATURE_HEADER: _forged_signature(kind), TIMESTAMP_HEADER: str(NOW)})


@pytest.mark.parametrize(
    ("case", "headers", "body"),
    [
        ("no headers", {}, BODY),
        ("no signature", {TIMESTAMP_HEADER: str(NOW)}, BODY),
        ("no timestamp", {SIGNATURE_HEADER: sign(SECRET, BODY, NOW)}, BODY),
        ("other body", _headers(), BODY.replace(b"delta", b"deltb")),
        ("body with a trailing newline", _headers(), BODY + b"\n"),
        ("wrong secret", _headers(secret="whsec-other"), BODY),
        ("replayed: 301 s old", _headers(ts=NOW - 301), BODY),
        ("replayed: a day old", _headers(ts=NOW - 86_400), BODY),
        ("future beyond tolerance", _headers(ts=NOW + 301), BODY),
    ],
)
def test_missing_tampered_replayed_and_future_requests_are_refused(
    case: str, headers: dict[str, str], body: bytes
) -> None:
    assert not _verify(headers, body), case


@pytest.mark.parametrize(
    "stamp",
    ["", " ", "abc", "-1", "+1800000000", "1800000000.0", "0x6b49d200", "1e9", "²", "١٨٠٠٠٠٠٠٠٠", "0" + str(NOW),
     "1" * 5000, str(NOW) + "\x00"],
    ids=repr,
)  # fmt: skip
def test_timestamps_other_than_plain_decimal_are_refused_without_raising(stamp: str) -> None:
    """``²`` and 5,000 digits used to raise ValueError out of ``int()``; a zero-padded copy used to verify."""
    body_mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    for signature in (sign(SECRET, BODY, NOW), "sha256=" + body_mac):
        assert not _verify({SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp})


def test_repeated_headers_with_different_values_are_refused() -> None:
    good = _headers()
    assert not _verify({**good, SIGNATURE_HEADER.lower(): "sha256=" + "0" * 64})
    assert not _verify({**good, TIMESTAMP_HEADER.upper(): str(NOW - 1)})
    assert _verify({**good, SIGNATURE_HEADER.lower(): good[SIGNATURE_HEADER]})  # the same value twice is fine


@pytest.mark.parametrize("secret", ["", Secret("")])
def test_an_empty_secret_verifies_nothing(secret: str | Secret) -> None:
    assert not _verify(_headers(secret=""), secret=secret)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", spy)
    assert _verify(_headers())
    assert not _verify({SIGNATURE_HEADER: "sha256=" + "0" * 64, TIMESTAMP_HEADER: str(NOW)})
    assert len(calls) == 2 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


@given(
    body=st.binary(max_size=200),
    other=st.binary(max_size=200),
    ts=st.integers(NOW - 300, NOW + 300),
    other_ts=st.integers(NOW - 300, NOW + 300),
)
@example(body=b"a", other=b"a ", ts=NOW, other_ts=NOW)
@example(body=b"", other=b"", ts=NOW, other_ts=NOW + 1)
def test_any_change_of_body_or_timestamp_fails(body: bytes, other: bytes, ts: int, other_ts: int) -> None:
    """A signature made for (body, ts) verifies for exactly that pair, even with both inside the tolerance."""
    assume((body, ts) != (other, other_ts))
    signature = sign(SECRET, body, ts)
    assert verify_signature(SECRET, body, {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: str(ts)}, now=NOW)
    assert not verify_signature(SECRET, other, {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: str(other_ts)}, now=NOW)


@given(
    headers=st.dictionaries(
        st.sampled_from([SIGNATURE_HEADER, SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER, TIMESTAMP_HEADER.upper(), "X"]),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=64),
)
def test_arbitrary_headers_never_raise_and_never_verify(headers: dict[str, str], body: bytes) -> None:
    assert not verify_signature(SECRET, body, headers, now=NOW)

"""The README's receiver example is real code: extracted from README.md and run against the real signer, and it
agrees with ``verify_signature`` on genuine, tampered, stale and malformed requests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from subscribers.alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature
from tests.fixture_paths import REPO

README = REPO / "README.md"
SECRET = "readme-secret"


def _readme_verify() -> Callable[..., bool]:
    text = README.read_text()
    block = re.search(r"<!-- verify-example -->\n```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its webhook verification example (marker <!-- verify-example -->)"
    scope: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    verify = scope["verify"]
    assert callable(verify)
    return verify  # type: ignore[return-value]


VERIFY = _readme_verify()


def _headers(body: bytes, stamp: int, secret: str = SECRET) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, body, stamp)}


def test_the_readme_example_accepts_what_the_signer_signs_and_refuses_the_rest() -> None:
    body = b'{"id":"abc","data":{"package":"evil-pkg"}}'
    now = int(time.time())
    assert VERIFY(SECRET.encode(), body, _headers(body, now))
    assert VERIFY(SECRET.encode(), body, {k.lower(): v for k, v in _headers(body, now).items()})
    assert not VERIFY(SECRET.encode(), body + b" ", _headers(body, now))
    assert not VERIFY(b"other", body, _headers(body, now))
    assert not VERIFY(SECRET.encode(), body, _headers(body, now - 3600))
    moved = {**_headers(body, now), TIMESTAMP_HEADER: str(now + 1)}
    assert not VERIFY(SECRET.encode(), body, moved)
    assert not VERIFY(SECRET.encode(), body, {SIGNATURE_HEADER: sign(SECRET, body, now)})
    assert not VERIFY(SECRET.encode(), body, {**_headers(body, now), TIMESTAMP_HEADER: "²"})


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=200),
    skew=st.integers(min_value=-1000, max_value=1000),
    secret=st.sampled_from([SECRET, "other"]),
    tamper=st.booleans(),
)
def test_the_readme_example_agrees_with_verify_signature(body: bytes, skew: int, secret: str, tamper: bool) -> None:
    now = int(time.time())
    headers = _headers(body, now + skew, secret)
    sent = body + b"x" if tamper else body
    expected = verify_signature(SECRET, sent, headers, tolerance=300, now=now)
    # Keep away from the tolerance edge, where the two clocks (ours and the example's time.time()) could differ.
    if abs(abs(skew) - 300) > 2:
        assert VERIFY(SECRET.encode(), sent, headers) == expected

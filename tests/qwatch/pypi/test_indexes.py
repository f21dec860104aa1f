"""qwatch.pypi.indexes: one canonical spelling per index URL, and "is this PyPI?" decided on it.

The lockfile-level consequences (every parser classifying these spellings as PyPI) are in
tests/subscribers/inventory/lockfiles/test_unverified.py; here the functions themselves, including the property that no
URL whose host is not PyPI's can ever be called PyPI.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qwatch.pypi.indexes import PYPI_SIMPLE_URL, canonical_index_url, is_pypi_file_url, is_pypi_index


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://pypi.org/simple/", "https://pypi.org/simple/"),
        ("https://PyPI.org/simple/", "https://pypi.org/simple/"),
        ("HTTPS://PYPI.ORG/simple", "https://pypi.org/simple/"),
        ("https://pypi.org:443/simple", "https://pypi.org/simple/"),
        ("https://pypi.org/simple", "https://pypi.org/simple/"),
        ("https://pypi.org/simple///", "https://pypi.org/simple/"),
        ("  https://pypi.org/simple/  ", "https://pypi.org/simple/"),
        ("https://user:s3cret@pypi.org/simple/", "https://pypi.org/simple/"),
        ("https://pypi.org/simple/#egg", "https://pypi.org/simple/"),
        ("https://pypi.org./simple/", "https://pypi.org/simple/"),
        ("http://corp.example.com:80/Simple", "http://corp.example.com/Simple/"),  # path case is kept
        ("http://corp.example.com:443/simple", "http://corp.example.com:443/simple/"),  # not http's default port
        ("https://corp.example.com:8443/simple", "https://corp.example.com:8443/simple/"),
        ("https://[::1]:443/simple", "https://[::1]/simple/"),
        ("https://corp.example.com/simple/?token=x", "https://corp.example.com/simple/?token=x"),
        ("file:///srv/wheels", "file:///srv/wheels/"),
        ("https://corp.example.com", "https://corp.example.com/"),
    ],
)
def test_canonical_index_url(url: str, canonical: str) -> None:
    assert canonical_index_url(url) == canonical
    assert canonical_index_url(canonical) == canonical


@pytest.mark.parametrize(
    "url",
    [
        "https://pypi.org/simple/",
        "https://PyPI.org/simple/",
        "https://pypi.org:443/simple",
        "https://pypi.org/simple",
        "https://pypi.python.org/simple/",
        "https://PYPI.python.org:443/simple",
        "https://token@pypi.org/simple/",
        "https://pypi.org/pypi",  # the JSON API base: PyPI's own server too
    ],
)
def test_pypi_spellings_are_pypi(url: str) -> None:
    assert is_pypi_index(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://pypi.org/simple/",  # no TLS: anyone on the path can answer
        "https://pypi.org:8443/simple/",
        "https://test.pypi.org/simple/",
        "https://pypi.org.evil.example/simple/",
        "https://pypi.org@evil.example/simple/",  # pypi.org is the user name here
        "https://evil.example\\@pypi.org/simple/",  # WHATWG parsers read the backslash as a slash
        "https://pypi.org/SIMPLE/",
        "https://pypi.org/simple/extra/",
        "https://pypi.org/simple/?x=1",
        "https://pypi.org:notaport/simple/",
        "https://[pypi.org/simple/",
        "${PIP_INDEX_URL}",
        "./simple",
        "",
    ],
)
def test_other_spellings_are_not_pypi(url: str) -> None:
    assert not is_pypi_index(url)


@pytest.mark.parametrize(
    ("url", "served_by_pypi"),
    [
        ("https://files.pythonhosted.org/packages/x.whl", True),
        ("https://FILES.pythonhosted.org:443/packages/x.whl", True),
        ("https://pypi.org/packages/x.whl", True),
        ("http://files.pythonhosted.org/packages/x.whl", False),
        ("https://evil.example\\@files.pythonhosted.org/x.whl", False),
        ("https://files.pythonhosted.org.evil.example/x.whl", False),
        ("https://files.pythonhosted.org:bad/x.whl", False),
        ("./x.whl", False),
    ],
)
def test_is_pypi_file_url(url: str, served_by_pypi: bool) -> None:
    assert is_pypi_file_url(url) is served_by_pypi


urls = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}://{}{}{}{}".format,
        st.sampled_from(["https", "HTTPS", "http", "file", "", "hTtPs"]),
        st.sampled_from(["", "u:p@", "pypi.org@", "a\\@"]),
        st.sampled_from(["pypi.org", "PyPI.org", "pypi.python.org", "evil.example", "[::1]", "pypi.org.", ""]),
        st.sampled_from(["", ":443", ":80", ":8443", ":", ":x"]),
        st.sampled_from(["", "/", "/simple", "/simple/", "/simple//", "/SIMPLE", "/pypi", "/simple/#f", "/s?q"]),
    ),
)


@given(urls)
def test_canonical_is_total_and_idempotent(url: str) -> None:
    once = canonical_index_url(url)
    assert canonical_index_url(once) == once


@given(urls)
def test_only_pypi_hosts_over_https_are_pypi(url: str) -> None:
    """Canonicalization only merges spellings of one server: nothing else can become PyPI."""
    if is_pypi_index(url):
        parts = urlsplit(url.strip())
        assert parts.scheme.lower() == "https"
        assert (parts.hostname or "").removesuffix(".") in ("pypi.org", "pypi.python.org")
        assert "\\" not in url
        assert canonical_index_url(url) in (PYPI_SIMPLE_URL, "https://pypi.python.org/simple/") or "/pypi" in url

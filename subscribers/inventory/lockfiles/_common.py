"""Helpers shared by the parsers: typed access to decoded TOML/JSON and the PyPI-or-not decision (made on
canonical index URLs, :mod:`qwatch.pypi.indexes`).

Decoded documents are untrusted ``object`` trees; checking every field here keeps ``TypeError``/``KeyError``
out of the parsers, so bad input can only ever surface as :class:`LockfileError`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from qwatch.pypi.indexes import is_pypi_file_url, is_pypi_index

from .model import LockfileError, PackageSource

PYPI = PackageSource("pypi", None)


def load_toml(text: str, path: str, what: str) -> dict[str, object]:
    """Decode TOML, turning every decoder failure into an actionable :class:`LockfileError`."""
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise LockfileError(path, f"not valid TOML ({exc}); regenerate the {what} with its tool") from exc


def load_json_object(text: str, path: str, what: str) -> dict[str, object]:
    """Decode a JSON object, turning every decoder failure into an actionable :class:`LockfileError`."""
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LockfileError(path, f"not valid JSON ({exc}); regenerate the {what} with its tool") from exc
    return table(data, "the document", path)


def table(value: object, where: str, path: str) -> dict[str, object]:
    """A TOML table / JSON object, or an error naming the field."""
    if not isinstance(value, dict):
        raise LockfileError(path, f"{where} must be a table/object, got {type(value).__name__}")
    return {str(key): item for key, item in value.items()}


def opt_table(value: object, where: str, path: str) -> dict[str, object]:
    """Like :func:`table`, but a missing field means empty."""
    return {} if value is None else table(value, where, path)


def array(value: object, where: str, path: str) -> list[object]:
    """A TOML/JSON array, missing meaning empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise LockfileError(path, f"{where} must be an array, got {type(value).__name__}")
    return list(value)


def tables(value: object, where: str, path: str) -> list[dict[str, object]]:
    """An array of tables, the shape of ``[[package]]`` and dependency lists."""
    return [table(item, f"{where}[{index}]", path) for index, item in enumerate(array(value, where, path))]


def opt_str(value: object, where: str, path: str) -> str | None:
    """A string field that may be absent."""
    if value is None or isinstance(value, str):
        return value
    raise LockfileError(path, f"{where} must be a string, got {type(value).__name__}")


def req_str(value: object, where: str, path: str) -> str:
    """A string field that must be present and non-empty."""
    text = opt_str(value, where, path)
    if not text:
        raise LockfileError(path, f"{where} is missing or empty; the lockfile is incomplete, regenerate it")
    return text


def str_list(value: object, where: str, path: str) -> list[str]:
    """An array of strings, missing meaning empty."""
    return [req_str(item, f"{where}[{i}]", path) for i, item in enumerate(array(value, where, path))]


def flag(value: object, where: str, path: str) -> bool:
    """A boolean field, missing meaning false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise LockfileError(path, f"{where} must be true or false, got {type(value).__name__}")


def redact(url: str) -> str:
    """Drop credentials (``user:token@``) so an inventory is safe to log; a bare ``git@`` user is kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    keep = "git@" if userinfo == "git" else ""
    return urlunsplit(parts._replace(netloc=keep + host))


def index_source(url: str | None) -> PackageSource:
    """PyPI when no index is named or it is PyPI; otherwise the private index, never PyPI."""
    if url is None or is_pypi_index(url):
        return PYPI
    return PackageSource("index", redact(url))


def checked_against_files(source: PackageSource, file_urls: Iterable[str]) -> PackageSource:
    """A "PyPI" package whose recorded files live on another host is not from PyPI.

    uv and PEP 751 installers download the recorded URLs, not what the index would serve, and a tampered
    lock would look exactly like this.
    """
    if source.kind != "pypi":
        return source
    for url in file_urls:
        if not is_pypi_file_url(url):
            return PackageSource("url", redact(url))
    return source


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    """Keep first occurrences in order, so output is stable and free of repeats."""
    return tuple(dict.fromkeys(items))


def hash_table(value: object, where: str, path: str) -> list[str]:
    """PEP 751 ``hashes = {sha256 = "..."}`` as ``algo:digest`` strings, the form the other formats use."""
    return [
        f"{algo}:{req_str(digest, f'{where}.{algo}', path)}" for algo, digest in opt_table(value, where, path).items()
    ]

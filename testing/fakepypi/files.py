"""Real distribution files for the fake PyPI (opt-in: ``FakePyPI(serve_files=True)``).

Why: by default the fake only *names* files (CDN URLs and digests derived from the filename), which is all an
ingestor needs. Mirroring tools and installers download the files and check their hashes: bandersnatch verifies
each file's sha256 against the JSON API, pip checks the ``#sha256=`` fragment and the PEP 658 ``.metadata`` hash.
So in this mode every file is a small, valid, deterministic distribution (a wheel with ``METADATA``, ``WHEEL`` and
``RECORD``; an sdist tarball with ``PKG-INFO``) served at ``<base>/packages/<b2>/<b2>/<rest>/<filename>`` (the
layout files.pythonhosted.org uses, which bandersnatch copies under ``web/packages/``), and the digests the pages
announce are those of the bytes served.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import threading
import zipfile
from dataclasses import dataclass

from .render import Digests

_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest timestamp: bytes independent of the clock
_WHEEL = b"Wheel-Version: 1.0\nGenerator: qwatch-fakepypi\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file's bytes, its PEP 658 metadata, and what the pages announce for it."""

    content: bytes
    metadata: bytes | None
    digests: Digests


def _name_version(filename: str) -> tuple[str, str]:
    """Project and version from a wheel or sdist filename (best effort: the fake names its own files)."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        return parts[0], parts[1] if len(parts) > 1 else "0"
    stem = filename
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".egg"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name, _, version = stem.rpartition("-")
    return (name or stem), (version or "0")


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {name} (fake)\n\n".encode()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(filename: str) -> tuple[bytes, bytes]:
    """A minimal valid wheel for ``filename`` and its METADATA bytes."""
    name, version = _name_version(filename)
    dist_info = f"{name}-{version}.dist-info"
    metadata = _metadata(name.replace("_", "-"), version)
    files = {
        f"{name}/__init__.py": f"# {filename}\n".encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": _WHEEL,
    }
    record = "\n".join([*(_record_line(p, d) for p, d in files.items()), f"{dist_info}/RECORD,,"]) + "\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, _EPOCH), data)
    return buf.getvalue(), metadata


def build_sdist(filename: str) -> bytes:
    """A small gzip tarball with ``PKG-INFO``, byte-identical across runs."""
    name, version = _name_version(filename)
    data = _metadata(name, version)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size, info.mtime = len(data), 0
        tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


class FileStore:
    """Builds each file once, on first use, and serves it by path; digests follow the bytes."""

    def __init__(self) -> None:
        self.base_url = ""
        self._lock = threading.Lock()
        self._by_name: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}

    def get(self, filename: str) -> StoredFile:
        """The stored file for ``filename`` (built on first use)."""
        with self._lock:
            stored = self._by_name.get(filename)
            if stored is not None:
                return stored
            if filename.endswith(".whl"):
                content, metadata = build_wheel(filename)
            else:
                content, metadata = build_sdist(filename), None
            blake = hashlib.blake2b(content, digest_size=32).hexdigest()
            path = f"/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}"
            stored = StoredFile(
                content,
                metadata,
                Digests(
                    sha256=hashlib.sha256(content).hexdigest(),
                    md5=hashlib.md5(content, usedforsecurity=False).hexdigest(),
                    blake2b_256=blake,
                    metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata is not None else None,
                    size=len(content),
                    url=path,
                ),
            )
            self._by_name[filename] = stored
            self._by_path[path] = stored
            return stored

    def digests(self, filename: str) -> Digests:
        """What the pages announce: the URL is absolute once the server runs (bandersnatch needs that)."""
        facts = self.get(filename).digests
        return Digests(
            facts.sha256, facts.md5, facts.blake2b_256, facts.metadata_sha256, facts.size, self.base_url + facts.url
        )

    def read(self, path: str) -> bytes | None:
        """The bytes at ``path`` (``/packages/...``, or its ``.metadata``), ``None`` if unknown."""
        with self._lock:
            stored = self._by_path.get(path)
            if stored is not None:
                return stored.content
            if path.endswith(".metadata"):
                stored = self._by_path.get(path.removesuffix(".metadata"))
                if stored is not None and stored.metadata is not None:
                    return stored.metadata
        return None

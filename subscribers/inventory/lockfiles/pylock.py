"""PEP 751 ``pylock.toml`` / ``pylock.<name>.toml`` to an :class:`Inventory`.

PEP 751 edges are optional and usually absent, so without them every package counts as direct; with them,
packages nothing depends on are. The file has no project root.
"""

from __future__ import annotations

from dataclasses import replace

from ._common import (
    checked_against_files,
    dedupe,
    flag,
    hash_table,
    index_source,
    load_toml,
    opt_str,
    opt_table,
    redact,
    req_str,
    tables,
)
from .model import Inventory, LockedPackage, LockfileError, PackageSource, normalize


def parse(text: str, path: str = "pylock.toml") -> Inventory:
    """Parse lock text; refuses lock versions whose major number it does not know, as PEP 751 requires."""
    doc = load_toml(text, path, "pylock.toml (e.g. `uv export --format pylock.toml`)")
    version = req_str(doc.get("lock-version"), "lock-version", path)
    if version.split(".")[0] != "1":
        raise LockfileError(path, f"lock-version {version!r} is not supported (only 1.x); upgrade quarantine-watch")
    drafts: list[LockedPackage] = []
    for index, record in enumerate(tables(doc.get("packages"), "[[packages]]", path)):
        where = f"[[packages]] #{index + 1}"
        name = req_str(record.get("name"), f"{where} name", path)
        where = f"{where} ({name})"
        deps = tables(record.get("dependencies"), f"{where} dependencies", path)
        drafts.append(
            LockedPackage(
                name=name,
                normalized=normalize(name),
                version=opt_str(record.get("version"), f"{where} version", path),
                source=_source(record, where, path),
                hashes=_hashes(record, where, path),
                markers=opt_str(record.get("marker"), f"{where} marker", path),
                direct=True,
                dependencies=tuple(
                    sorted({normalize(req_str(dep.get("name"), f"{where} dependency name", path)) for dep in deps})
                ),
            )
        )
    depended = {dep for package in drafts for dep in package.dependencies if dep != package.normalized}
    packages = tuple(replace(p, direct=p.normalized not in depended) for p in drafts)
    return Inventory(format="pylock.toml", path=path, root=None, packages=packages)


def _source(record: dict[str, object], where: str, path: str) -> PackageSource:
    """VCS, directory and archive sources first; then the index (none named means PyPI), checked against the
    hosts the files really come from."""
    vcs = opt_table(record.get("vcs"), f"{where} vcs", path)
    if vcs:
        location = opt_str(vcs.get("url"), f"{where} vcs.url", path) or req_str(vcs.get("path"), f"{where} vcs", path)
        commit = opt_str(vcs.get("commit-id"), f"{where} vcs.commit-id", path)
        pinned = redact(f"{location}@{commit}" if commit else location)
        kind = opt_str(vcs.get("type"), f"{where} vcs.type", path)
        return PackageSource("git", pinned) if kind in (None, "git") else PackageSource("url", f"{kind}+{pinned}")
    directory = opt_table(record.get("directory"), f"{where} directory", path)
    if directory:
        location = req_str(directory.get("path"), f"{where} directory.path", path)
        editable = flag(directory.get("editable"), f"{where} directory.editable", path)
        return PackageSource("editable" if editable else "path", location)
    archive = opt_table(record.get("archive"), f"{where} archive", path)
    if archive:
        url = opt_str(archive.get("url"), f"{where} archive.url", path)
        if url:
            return PackageSource("url", redact(url))
        return PackageSource("path", req_str(archive.get("path"), f"{where} archive", path))
    index = opt_str(record.get("index"), f"{where} index", path)
    return checked_against_files(index_source(index), _file_urls(record, where, path))


def _artifacts(record: dict[str, object], where: str, path: str) -> list[dict[str, object]]:
    items = tables(record.get("wheels"), f"{where} wheels", path)
    for field in ("sdist", "archive"):
        if record.get(field) is not None:
            items.append(opt_table(record[field], f"{where} {field}", path))
    return items


def _file_urls(record: dict[str, object], where: str, path: str) -> list[str]:
    urls = (opt_str(item.get("url"), f"{where} file url", path) for item in _artifacts(record, where, path))
    return [url for url in urls if url]


def _hashes(record: dict[str, object], where: str, path: str) -> tuple[str, ...]:
    return dedupe(
        digest
        for item in _artifacts(record, where, path)
        for digest in hash_table(item.get("hashes"), f"{where} hashes", path)
    )

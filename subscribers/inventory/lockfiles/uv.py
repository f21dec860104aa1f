"""``uv.lock`` to an :class:`Inventory`.

uv records the project itself (source ``editable`` or ``virtual``), so paths start at that root and its
dependencies, extras and dependency groups are the direct ones.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from ._common import (
    checked_against_files,
    dedupe,
    index_source,
    load_toml,
    opt_str,
    opt_table,
    redact,
    req_str,
    str_list,
    table,
    tables,
)
from .model import Inventory, LockedPackage, LockfileError, PackageSource, ProblemLog, normalize

_PROJECT_KINDS = ("editable", "project")


def parse(text: str, path: str = "uv.lock") -> Inventory:
    """Parse lock text into packages, edges and the project root."""
    doc = load_toml(text, path, "uv.lock (`uv lock`)")
    records = tables(doc.get("package"), "[[package]]", path)
    drafts: list[tuple[dict[str, object], LockedPackage]] = []
    requested_extras: dict[str, set[str]] = {}
    problems = ProblemLog()
    for index, record in enumerate(records):
        where = f"[[package]] #{index + 1}"
        name = req_str(record.get("name"), f"{where} name", path)
        where = f"{where} ({name})"
        edges = _edges(record, where, path)
        for dep_name, extras in edges:
            requested_extras.setdefault(dep_name, set()).update(extras)
        resolution = str_list(record.get("resolution-markers"), f"{where} resolution-markers", path)
        source = _source(record.get("source"), where, path)
        if isinstance(source, str):
            problems.add(
                normalize(name),
                "unknown-source",
                f"{where} has source kind {source[:40]!r}, which quarantine-watch does not know, so it cannot "
                "tell where the package comes from; upgrade quarantine-watch or report it",
            )
            continue
        package = LockedPackage(
            name=name,
            normalized=normalize(name),
            version=opt_str(record.get("version"), f"{where} version", path),
            source=checked_against_files(source, _urls(record, where, path)),
            hashes=_hashes(record, where, path),
            markers=" or ".join(f"({marker})" for marker in resolution) or None,
            direct=False,
            dependencies=tuple(sorted({dep for dep, _ in edges})),
        )
        drafts.append((record, package))

    projects = [package for _, package in drafts if package.source.kind in _PROJECT_KINDS]
    root = _root(projects)
    direct = {dep for project in projects for dep in project.dependencies} - ({root} if root else set())
    packages = tuple(
        replace(p, direct=p.normalized in direct, extras=tuple(sorted(requested_extras.get(p.normalized, ()))))
        for _, p in drafts
    )
    return Inventory(format="uv.lock", path=path, root=root, packages=packages, unverified=problems.freeze())


def _root(projects: list[LockedPackage]) -> str | None:
    """The workspace root: the project at ``.``, else a project no other project depends on."""
    for project in projects:
        if project.source.url == ".":
            return project.normalized
    inner = {dep for project in projects for dep in project.dependencies}
    for project in projects:
        if project.normalized not in inner:
            return project.normalized
    return projects[0].normalized if projects else None


def _edges(record: dict[str, object], where: str, path: str) -> list[tuple[str, list[str]]]:
    """Runtime, optional (extra) and dev-group edges, each with the extras it asks of the target."""
    entries = tables(record.get("dependencies"), f"{where} dependencies", path)
    for field in ("optional-dependencies", "dev-dependencies"):
        for group, items in opt_table(record.get(field), f"{where} {field}", path).items():
            entries += tables(items, f"{where} {field}.{group}", path)
    return [
        (
            normalize(req_str(entry.get("name"), f"{where} dependency name", path)),
            str_list(entry.get("extra"), f"{where} dependency extra", path),
        )
        for entry in entries
    ]


def _source(value: object, where: str, path: str) -> PackageSource | str:
    """The source, or the kind name when it is not one uv writes."""
    source = table(value, f"{where} source", path)
    if len(source) != 1:
        raise LockfileError(path, f"{where} source must have exactly one key, got {sorted(source)}")
    ((kind, raw),) = source.items()
    location = req_str(raw, f"{where} source.{kind}", path)
    if kind == "registry":
        if "://" not in location:
            return PackageSource("index", location)
        return index_source(location)
    if kind == "git":
        return PackageSource("git", _pinned_git(location))
    if kind == "url":
        return PackageSource("url", redact(location))
    if kind in ("path", "directory"):
        return PackageSource("path", location)
    if kind == "editable":
        return PackageSource("editable", location)
    if kind == "virtual":
        return PackageSource("project", location)
    return kind


def _pinned_git(location: str) -> str:
    """``repo?rev=x#sha`` as ``repo@sha``: the commit is what was locked, the query is only the request."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return redact(location)
    base = urlunsplit(parts._replace(query="", fragment=""))
    return redact(f"{base}@{parts.fragment}" if parts.fragment else base)


def _artifacts(record: dict[str, object], where: str, path: str) -> list[dict[str, object]]:
    artifacts = tables(record.get("wheels"), f"{where} wheels", path)
    if record.get("sdist") is not None:
        artifacts.insert(0, table(record["sdist"], f"{where} sdist", path))
    return artifacts


def _urls(record: dict[str, object], where: str, path: str) -> list[str]:
    found = (opt_str(item.get("url"), f"{where} artifact url", path) for item in _artifacts(record, where, path))
    return [url for url in found if url]


def _hashes(record: dict[str, object], where: str, path: str) -> tuple[str, ...]:
    found = (opt_str(item.get("hash"), f"{where} artifact hash", path) for item in _artifacts(record, where, path))
    return dedupe(digest for digest in found if digest)

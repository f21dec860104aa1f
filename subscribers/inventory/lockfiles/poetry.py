"""``poetry.lock`` (lock-version 1.x and 2.x) to an :class:`Inventory`.

The lock has no record of the project itself, so which packages are direct comes from ``pyproject.toml``
(see :func:`direct_names_from_pyproject`) or, failing that, from the graph: nothing depends on them.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ._common import (
    PYPI,
    array,
    dedupe,
    flag,
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

SOURCE_TYPES = ("git", "legacy", "directory", "file", "url")
"""The ``[package.source] type`` values Poetry writes; another one is reported, not guessed at."""

_PEP508_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def parse(text: str, path: str = "poetry.lock", direct_names: frozenset[str] | None = None) -> Inventory:
    """Parse lock text; ``direct_names`` (normalized) come from the project's pyproject when known."""
    doc = load_toml(text, path, "poetry.lock (`poetry lock`)")
    metadata = opt_table(doc.get("metadata"), "[metadata]", path)
    legacy_files = opt_table(metadata.get("files"), "[metadata.files]", path)
    records = tables(doc.get("package"), "[[package]]", path)

    drafts: list[tuple[LockedPackage, frozenset[str]]] = []
    problems = ProblemLog()
    unclassified: set[str] = set()
    for index, record in enumerate(records):
        where = f"[[package]] #{index + 1}"
        name = req_str(record.get("name"), f"{where} name", path)
        deps = _dependencies(record.get("dependencies"), f"{where} ({name}) dependencies", path)
        files = record.get("files")
        if files is None:
            files = legacy_files.get(name, legacy_files.get(normalize(name)))
        source = _source(record, f"{where} ({name})", path)
        if isinstance(source, str):
            problems.add(
                normalize(name),
                "unknown-source",
                f"{where} ({name}) has source type {source[:40]!r}, which quarantine-watch does not know, so it "
                "cannot tell where the package comes from; upgrade quarantine-watch or report it",
            )
            unclassified.update(deps)
            continue
        package = LockedPackage(
            name=name,
            normalized=normalize(name),
            version=opt_str(record.get("version"), f"{where} version", path),
            source=source,
            hashes=_hashes(files, f"{where} ({name}) files", path),
            markers=_markers(record.get("markers"), f"{where} ({name}) markers", path),
            direct=False,
            dependencies=tuple(sorted(deps)),
            groups=_groups(record, f"{where} ({name})", path),
        )
        drafts.append((package, deps))

    if direct_names is None:
        depended = {dep for package, deps in drafts for dep in deps if dep != package.normalized} | unclassified
        direct = {package.normalized for package, _ in drafts} - depended
    else:
        direct = {normalize(name) for name in direct_names}
    packages = tuple(replace(package, direct=package.normalized in direct) for package, _ in drafts)
    return Inventory(format="poetry.lock", path=path, root=None, packages=packages, unverified=problems.freeze())


def _dependencies(value: object, where: str, path: str) -> frozenset[str]:
    """All edges, optional ones included: a locked optional dependency means its extra was requested."""
    deps = opt_table(value, where, path)
    for name, spec in deps.items():
        if not isinstance(spec, str | dict | list):
            raise LockfileError(path, f"{where}.{name} must be a string, table or array of tables")
    return frozenset(normalize(name) for name in deps)


def _source(record: dict[str, object], where: str, path: str) -> PackageSource | str:
    """The source, or the type name when it is not one Poetry writes."""
    source = opt_table(record.get("source"), f"{where} source", path)
    if not source:
        return PYPI
    kind = req_str(source.get("type"), f"{where} source.type", path)
    if kind not in SOURCE_TYPES:
        return kind
    url = req_str(source.get("url"), f"{where} source.url", path)
    if kind == "git":
        ref = opt_str(source.get("resolved_reference"), f"{where} source.resolved_reference", path)
        ref = ref or opt_str(source.get("reference"), f"{where} source.reference", path)
        return PackageSource("git", redact(f"{url}@{ref}" if ref else url))
    if kind == "legacy":
        return index_source(url)
    if kind == "directory":
        editable = flag(record.get("develop"), f"{where} develop", path)
        return PackageSource("editable" if editable else "path", url)
    if kind == "file":
        return PackageSource("path", url)
    return PackageSource("url", redact(url))


def _hashes(files: object, where: str, path: str) -> tuple[str, ...]:
    return dedupe(req_str(item.get("hash"), f"{where} hash", path) for item in tables(files, where, path))


def _markers(value: object, where: str, path: str) -> str | None:
    """Poetry 2 writes one marker per group when they differ; any of them installs the package."""
    if value is None or isinstance(value, str):
        return value
    per_group = dedupe(req_str(item, where, path) for item in table(value, where, path).values())
    return per_group[0] if len(per_group) == 1 else " or ".join(f"({marker})" for marker in per_group)


def _groups(record: dict[str, object], where: str, path: str) -> tuple[str, ...]:
    """Poetry 2 ``groups``, or the Poetry 1 ``category``."""
    if "groups" in record:
        return tuple(str_list(record["groups"], f"{where} groups", path))
    category = opt_str(record.get("category"), f"{where} category", path)
    return (category,) if category else ()


def direct_names_from_pyproject(text: str, path: str = "pyproject.toml") -> frozenset[str]:
    """Normalized names the project asks for: PEP 621/735 lists and every Poetry dependency group."""
    doc = load_toml(text, path, "pyproject.toml")
    project = opt_table(doc.get("project"), "[project]", path)
    names: set[str] = set()
    requirements = str_list(project.get("dependencies"), "[project] dependencies", path)
    extras = opt_table(project.get("optional-dependencies"), "optional-dependencies", path)
    for extra, items in extras.items():
        requirements += str_list(items, f"optional-dependencies.{extra}", path)
    for group, items in opt_table(doc.get("dependency-groups"), "[dependency-groups]", path).items():
        # PEP 735 entries are strings or {include-group = "..."}; included groups are listed anyway
        entries = array(items, f"dependency-groups.{group}", path)
        requirements += [item for item in entries if isinstance(item, str)]
    for requirement in requirements:
        match = _PEP508_NAME.match(requirement)
        if match:
            names.add(normalize(match.group(1)))

    poetry = opt_table(opt_table(doc.get("tool"), "[tool]", path).get("poetry"), "[tool.poetry]", path)
    groups = opt_table(poetry.get("group"), "[tool.poetry.group]", path).values()
    sections = [poetry.get("dependencies"), poetry.get("dev-dependencies")]
    sections += [opt_table(item, "[tool.poetry.group.*]", path).get("dependencies") for item in groups]
    for section in sections:
        names.update(normalize(name) for name in opt_table(section, "poetry dependencies", path))
    names.discard("python")
    return frozenset(names)

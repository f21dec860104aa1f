"""``Pipfile.lock`` to an :class:`Inventory`.

The lock is flat (no edges), so every package is direct. ``default`` and ``develop`` are merged into one list;
each package's ``groups`` keeps the section(s) it came from.
"""

from __future__ import annotations

from dataclasses import replace

from ._common import (
    dedupe,
    flag,
    index_source,
    load_json_object,
    opt_str,
    opt_table,
    redact,
    str_list,
    table,
    tables,
)
from .model import Inventory, LockedPackage, PackageSource, ProblemLog, normalize

SECTIONS = ("default", "develop")


def parse(text: str, path: str = "Pipfile.lock") -> Inventory:
    """Parse lock text; a name locked identically in both sections becomes one record with both groups."""
    doc = load_json_object(text, path, "Pipfile.lock (`pipenv lock`)")
    meta = opt_table(doc.get("_meta"), "_meta", path)
    sources: dict[str, str | None] = {}
    for index, source in enumerate(tables(meta.get("sources"), "_meta.sources", path)):
        name = opt_str(source.get("name"), f"_meta.sources[{index}].name", path) or str(index)
        sources[name] = opt_str(source.get("url"), f"_meta.sources[{index}].url", path)
    default_index = next(iter(sources.values()), None)

    merged: dict[tuple[str, str | None, PackageSource], LockedPackage] = {}
    problems = ProblemLog()
    for section in SECTIONS:
        for name, raw in opt_table(doc.get(section), section, path).items():
            entry = table(raw, f"{section}.{name}", path)
            package = _package(name, entry, section, sources, default_index, path)
            if package.source == PackageSource("index", None):  # an index named but not declared with a URL
                problems.add(
                    package.normalized,
                    "unknown-index",
                    f"{section}.{name} is locked from index {entry.get('index')!r}, which _meta.sources does "
                    "not declare with a URL, so where it comes from is unknown; re-lock with the source declared",
                )
            key = (package.normalized, package.version, package.source)
            earlier = merged.get(key)
            if earlier is None:
                merged[key] = package
                continue
            merged[key] = replace(
                earlier,
                hashes=dedupe(earlier.hashes + package.hashes),
                groups=earlier.groups + package.groups,
                extras=dedupe(earlier.extras + package.extras),
            )
    return Inventory(
        format="Pipfile.lock", path=path, root=None, packages=tuple(merged.values()), unverified=problems.freeze()
    )


def _package(
    name: str,
    entry: dict[str, object],
    section: str,
    sources: dict[str, str | None],
    default_index: str | None,
    path: str,
) -> LockedPackage:
    where = f"{section}.{name}"
    spec = opt_str(entry.get("version"), f"{where}.version", path)
    version = _pinned(spec)
    return LockedPackage(
        name=name,
        normalized=normalize(name),
        version=version,
        source=_source(entry, where, sources, default_index, path),
        hashes=dedupe(str_list(entry.get("hashes"), f"{where}.hashes", path)),
        markers=opt_str(entry.get("markers"), f"{where}.markers", path),
        direct=True,
        dependencies=(),
        groups=(section,),
        extras=tuple(str_list(entry.get("extras"), f"{where}.extras", path)),
    )


def _pinned(spec: str | None) -> str | None:
    """``==1.2`` is a pin; ``*`` (an unpinned local or editable project) and ranges are not."""
    if not spec or "*" in spec:
        return None
    for operator in ("===", "=="):
        if spec.startswith(operator):
            return spec[len(operator) :].strip() or None
    return None


def _source(
    entry: dict[str, object], where: str, sources: dict[str, str | None], default_index: str | None, path: str
) -> PackageSource:
    """A named index that is not PyPI (or not declared at all) is never treated as PyPI."""
    for vcs in ("git", "hg", "svn", "bzr"):
        url = opt_str(entry.get(vcs), f"{where}.{vcs}", path)
        if url:
            ref = opt_str(entry.get("ref"), f"{where}.ref", path)
            pinned = redact(f"{url}@{ref}" if ref else url)
            return PackageSource("git", pinned) if vcs == "git" else PackageSource("url", f"{vcs}+{pinned}")
    local = opt_str(entry.get("path"), f"{where}.path", path)
    if local:
        editable = flag(entry.get("editable"), f"{where}.editable", path)
        return PackageSource("editable" if editable else "path", local)
    remote = opt_str(entry.get("file"), f"{where}.file", path)
    if remote:
        return PackageSource("url", redact(remote))
    index_name = opt_str(entry.get("index"), f"{where}.index", path)
    if index_name is None:
        return index_source(default_index)
    if index_name not in sources:
        return PackageSource("index", None)
    url = sources[index_name]
    return PackageSource("index", None) if url is None else index_source(url)

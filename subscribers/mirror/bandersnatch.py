"""The bandersnatch adapter: turns planned actions into moves and page rewrites in a bandersnatch mirror tree.

Layout bandersnatch 8 writes (``simple-format = ALL``, ``json = true``) and this adapter keeps in line::

    web/simple/index.html, index.v1_html, index.v1_json      the root index, every format
    web/simple/<name>/index.html, index.v1_html, index.v1_json
    web/json/<name>, web/pypi/<name>/json                      the JSON API copies
    web/packages/<b2>/<b2>/<rest>/<filename>[.metadata]        the files

A hidden project's pages, JSON and files are *moved* to ``<root>/qwatch-hold/<name>/web/...`` (outside ``web/``, so
no web server serves them), and its root-index entries are removed. A hidden version's files move to
``qwatch-hold/<name>/versions/<v>/web/...`` and the lines of the pages that named them are kept beside them, so a
clearance puts back exactly what was taken. Everything is idempotent: a replay or a retry after a crash finds the
moves already done and the entries already gone.

Why also a reconcile pass: bandersnatch re-creates a project's pages when upstream still lists it (a report with no
PyPI verdict, or a sync that ran before the quarantine). The enforcer hides again whatever reappeared for a project
it holds, on every poll.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subscribers.mirror.fsutil import move, prune_empty_dirs, read_json, remove_tree, write_atomic, write_json
from subscribers.mirror.plan import Action, normalize

PAGE_FORMATS = ("index.html", "index.v1_html", "index.v1_json")
HOLD_DIR = "qwatch-hold"
RESYNC_FILE = "qwatch-resync.txt"
_LINK = re.compile(r'<a href="([^"]+)"[^>]*>([^<]*)</a>')


def file_version(filename: str) -> str:
    """The version a distribution filename names (wheel: second field; sdist: after the last dash)."""
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return parts[1] if len(parts) > 1 else ""
    stem = filename
    for suffix in (".tar.gz", ".tar.bz2", ".tgz", ".zip", ".egg", ".tar.xz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem.rpartition("-")[2]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action did on disk (for the audit log)."""

    moved: int = 0
    note: str = ""


class BandersnatchMirror:
    """One mirror tree; every method is idempotent and leaves the tree consistent after each rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.web = root / "web"
        self.hold = root / HOLD_DIR

    # ------------------------------------------------------------------ reading the tree
    def serves(self, name: str) -> bool:
        """True if the project's pages are in ``web/`` (what pip reaches)."""
        return (self.web / "simple" / name).exists()

    def _page(self, name: str, fmt: str) -> Path:
        return self.web / "simple" / name / fmt

    def project_files(self, name: str) -> dict[str, list[Path]]:
        """Version -> file paths under ``web/`` (with their ``.metadata`` siblings) the project's pages link to."""
        by_version: dict[str, list[Path]] = {}
        base = self.web / "simple" / name
        hrefs: list[tuple[str, str]] = []
        doc = read_json(self._page(name, "index.v1_json"), None)
        if isinstance(doc, dict) and isinstance(doc.get("files"), list):
            hrefs = [(str(f.get("url", "")), str(f.get("filename", ""))) for f in doc["files"] if isinstance(f, dict)]
        else:
            for fmt in ("index.html", "index.v1_html"):
                page = self._page(name, fmt)
                if page.exists():
                    hrefs = _LINK.findall(page.read_text(errors="replace"))
                    break
        for href, filename in hrefs:
            path = (base / href.split("#", 1)[0]).resolve()
            if self.web.resolve() not in path.parents:
                continue  # never follow a link out of the mirror
            version = file_version(filename or path.name)
            by_version.setdefault(version, []).extend([path, path.with_name(path.name + ".metadata")])
        return by_version

    # ------------------------------------------------------------------ actions
    def apply(self, action: Action) -> Outcome:
        """Carry out one action."""
        handler = {
            "hide_project": self.hide_project,
            "restore_project": self.restore_project,
            "purge_project": self.purge_project,
        }.get(action.op)
        if handler is not None:
            return handler(action.package)
        if action.op == "hide_versions":
            return self.hide_versions(action.package, action.versions)
        if action.op == "restore_versions":
            return self.restore_versions(action.package, action.versions)
        return Outcome(note="nothing to change")

    def _held(self, path: Path, prefix: Path) -> Path:
        return prefix / path.relative_to(self.root)

    def hide_project(self, name: str) -> Outcome:
        """Root-index entries first (new clients stop discovering it), then pages, JSON and files move to hold."""
        self.set_root_entry(name, present=False)
        prefix = self.hold / name
        paths = [p for ps in self.project_files(name).values() for p in ps]
        paths += [self.web / "simple" / name, self.web / "json" / name, self.web / "pypi" / name]
        moved = 0
        manifest = set(read_json(prefix / "manifest.json", []))
        for path in paths:
            rel = str(path.relative_to(self.root))
            if move(path, self._held(path, prefix)):
                moved += 1
                prune_empty_dirs(path.parent, self.web)
            if (self.root / HOLD_DIR / name / rel).exists():
                manifest.add(rel)
        if manifest:  # a project the mirror never had leaves no trace in the holding area
            write_json(prefix / "manifest.json", sorted(manifest))
        return Outcome(moved, f"{moved} paths moved to {prefix}")

    def restore_project(self, name: str) -> Outcome:
        """Move held paths back (a copy bandersnatch re-synced meanwhile wins) and re-list the project."""
        prefix = self.hold / name
        manifest = read_json(prefix / "manifest.json", None)
        if not manifest:
            self.queue_resync(name)
            if self.serves(name):
                self.set_root_entry(name, present=True)
            return Outcome(0, f"nothing held: queued for re-sync in {self.root / RESYNC_FILE}")
        moved = 0
        for rel in manifest:
            src, dst = prefix / rel, self.root / rel
            if dst.exists():
                remove_tree(src)  # the mirror has a newer copy
            elif move(src, dst):
                moved += 1
        remove_tree(prefix / "web")
        (prefix / "manifest.json").unlink(missing_ok=True)
        prune_empty_dirs(prefix, self.hold)
        if self.serves(name):
            self.set_root_entry(name, present=True)
        else:
            self.queue_resync(name)
        return Outcome(moved, f"{moved} paths restored")

    def purge_project(self, name: str) -> Outcome:
        """Delete the held copy (only planned after a journal-confirmed removal and the retention period)."""
        prefix = self.hold / name
        existed = prefix.exists()
        remove_tree(prefix)
        return Outcome(0, "held files deleted" if existed else "nothing held")

    def hide_versions(self, name: str, versions: tuple[str, ...]) -> Outcome:
        """Move those versions' files to hold and rewrite every page and JSON copy without them."""
        files = self.project_files(name)
        moved = 0
        for version in versions:
            prefix = self.hold / name / "versions" / version
            fragments: dict[str, Any] = read_json(prefix / "fragments.json", {})
            names = {p.name for p in files.get(version, [])}
            for path in files.get(version, []):
                if move(path, self._held(path, prefix)):
                    moved += 1
                    prune_empty_dirs(path.parent, self.web)
            # the newest lines that named the version (a replay takes none and keeps what the first run took)
            fragments.update({k: v for k, v in self._strip_pages(name, version, names).items() if v})
            write_json(prefix / "fragments.json", fragments)
        return Outcome(moved, f"{moved} files of {', '.join(versions)} moved to hold")

    def restore_versions(self, name: str, versions: tuple[str, ...]) -> Outcome:
        """Put held files back and re-insert the page lines taken with them."""
        moved = 0
        for version in versions:
            prefix = self.hold / name / "versions" / version
            fragments = read_json(prefix / "fragments.json", None)
            held_web = prefix / "web"
            if held_web.exists():
                for src in sorted(p for p in held_web.rglob("*") if p.is_file()):
                    dst = self.root / src.relative_to(prefix)
                    if not dst.exists() and move(src, dst):
                        moved += 1
            if fragments:
                self._unstrip_pages(name, version, fragments)
            elif not held_web.exists():
                self.queue_resync(name)
            remove_tree(prefix)
            prune_empty_dirs(prefix.parent, self.hold)
        return Outcome(moved, f"{moved} files of {', '.join(versions)} restored")

    # ------------------------------------------------------------------ pages
    def _strip_pages(self, name: str, version: str, filenames: set[str]) -> dict[str, Any]:
        taken: dict[str, Any] = {}
        for fmt in ("index.html", "index.v1_html"):
            page = self._page(name, fmt)
            if not page.exists():
                continue
            lines = page.read_text().splitlines(keepends=True)
            drop = [ln for ln in lines if (m := _LINK.search(ln)) and _names(m, filenames, version)]
            if drop:
                write_atomic(page, "".join(ln for ln in lines if ln not in drop).encode())
            taken[fmt] = drop
        page = self._page(name, "index.v1_json")
        doc = read_json(page, None)
        if isinstance(doc, dict) and isinstance(doc.get("files"), list):
            drop_files = [f for f in doc["files"] if file_version(str(f.get("filename", ""))) == version]
            if drop_files or version in doc.get("versions", []):
                doc["files"] = [f for f in doc["files"] if f not in drop_files]
                doc["versions"] = [v for v in doc.get("versions", []) if v != version]
                write_atomic(page, json.dumps(doc).encode())
            taken["index.v1_json"] = drop_files
        for path in (self.web / "json" / name, self.web / "pypi" / name / "json"):
            doc = read_json(path, None)
            if isinstance(doc, dict) and isinstance(doc.get("releases"), dict) and version in doc["releases"]:
                taken[str(path.relative_to(self.web))] = doc["releases"].pop(version)
                doc["urls"] = [u for u in doc.get("urls", []) if file_version(str(u.get("filename", ""))) != version]
                write_atomic(path, json.dumps(doc).encode())
        return taken

    def _unstrip_pages(self, name: str, version: str, fragments: dict[str, Any]) -> None:
        for fmt in ("index.html", "index.v1_html"):
            page, lines = self._page(name, fmt), fragments.get(fmt) or []
            if page.exists() and lines:
                text = page.read_text()
                missing = [ln for ln in lines if ln not in text]
                if missing:
                    head, sep, tail = text.rpartition("  </body>")
                    write_atomic(
                        page, (head + "".join(missing) + sep + tail if sep else text + "".join(missing)).encode()
                    )
        page = self._page(name, "index.v1_json")
        doc = read_json(page, None)
        if isinstance(doc, dict) and isinstance(doc.get("files"), list):
            known = {f.get("filename") for f in doc["files"]}
            doc["files"] += [f for f in fragments.get("index.v1_json") or [] if f.get("filename") not in known]
            if version not in doc.get("versions", []) and fragments.get("index.v1_json"):
                doc["versions"] = [*doc.get("versions", []), version]
            write_atomic(page, json.dumps(doc).encode())
        for key in ("json/" + name, "pypi/" + name + "/json"):
            path, release = self.web / key, fragments.get(key)
            doc = read_json(path, None)
            if release is not None and isinstance(doc, dict) and isinstance(doc.get("releases"), dict):
                doc["releases"].setdefault(version, release)
                write_atomic(path, json.dumps(doc).encode())

    def set_root_entry(self, name: str, *, present: bool) -> None:
        """Add or remove ``name`` in the root index, in every format the mirror serves."""
        for fmt in ("index.html", "index.v1_html"):
            page = self.web / "simple" / fmt
            if not page.exists():
                continue
            text = page.read_text()
            lines = text.splitlines(keepends=True)
            mine = [ln for ln in lines if (m := _LINK.search(ln)) and normalize(m.group(1).strip("/")) == name]
            if not present and mine:
                write_atomic(page, "".join(ln for ln in lines if ln not in mine).encode())
            elif present and not mine:
                entry = f'    <a href="{name}/">{name}</a><br/>\n'
                head, sep, tail = text.rpartition("  </body>")
                write_atomic(page, (head + entry + sep + tail if sep else text + entry).encode())
        page = self.web / "simple" / "index.v1_json"
        doc = read_json(page, None)
        if isinstance(doc, dict) and isinstance(doc.get("projects"), list):
            listed = any(normalize(str(p.get("name", ""))) == name for p in doc["projects"])
            if listed and not present:
                doc["projects"] = [p for p in doc["projects"] if normalize(str(p.get("name", ""))) != name]
                write_atomic(page, json.dumps(doc).encode())
            elif present and not listed:
                doc["projects"] = sorted([*doc["projects"], {"name": name}], key=lambda p: normalize(str(p["name"])))
                write_atomic(page, json.dumps(doc).encode())

    def queue_resync(self, name: str) -> None:
        """Ask for ``bandersnatch sync <name>`` (the file lists one project a line, each once)."""
        path = self.root / RESYNC_FILE
        names = set(path.read_text().split()) if path.exists() else set()
        if name not in names:
            write_atomic(path, "".join(f"{n}\n" for n in sorted(names | {name})).encode())


def _names(match: re.Match[str], filenames: set[str], version: str) -> bool:
    label = match.group(2).strip()
    return label in filenames or (bool(label) and file_version(label) == version)

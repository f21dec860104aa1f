"""A devpi-server plugin: an index setting ``qwatch_blocked`` that devpi itself enforces on every request.

Why a plugin, after looking at what devpi-server 6 offers:
- a mirror index has no deny list: ``mirror_whitelist`` belongs to *stage* indexes and only decides whether a
  private project may shadow the mirror; it never hides a mirrored project;
- deleting a project on a mirror index only drops devpi's cache: the next request fetches the upstream page again
  and, when upstream still lists the project (a report with no PyPI verdict, a policy stricter than PyPI), it is
  served again; and devpi keeps serving the last links it knew when upstream deletes a project (devpi #569);
- so nothing built in keeps pip from installing a project through a devpi mirror. This plugin adds one index
  setting, a list of ``name`` (the whole project) and ``name==version`` entries, that the enforcer changes through
  devpi's own HTTP API (``PATCH /USER/INDEX ["qwatch_blocked+=name"]``, authenticated, stored and replicated by
  devpi like any index option), and a request filter (a Pyramid tween inside devpi's transaction) that answers
  404 for a blocked project's simple page, JSON and files, drops a blocked version's links from its pages, and
  drops a blocked project from the root listing. Removing an entry serves the project again at once.

Installation: start devpi with ``python devpi_plugin.py --serverdir DIR ...`` (devpi's interpreter), which
registers this file as a plugin and runs devpi-server's own main; or declare it as a ``devpi_server`` entry point
of a package installed into devpi's environment (devpi loads those at start). This module imports only the
standard library and devpi's own dependencies, so it loads in devpi's environment without quarantine-watch's.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any, cast

Hook = Callable[..., Any]


def _marker() -> Callable[[Hook], Hook]:
    """pluggy's ``devpiserver`` hookimpl marker in devpi's environment; a no-op where pluggy is absent (the
    enforcer imports this module for ``KEY`` only)."""
    try:
        from pluggy import HookimplMarker
    except ImportError:  # pragma: no cover
        return lambda fn: fn
    return cast(Callable[[Hook], Hook], HookimplMarker("devpiserver"))


hookimpl = _marker()


KEY = "qwatch_blocked"
_SIMPLE = re.compile(r"^/(?P<user>[^/+]+)/(?P<index>[^/+]+)/\+simple/(?P<rest>.*)$")
_FILES = re.compile(r"^/(?P<user>[^/+]+)/(?P<index>[^/+]+)/\+f/(?:.+/)?(?P<filename>[^/]+)$")
_PROJECT = re.compile(r"^/(?P<user>[^/+]+)/(?P<index>[^/+]+)/(?P<project>[^/+][^/]*)(?:/(?P<version>[^/+][^/]*))?/?$")
_LINK = re.compile(r'<a [^>]*href="[^"]*"[^>]*>([^<]*)</a>')


def normalize(name: str) -> str:
    """PEP 503."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_filename(filename: str) -> tuple[str, str]:
    """(normalized project, version) of a wheel or sdist filename."""
    if filename.endswith(".metadata"):
        filename = filename[: -len(".metadata")]
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return normalize(parts[0]), parts[1] if len(parts) > 1 else ""
    stem = filename
    for suffix in (".tar.gz", ".tar.bz2", ".tgz", ".zip", ".egg", ".tar.xz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name, _, version = stem.rpartition("-")
    return normalize(name), version


class Blocklist:
    """Parsed ``qwatch_blocked``: whole projects and project versions."""

    def __init__(self, entries: Any) -> None:
        self.projects: set[str] = set()
        self.versions: set[tuple[str, str]] = set()
        for entry in entries or ():
            name, sep, version = str(entry).partition("==")
            if sep:
                self.versions.add((normalize(name), version))
            else:
                self.projects.add(normalize(name))

    def __bool__(self) -> bool:
        return bool(self.projects or self.versions)

    def blocks(self, project: str, version: str | None = None) -> bool:
        """True if the project, or this version of it, must not be served."""
        return project in self.projects or (version is not None and (project, version) in self.versions)


def _not_found(message: str) -> Any:
    from pyramid.response import Response  # type: ignore[import-not-found]

    return Response(body=message.encode(), status=404, content_type="text/plain")


def _filter_body(response: Any, keep: Any) -> None:
    """Drop lines (HTML) or entries (PEP 691 JSON) for which ``keep`` is false."""
    ctype = (response.content_type or "").lower()
    body = response.body
    if "json" in ctype:
        doc = json.loads(body)
        if isinstance(doc.get("files"), list):
            doc["files"] = [f for f in doc["files"] if keep(str(f.get("filename", "")))]
        if isinstance(doc.get("projects"), list):
            doc["projects"] = [p for p in doc["projects"] if keep("project:" + str(p.get("name", "")))]
        response.body = json.dumps(doc).encode()
    elif "html" in ctype:
        text = body.decode("utf-8", "replace")
        lines = text.splitlines(keepends=True)
        kept = [ln for ln in lines if not (m := _LINK.search(ln)) or keep(m.group(1).strip())]
        response.body = "".join(kept).encode("utf-8")


def tween_factory(handler: Any, registry: Any) -> Any:
    """The request filter; runs inside devpi's keyfs transaction so it reads the index config consistently."""

    def blocklist(user: str, index: str) -> Blocklist:
        try:
            stage = registry["xom"].model.getstage(user, index)
        except Exception:  # noqa: BLE001 - an unknown index is devpi's own 404 to give
            return Blocklist(())
        return Blocklist(stage.ixconfig.get(KEY) if stage is not None else ())

    def tween(request: Any) -> Any:
        path = request.path
        if m := _FILES.match(path):
            blocked = blocklist(m["user"], m["index"])
            if blocked and blocked.blocks(*split_filename(m["filename"])):
                return _not_found("blocked by quarantine-watch")
            return handler(request)
        if m := _SIMPLE.match(path):
            blocked = blocklist(m["user"], m["index"])
            if not blocked:
                return handler(request)
            rest = m["rest"].strip("/")
            if rest and blocked.blocks(normalize(rest)):
                return _not_found("blocked by quarantine-watch")
            response = handler(request)
            if response.status_code == 200:
                if rest:
                    _filter_body(response, lambda label: not blocked.blocks(*split_filename(label)))
                else:
                    _filter_body(
                        response,
                        lambda label: not blocked.blocks(normalize(label.removeprefix("project:").strip("/"))),
                    )
            return response
        if (m := _PROJECT.match(path)) and request.method in ("GET", "HEAD"):
            blocked = blocklist(m["user"], m["index"])
            if blocked and blocked.blocks(normalize(m["project"]), m["version"]):
                return _not_found("blocked by quarantine-watch")
        return handler(request)

    return tween


@hookimpl
def devpiserver_indexconfig_defaults(index_type: str) -> dict[str, Any]:
    """Declare ``qwatch_blocked`` (a list) on every index type, so ``PATCH`` accepts it."""
    return {KEY: []}


@hookimpl
def devpiserver_pyramid_configure(config: Any, pyramid_config: Any) -> None:
    """Install the filter under devpi's transaction tween."""
    pyramid_config.add_tween(f"{__name__}.tween_factory", under="devpi_server.views.tween_keyfs_transaction")


def main(argv: list[str]) -> int:
    """``python devpi_plugin.py [devpi-server args]``: devpi-server with this plugin registered."""
    from devpi_server.main import CommandRunner, _main  # type: ignore[import-not-found]

    module = sys.modules[__name__]
    with CommandRunner() as runner:
        runner.pluginmanager.register(module, "qwatch_blocked")
        runner.return_code = _main(runner.pluginmanager, argv=["devpi-server", *argv])
    return int(runner.return_code or 0)


if __name__ == "__main__":  # pragma: no cover - run by devpi's interpreter
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import devpi_plugin as _self  # type: ignore[import-not-found]  # the importable name Pyramid resolves

    sys.exit(_self.main(sys.argv[1:]))

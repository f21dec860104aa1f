"""The devpi adapter: planned actions become entries of the index setting ``qwatch_blocked`` (see ``devpi_plugin``).

Everything goes through devpi-server's own HTTP API: ``POST /+login`` for a token, ``GET /USER/INDEX`` for the
config, ``PATCH /USER/INDEX`` with ``["qwatch_blocked+=name"]`` / ``["qwatch_blocked-=name"]``. devpi applies a
PATCH list in one write transaction, and ``+=`` of an entry already there changes nothing, so every action is
idempotent. A release is blocked as ``name==version``. Nothing is held or purged on devpi's side: its cache is
devpi's business, and a blocked project is unreachable whatever the cache holds.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import httpx

from subscribers.mirror.devpi_plugin import KEY
from subscribers.mirror.plan import Action


class DevpiError(RuntimeError):
    """devpi refused or could not be reached: the batch is retried, offsets stay uncommitted."""


@dataclass(frozen=True, slots=True)
class DevpiOutcome:
    """What an action did (for the audit)."""

    note: str


class DevpiIndex:
    """One devpi index (``USER/INDEX``) behind devpi-server's HTTP API."""

    def __init__(self, client: httpx.Client, url: str, index: str, user: str, password: str) -> None:
        if index.count("/") != 1 or not all(index.split("/")):
            raise ValueError(f"--index: expected USER/INDEX, got {index!r}")
        self.client = client
        self.url = url.rstrip("/")
        self.index = index
        self.user = user
        self.password = password
        self._auth: dict[str, str] | None = None
        self._known: tuple[float, list[str]] | None = None  # (monotonic time, entries) of the last GET or PATCH

    def _login(self) -> dict[str, str]:
        if self._auth is None:
            r = self.client.post(
                f"{self.url}/+login", json={"user": self.user, "password": self.password}, headers=_JSON
            )
            if r.status_code != 200:
                raise DevpiError(f"devpi login as {self.user} failed: HTTP {r.status_code} {r.text[:200]}")
            token = r.json()["result"]["password"]
            self._auth = {"X-Devpi-Auth": base64.b64encode(f"{self.user}:{token}".encode()).decode()}
        return self._auth

    def blocked(self, max_age: float = 0.0) -> list[str]:
        """The current ``qwatch_blocked`` entries (re-read when older than ``max_age`` seconds); fails if the plugin
        is not installed (fail closed)."""
        if self._known is not None and time.monotonic() - self._known[0] < max_age:
            return self._known[1]
        r = self.client.get(f"{self.url}/{self.index}", headers=_JSON)
        if r.status_code != 200:
            raise DevpiError(f"GET {self.index}: HTTP {r.status_code} {r.text[:200]}")
        config = r.json().get("result", {})
        if KEY not in config:
            raise DevpiError(
                f"index {self.index} has no {KEY} setting: devpi-server runs without quarantine-watch's plugin "
                "(pip install quarantine-watch into devpi's environment, or start it with devpi_plugin.py)"
            )
        entries = [str(e) for e in config[KEY]]
        self._known = (time.monotonic(), entries)
        return entries

    def _patch(self, ops: list[str]) -> None:
        if not ops:
            return
        r = self.client.patch(f"{self.url}/{self.index}", json=ops, headers={**_JSON, **self._login()})
        if r.status_code == 401:
            self._auth = None
            r = self.client.patch(f"{self.url}/{self.index}", json=ops, headers={**_JSON, **self._login()})
        if r.status_code != 200:
            self._known = None
            raise DevpiError(f"PATCH {self.index} {ops}: HTTP {r.status_code} {r.text[:200]}")
        result = r.json().get("result", {})
        self._known = (time.monotonic(), [str(e) for e in result.get(KEY, [])]) if KEY in result else None

    def serves(self, name: str) -> bool:
        """False while the project is blocked (devpi's filter is authoritative; nothing can re-sync past it). The
        reconcile pass asks this for every held project: one GET per second at most, not one per project."""
        return name not in self.blocked(max_age=1.0)

    def apply(self, action: Action) -> DevpiOutcome:
        """Add or remove blocklist entries."""
        current = set(self.blocked())
        if action.op == "hide_project":
            entries = [action.package]
        elif action.op in ("hide_versions", "restore_versions"):
            entries = [f"{action.package}=={v}" for v in action.versions]
        elif action.op == "restore_project":
            entries = [action.package]
        else:
            return DevpiOutcome("nothing to change on devpi")
        if action.op.startswith("hide"):
            ops = [f"{KEY}+={e}" for e in entries if e not in current]
        else:
            ops = [f"{KEY}-={e}" for e in entries if e in current]
        self._patch(ops)
        return DevpiOutcome(f"{len(ops)} {KEY} entries changed on {self.index}")


_JSON = {"Accept": "application/json", "Content-Type": "application/json"}

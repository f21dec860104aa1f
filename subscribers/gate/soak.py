"""Soak windows sized by blast radius: new versions of widely used packages wait before CI accepts them.

Why a default of 72 hours for the listed packages: PyPI handled 66% of 2025's malware reports within 4 hours,
92% within 24 hours and all within 4 days, and the worst compromised popular release of 2026 (litellm) was live
for 2 h 32 min (shared/docs/field-notes.md). 72 hours lets the registry's own response act on well over 92% of
cases, covers a report filed on a Friday evening, and is what the strictest index-level cooldowns use, without
holding security fixes of everything for a week. Packages outside the list get ``--soak-other`` (default 0):
their blast radius is small, and a flat window for every package is what makes teams turn cooldowns off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from qwatch.errors import UsageError
from subscribers.inventory.lockfiles import normalize

DEFAULT_SOAK = "72h"
DEFAULT_SOAK_OTHER = "0"
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_COMPACT = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_ISO = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def parse_duration(text: str) -> int:
    """Milliseconds from ``72h``, ``3d12h``, ``90m``, ``P3D``/``PT36H`` or plain seconds; ValueError otherwise."""
    raw = text.strip()
    lowered = raw.lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", lowered):
        return int(float(lowered) * 1000)
    if _COMPACT.sub("", lowered) == "" and lowered:
        return int(sum(float(n) * _UNITS[u] for n, u in _COMPACT.findall(lowered)) * 1000)
    iso = _ISO.fullmatch(raw.upper())
    if iso and raw.upper() not in ("P", "PT"):
        weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return int((weeks * 604800 + days * 86400 + hours * 3600 + minutes * 60 + seconds) * 1000)
    raise UsageError(f"duration {text!r}: use e.g. 72h, 3d, 90m, 1d12h, P3D or a number of seconds")


def format_duration(ms: int) -> str:
    """The compact spelling of a duration, for messages (``3d``, ``1d12h``, ``0s``)."""
    seconds = ms // 1000
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def parse_package_list(text: str) -> frozenset[str]:
    """One name per line; ``#`` starts a comment; names are normalized (PEP 503)."""
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(normalize(name) for name in names if name)


def default_packages() -> frozenset[str]:
    """The shipped list of widely used packages (``subscribers/gate/data/high_blast_radius.txt``)."""
    data = resources.files("subscribers.gate").joinpath("data/high_blast_radius.txt").read_text(encoding="utf-8")
    return parse_package_list(data)


def load_packages(path: Path | None) -> frozenset[str]:
    """``--soak-packages FILE`` when given, else the default list."""
    if path is None:
        return default_packages()
    try:
        return parse_package_list(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--soak-packages {path}: cannot read it ({exc.strerror or exc})") from exc


@dataclass(frozen=True, slots=True)
class SoakPolicy:
    """Which packages get which window; ``window_ms`` for the listed ones, ``other_ms`` for the rest."""

    listed: frozenset[str]
    window_ms: int
    other_ms: int = 0

    def window_for(self, package: str) -> int:
        """The window that applies to a normalized package name."""
        return self.window_ms if package in self.listed else self.other_ms

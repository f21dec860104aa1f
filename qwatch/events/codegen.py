"""What the generated codecs share (``avro_encoder``, ``avro_decoder`` and the codec's JSON check): Python source
built from our own schemas, one function per record type, compiled once per process.

Why generated code at all: each record type then gets straight-line code for its fields, several times faster than
walking the schema per value (bench/codec_bench.py); each generator says what it writes, this only holds the
namespace, the names and the compilation.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""The Avro spec's name rule; with Python's keywords left out, a field name is also a safe attribute in source."""


class Unsupported(Exception):
    """A schema construct a generator does not handle; its caller falls back to the general path (fastavro)."""


class SourceGenerator:
    """Collects generated functions (``sources``) and the globals they run with (``env``)."""

    prefix = "f"
    """Generated functions are named ``<prefix>_<n>``, one per record type, in the order first met."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env
        self.functions: dict[str, str] = {}
        """Record name -> its generated function's name (a record met again reuses it, recursion included)."""
        self.sources: list[str] = []
        self._tmp = 0

    def _var(self) -> str:
        """A fresh local variable name."""
        self._tmp += 1
        return f"v{self._tmp}"

    def _function(self, record_name: str) -> tuple[str, bool]:
        """``(function name, True)`` for a record met before, else a new name, registered, and False."""
        known = self.functions.get(record_name)
        if known is not None:
            return known, True
        fn = f"{self.prefix}_{len(self.functions)}"
        self.functions[record_name] = fn
        return fn, False

    @staticmethod
    def field_lines(schema: dict[str, Any], value: Callable[[Any, str, int], list[str]]) -> list[str]:
        """``value(type, "o.<name>", 1)`` for every field of a record schema: the lines reading each field of ``o``
        at one indent (the name checked first, as it goes into source)."""
        lines: list[str] = []
        for field in schema["fields"]:
            name = field["name"]
            if not _NAME.fullmatch(name) or keyword.iskeyword(name):
                raise Unsupported(f"field name {name!r}")
            lines += value(field["type"], f"o.{name}", 1)
        return lines

    def build(self, label: str, extra: str = "") -> dict[str, Any]:
        """Compile every source (and ``extra``) into a copy of ``env``; return that namespace."""
        env = dict(self.env)
        source = "\n\n".join([*self.sources, extra]) if extra else "\n\n".join(self.sources)
        exec(compile(source, label, "exec"), env)  # noqa: S102 - built from our own schemas, names checked
        return env

"""Journal rows the core would ignore, recognized from their Avro bytes without decoding them.

Most of PyPI's journal is routine (``add py3 file …``, ``new release``, role changes: 60% of the realistic mix in
bench/processor_bench.py), and the core drops such a row at once (``step`` → "ignored"). Decoding it first was
about a sixth of the processor's time. Avro writes a string's UTF-8 bytes verbatim, so a journal row whose record
contains none of the actions the core acts on (``core.DECIDING_JOURNAL_ACTIONS``) cannot be one the core decides
on. The test is conservative: a row that merely mentions one (say, a project named ``create-app``) is decoded as
before.

Such a row is counted as ignored, undecoded; a corrupt one is therefore not dead-lettered, which loses nothing, since
the core would have ignored it either way.
"""

from __future__ import annotations

import re

from processors.core import DECIDING_JOURNAL_ACTIONS
from qwatch.events.codec import MAGIC, Codec


class JournalPrefilter:
    """``ignorable(value)``: the record is a journal row whose action the core never acts on."""

    def __init__(self, codec: Codec) -> None:
        self._header = MAGIC + codec.fingerprint("JournalEntryObserved")
        actions = sorted(DECIDING_JOURNAL_ACTIONS, key=lambda a: (-len(a), a))
        self._deciding = re.compile(b"|".join(re.escape(a.encode()) for a in actions))

    def ignorable(self, value: bytes | None) -> bool:
        """True only when ``value`` is a journal row and none of the deciding actions occurs in it."""
        return value is not None and value.startswith(self._header) and self._deciding.search(value) is None

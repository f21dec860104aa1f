"""PyPI ingestors: Simple index (``pypi-simple``), JSON API (``pypi-json``) and journal (``pypi-journal``).

PyPI shows a quarantine, a removal or an archive in different places, each with a blind spot
(``../shared/docs/pypi-signals.md``), so each ingestor reads one signal and emits it as an observation;
joining them is the processor's job. Parsers here are pure (bytes in, values out, only ``PyPIParseError``
raised); HTTP goes through ``qwatch.http.PoliteClient``; state and cursors move only after a successful flush.
"""

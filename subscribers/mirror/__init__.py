"""Mirror enforcers: make bandersnatch and devpi mirrors stop serving what PyPI quarantined, removed or what a live
malicious-package report names, and serve it again when cleared.

``plan`` is the pure core (transition + holds + policy -> actions), ``service`` applies a batch with state and
audit, ``bandersnatch``/``devpi`` are the adapters, ``devpi_plugin`` runs inside devpi-server, ``cli`` wires Kafka
or JSONL. Kept import-light: ``devpi_plugin`` is also loaded by devpi-server's own interpreter.
"""

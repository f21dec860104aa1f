"""Shared plumbing of quarantine-watch: events, codec, Kafka, sinks, config, metrics and the CLI.

It lives apart from ``ingestors/`` and ``processors/`` so that the flow stays readable from the tree:
upstream → ingestors → events (here) → processors → subscribers.
"""

__version__ = "0.1.0"

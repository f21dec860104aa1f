"""One ``/metrics`` for ``qwatch up``: scrape each child's endpoint and re-expose it with a ``component`` label.

Prometheus text from several processes cannot simply be concatenated (families would repeat), so samples are
merged per family and told apart by the added label, as a federating Prometheus would.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterable, Mapping

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class ChildMetrics(Collector):
    """A collector that scrapes ``{component: port}`` on every collect (children are local, so it is cheap)."""

    def __init__(self, ports: Mapping[str, int], timeout: float = 2.0) -> None:
        self._ports = dict(ports)
        self._timeout = timeout

    def collect(self) -> Iterable[Metric]:
        """Merge every child's families, adding ``component``; an unreachable child is skipped, not fatal."""
        merged: dict[str, Metric] = {}
        for component, port in self._ports.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=self._timeout) as resp:  # noqa: S310
                    text = resp.read().decode()
            except OSError:
                logger.debug("metrics of %s (port %s) not reachable yet", component, port)
                continue
            for family in text_string_to_metric_families(text):
                if family.name.startswith(("python_", "process_")):
                    continue
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    labels = {**sample.labels, "component": component}
                    target.add_sample(sample.name, labels, sample.value, sample.timestamp)
        return list(merged.values())

"""``qwatch ingest pypi-provenance``: PEP 740 provenance of the recent releases of watched projects."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ingestors.pypi import emit
from ingestors.pypi.cli_common import (
    add_index_and_watch,
    build_client,
    epilog,
    load_watch,
    open_feed,
    positive_float,
    should_stop,
    state_dir,
    sweep_forever,
)
from ingestors.pypi.config import ProvenanceIngestConfig
from ingestors.pypi.provenance_ingest import ProvenanceIngestor
from ingestors.pypi.state import state_path
from ingestors.pypi.watchfeed import KafkaWatchFeed
from qwatch import config as cfgmod
from qwatch.provenance.verify import make_verifier
from qwatch.runtime import StopFlag, add_common, build_runtime

logger = logging.getLogger(__name__)

DESCRIPTION = """\
For every watched project, read /simple/<name>/ and, for each file of its most recent releases
(--releases, default 5) not checked before, its PEP 740 provenance: from the URL the page names (API
version 1.3+, where "provenance": null means the file has none), else from the Integrity API
(/integrity/<project>/<version>/<filename>/provenance). Each attestation is checked:
  - its subject must be the file with the sha256 the index announces (always);
  - its signature is verified offline against the Sigstore trust root shipped in the sigstore package
    (--signatures sigstore, the default), or not at all (--signatures off), and the evidence says which.
A ProvenanceObserved (publisher kind, repository, workflow, environment per file) is emitted whenever a
project's checked files change; the processor turns drift into PROVENANCE_LOST, PROVENANCE_CHANGED and
PROVENANCE_INVALID. A project whose provenance could not be fetched emits nothing that pass (a half-checked
release would read as unattested); the failure is dead-lettered and the project retried.

With --state-dir, checked files and ETags survive restarts (a file's provenance is fixed at upload, so it
is fetched once). --once does one sweep and exits 0 when it completed, 1 when the sink did not acknowledge.
"""


def register(sub: Any) -> None:
    """Add ``pypi-provenance`` under ``qwatch ingest``."""
    p = sub.add_parser(
        "pypi-provenance",
        help="PEP 740 provenance of watched projects' recent releases",
        description=DESCRIPTION,
        epilog=epilog((ProvenanceIngestConfig, "PYPI_PROVENANCE_")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_index_and_watch(p)
    p.add_argument("--once", action="store_true", help="run one sweep and exit")
    p.add_argument("--interval", type=positive_float, default=None, metavar="S", help="seconds between sweeps (900)")
    p.add_argument("--releases", type=int, default=None, metavar="N", help="recent releases checked per project (5)")
    p.add_argument(
        "--signatures",
        choices=("sigstore", "off"),
        default=None,
        help="verify attestation signatures offline with Sigstore's shipped trust root (default), or not",
    )
    add_common(p, sink=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the ingestor and run one sweep (``--once``) or the service loop."""
    runtime = build_runtime(args)
    overrides = {
        "index_url": args.index_url,
        "watch_file": args.watch,
        "interval": args.interval,
        "releases": args.releases,
        "signatures": args.signatures,
    }
    cfg = cfgmod.load(ProvenanceIngestConfig, runtime.env, "PYPI_PROVENANCE_", overrides)
    watch = load_watch(cfg.watch_file, runtime.metrics)
    client = build_client(runtime, emit.PROVENANCE)
    directory = state_dir(runtime)
    state_file = state_path(directory, "pypi-provenance", cfg.index_url) if directory else None
    verifier = make_verifier(cfg.signatures)
    if cfg.signatures == "off":
        logger.warning("pypi-provenance: signatures are not verified (--signatures off); digests still are")
    stop = StopFlag().install()
    sink = runtime.open_sink()
    feed: KafkaWatchFeed | None = None
    try:
        feed = open_feed(runtime, watch)
        heartbeat = runtime.heartbeat("pypi-provenance loop")
        ingestor = ProvenanceIngestor(
            cfg,
            client,
            sink,
            runtime.metrics,
            watch,
            verifier,
            state_file,
            should_stop=should_stop(stop, heartbeat),
        )
        if args.once:
            if feed is not None:
                feed.catch_up()
            report = ingestor.run_pass()
            logger.info(
                "pypi-provenance: %d projects fetched, %d files checked, %d observations, %d dead letters",
                report.fetched,
                report.checked_files,
                report.emitted,
                report.dead_letters,
            )
            return 0 if report.ok else 1
        return sweep_forever("pypi-provenance", ingestor.run_pass, cfg.interval, watch, feed, stop, heartbeat)
    finally:
        if feed is not None:
            feed.close()
        sink.close()
        client.close()

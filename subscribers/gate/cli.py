"""``qwatch gate``: the CI policy gate over one lockfile. Exit 0 clean, 1 violation, 2 cannot verify, 3 usage.

Every failure path ends in exit 2 with a message saying what to do, including bugs: an unexpected exception
must not become exit 1 ("violation", with nothing to fix) or, worse, 0. A mistake in how the gate was called
(a bad flag, a bad setting, a suppression without a reason) is 3, so a CI log never reads "the index could not
be asked" when the pipeline itself is wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qwatch import config as cfgmod
from qwatch.broker import default_cache_dir
from qwatch.config import ConfigError
from qwatch.http import HttpConfig, PoliteClient, make_http_client
from qwatch.ids import now_ms, parse_rfc3339_ms
from qwatch.provenance.verify import make_verifier
from qwatch.runtime import Runtime, add_common, build_runtime
from subscribers.gate import report as gate_report
from subscribers.gate.compose import GateConfig, GateOptions, KafkaLoader, run_gate
from subscribers.gate.facts_pypi import PyPIFacts
from subscribers.gate.feed import FeedError, load_feed
from subscribers.gate.http_cache import DiskCache
from subscribers.gate.policy import EXIT_UNVERIFIED, EXIT_USAGE, GateResult, Sources
from subscribers.gate.provenance import ProvenanceFacts
from subscribers.gate.report import GateContext
from subscribers.gate.soak import SoakPolicy, parse_duration
from subscribers.gate.suppressions import Suppression, SuppressionError, load_suppressions
from subscribers.inventory.lockfiles import SUPPORTED, LockfileError, detect_format, load

logger = logging.getLogger(__name__)

EPILOG = """\
exit codes:
  0  clean: every PyPI package was checked and passes
  1  violation: quarantined, removed, reported malicious, pinned version missing, or held by the soak window
  2  cannot verify: an index, the feed or Kafka was unreachable, stale or gave answers the gate does not
     understand (an unknown status or API version, a page for another project, an unreadable include, a package
     from an index it was not told about), the --timeout passed, or nothing at all was checked; fails closed
  3  usage error: a bad flag, setting or suppression entry

facts: with a Kafka bootstrap configured (--bootstrap or QWATCH_KAFKA_BOOTSTRAP) the processor's state is used,
including OpenSSF reports; otherwise the index is asked directly. --feed adds the OpenSSF malicious-packages
feed read directly (a checkout, a git URL, or an OSV zip), no broker needed. Packages from git, paths or URLs
are never matched against PyPI facts (listed as skipped); a package from another index is unverified unless
--index-url names that index (then it is checked there) or --allow-index accepts it.

suppressions: [[tool.qwatch.gate.ignore]] entries in the pyproject.toml beside the lockfile (or --config FILE),
each with package, optional version and id (a MAL id or a finding kind), a reason and an until date. Expired
entries stop suppressing and are reported; suppressed findings stay visible in JSON and SARIF.

examples:
  qwatch gate --lock poetry.lock
  qwatch gate --lock poetry.lock --feed https://github.com/ossf/malicious-packages.git
  qwatch gate --lock uv.lock --feed PyPI-all.zip --feed-max-age 7d --format json
  qwatch gate --lock requirements.txt --format sarif --output qwatch.sarif
"""


def register(sub: Any) -> None:
    """Add ``gate``."""
    p = sub.add_parser(
        "gate",
        help="fail CI when a locked package is quarantined, removed, malicious, missing or too new",
        description=f"Checks every PyPI package of a lockfile ({SUPPORTED}) against the index and, with a broker, "
        "the processor's state. Fails closed: anything it could not check is exit 2, never a pass.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--lock",
        action="append",
        type=Path,
        default=None,
        help="the lockfile; its format comes from the file name (repeatable)",
    )
    p.add_argument(
        "locks",
        nargs="*",
        type=Path,
        metavar="LOCKFILE",
        help="more lockfiles (as pre-commit passes them); the exit code is the worst of all runs",
    )
    p.add_argument("--index-url", default=None, help="index as pip takes it (default https://pypi.org/simple/)")
    p.add_argument(
        "--soak",
        default=None,
        metavar="DURATION",
        help="hold new versions of high-blast-radius packages this long (default 72h; e.g. 3d, 36h, 0)",
    )
    p.add_argument(
        "--soak-other", default=None, metavar="DURATION", help="soak window for every other package (default 0 = none)"
    )
    p.add_argument(
        "--soak-packages",
        type=Path,
        default=None,
        metavar="FILE",
        help="packages that get --soak, one per line (default: the shipped list of ~100 widely used)",
    )
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text", help="output (default text)")
    p.add_argument("--output", type=Path, default=None, help="write the report here instead of stdout")
    p.add_argument("--cache-dir", type=Path, default=None, help="keep index answers here and revalidate by ETag")
    p.add_argument("--concurrency", type=int, default=None, help="parallel index lookups (default 16)")
    p.add_argument(
        "--facts",
        choices=("auto", "pypi", "kafka"),
        default=None,
        help="auto (default): processor state when a Kafka bootstrap is set, else the index only",
    )
    p.add_argument("--now", default=None, metavar="RFC3339", help="evaluate as of this time (reproducible runs)")
    p.add_argument(
        "--feed",
        default=None,
        metavar="PATH_OR_URL",
        help="check the OpenSSF malicious-packages feed too, without a broker: a local checkout, a git URL "
        "(mirrored into the cache) or an OSV export zip",
    )
    p.add_argument(
        "--feed-max-age",
        default=None,
        metavar="DURATION",
        help="a feed whose newest commit (or record) is older than this cannot vouch for today (default 24h)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deadline for the whole run (default 300); past it every unchecked package is unverified, exit 2",
    )
    p.add_argument(
        "--allow-index",
        action="append",
        default=None,
        metavar="URL",
        help="accept packages locked from this other index unchecked (repeatable)",
    )
    p.add_argument("--allow-empty", action="store_true", default=None, help="exit 0 when nothing was there to check")
    p.add_argument(
        "--require-provenance",
        action="store_true",
        default=None,
        help="also fail (exit 1) a pin whose PEP 740 provenance was lost, changed publisher or does not hold, "
        "judged against the project's 3 releases before it; exit 2 when provenance cannot be fetched",
    )
    p.add_argument(
        "--provenance-signatures",
        choices=("sigstore", "off"),
        default=None,
        help="verify attestation signatures offline with Sigstore's shipped trust root (default) or not",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML with [tool.qwatch.gate] ignore entries (default: the pyproject.toml beside the lockfile)",
    )
    add_common(p, sink=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the gate over each lockfile; the exit code is the worst: a violation, else unverified, else clean."""
    locks = [*(args.lock or ()), *args.locks]
    if not locks:
        print("qwatch gate: usage error: name a lockfile (--lock FILE)", file=sys.stderr)
        return EXIT_USAGE
    if len(locks) > 1 and args.output is not None:
        print("qwatch gate: usage error: --output takes one lockfile; run the gate once per file", file=sys.stderr)
        return EXIT_USAGE
    codes = [_run_one(argparse.Namespace(**{**vars(args), "lock": lock})) for lock in locks]
    if EXIT_USAGE in codes:
        return EXIT_USAGE
    return 1 if 1 in codes else max(codes)


def _run_one(args: argparse.Namespace) -> int:
    """One lockfile; a usage mistake is exit 3, anything else that stops it is exit 2 with advice."""
    try:
        return _run(args, os.environ)
    except (ConfigError, SuppressionError) as exc:
        print(f"qwatch gate: usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FeedError as exc:
        return _fail(args, f"the OpenSSF feed cannot vouch for this run: {exc}")
    except (LockfileError, ValueError) as exc:
        return _fail(args, f"{exc}")
    except Exception as exc:  # noqa: BLE001 - fail closed on bugs too
        logger.exception("gate failed unexpectedly")
        return _fail(
            args,
            f"internal error ({type(exc).__name__}: {exc}); the gate never passes what it could "
            "not check: retry, and report this if it persists",
        )


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    rt = build_runtime(args, env)
    cfg = cfgmod.load(
        GateConfig,
        env,
        "GATE_",
        {
            "index_url": args.index_url,
            "soak": args.soak,
            "soak_other": args.soak_other,
            "soak_packages": args.soak_packages,
            "cache_dir": args.cache_dir,
            "concurrency": args.concurrency,
            "facts": args.facts,
            "timeout": args.timeout,
            "feed": args.feed,
            "feed_max_age": args.feed_max_age,
            "allow_index": tuple(args.allow_index) if args.allow_index else None,
            "allow_empty": args.allow_empty,
            "require_provenance": args.require_provenance,
            "provenance_signatures": args.provenance_signatures,
        },
    )
    deadline = time.monotonic() + cfg.timeout
    soak = cfg.soak_policy()
    suppressions = _suppressions(args)
    fmt = detect_format(args.lock)
    inventory = load(args.lock)
    now = parse_rfc3339_ms(args.now) if args.now else now_ms()
    feed = None
    if cfg.feed is not None:
        feed = load_feed(cfg.feed, default_cache_dir(dict(env)), now, parse_duration(cfg.feed_max_age))
    http_cfg = cfgmod.load(HttpConfig, env, "HTTP_")
    client = make_http_client(http_cfg)
    try:
        http = PoliteClient(client, http_cfg, rt.metrics, "gate")
        provenance = None
        if cfg.require_provenance:
            verifier = make_verifier(cfg.provenance_signatures)
            provenance = ProvenanceFacts(http, cfg.index_url, verifier, concurrency=min(cfg.concurrency, 8))
        options = GateOptions(
            Sources(cfg.index_url, cfg.allow_index), suppressions, cfg.allow_empty, deadline, provenance
        )
        cache = DiskCache(cfg.cache_dir) if cfg.cache_dir is not None else None
        pypi = PyPIFacts(http, cfg.index_url, cache=cache, concurrency=cfg.concurrency)
        gate = run_gate(inventory, pypi, soak, now, _kafka_loader(rt, cfg, env), feed, options)
    finally:
        client.close()
    ctx = GateContext(str(args.lock), fmt, pypi.index_url, gate.facts_label, now, soak)
    _emit(args, gate.result, ctx)
    return gate.result.exit_code


def _suppressions(args: argparse.Namespace) -> tuple[Suppression, ...]:
    if args.config is not None:
        return load_suppressions(args.config, required=True)
    return load_suppressions(args.lock.parent / "pyproject.toml", required=False)


def _kafka_loader(rt: Runtime, cfg: GateConfig, env: Mapping[str, str]) -> KafkaLoader | None:
    configured = bool(rt.args.bootstrap or env.get("QWATCH_KAFKA_BOOTSTRAP"))
    if cfg.facts == "pypi" or (cfg.facts == "auto" and not configured):
        return None

    def load_state() -> Any:
        from subscribers.gate import facts_kafka as kafka_facts

        return kafka_facts.load(rt.kafka, rt.codec, cfg.kafka_timeout)

    return load_state


def _emit(args: argparse.Namespace, result: GateResult, ctx: GateContext) -> None:
    if args.format == "json":
        text = gate_report.dumps(gate_report.to_json(result, ctx))
    elif args.format == "sarif":
        lock_text = args.lock.read_text(encoding="utf-8", errors="replace")
        text = gate_report.dumps(gate_report.to_sarif(result, ctx, lock_text))
    else:
        text = gate_report.to_text(result, ctx)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _fail(args: argparse.Namespace, message: str) -> int:
    """Exit 2 in the requested format, so a CI step parsing JSON or SARIF still gets a document."""
    advice = "the gate never passes what it could not check"
    empty = GateResult((), (), (), (), 0)
    ctx = GateContext(
        str(getattr(args, "lock", "")),
        "",
        str(getattr(args, "index_url", "") or ""),
        "none",
        now_ms(),
        SoakPolicy(frozenset(), 0),
    )
    fmt = getattr(args, "format", "text")
    if fmt == "json":
        doc = gate_report.to_json(empty, ctx)
        doc.update(exit_code=EXIT_UNVERIFIED, result="unverified", message=f"{message}; {advice}")
        sys.stdout.write(gate_report.dumps(doc))
    elif fmt == "sarif":
        doc = gate_report.to_sarif(empty, ctx, "")
        doc["runs"][0]["invocations"][0].update(
            executionSuccessful=False,
            exitCode=EXIT_UNVERIFIED,
            toolExecutionNotifications=[{"level": "error", "message": {"text": message}}],
        )
        sys.stdout.write(gate_report.dumps(doc))
    print(f"qwatch gate: cannot verify: {message}; {advice}", file=sys.stderr)
    return EXIT_UNVERIFIED

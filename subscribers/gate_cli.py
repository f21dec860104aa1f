"""``qwatch gate``: the CI policy gate over one lockfile. Exit 0 clean, 1 violation, 2 cannot verify.

Every failure path ends in exit 2 with a message saying what to do, including bugs: an unexpected exception
must not become exit 1 ("violation", with nothing to fix) or, worse, 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qwatch import config as cfgmod
from qwatch.config import ConfigError
from qwatch.http import HttpConfig, PoliteClient, make_http_client
from qwatch.ids import now_ms, parse_rfc3339_ms
from qwatch.runtime import Runtime, add_common, build_runtime
from subscribers import gate_report
from subscribers.gate import GateConfig, KafkaLoader, run_gate
from subscribers.gate_report import GateContext
from subscribers.http_cache import DiskCache
from subscribers.lockfiles import SUPPORTED, LockfileError, detect_format, load
from subscribers.policy import EXIT_UNVERIFIED, GateResult
from subscribers.pypi_facts import PyPIFacts
from subscribers.soak import SoakPolicy

logger = logging.getLogger(__name__)

EPILOG = """\
exit codes:
  0  clean: every PyPI package was checked and passes
  1  violation: quarantined, removed, reported malicious, pinned version missing, or held by the soak window
  2  cannot verify: the index (or Kafka) was unreachable or gave unusable answers; the gate fails closed

facts: with a Kafka bootstrap configured (--bootstrap or QWATCH_KAFKA_BOOTSTRAP) the processor's state is used,
including OpenSSF reports; otherwise the index is asked directly. Packages from git, paths, URLs or another
index are never matched against PyPI facts (listed as skipped in JSON).

examples:
  qwatch gate --lock poetry.lock
  qwatch gate --lock uv.lock --index-url https://pypi.org/simple/ --soak 72h --format json
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
    p.add_argument("--lock", required=True, type=Path, help="the lockfile; its format comes from the file name")
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
    add_common(p, sink=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the gate; any error ends as exit 2 with advice."""
    try:
        return _run(args, os.environ)
    except (ConfigError, LockfileError, ValueError) as exc:
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
        },
    )
    soak = cfg.soak_policy()
    fmt = detect_format(args.lock)
    inventory = load(args.lock)
    now = parse_rfc3339_ms(args.now) if args.now else now_ms()
    http_cfg = cfgmod.load(HttpConfig, env, "HTTP_")
    client = make_http_client(http_cfg)
    try:
        http = PoliteClient(client, http_cfg, rt.metrics, "gate")
        cache = DiskCache(cfg.cache_dir) if cfg.cache_dir is not None else None
        pypi = PyPIFacts(http, cfg.index_url, cache=cache, concurrency=cfg.concurrency)
        gate = run_gate(inventory, pypi, soak, now, _kafka_loader(rt, cfg, env))
    finally:
        client.close()
    ctx = GateContext(str(args.lock), fmt, pypi.index_url, gate.facts_label, now, soak)
    _emit(args, gate.result, ctx)
    return gate.result.exit_code


def _kafka_loader(rt: Runtime, cfg: GateConfig, env: Mapping[str, str]) -> KafkaLoader | None:
    configured = bool(rt.args.bootstrap or env.get("QWATCH_KAFKA_BOOTSTRAP"))
    if cfg.facts == "pypi" or (cfg.facts == "auto" and not configured):
        return None

    def load_state() -> Any:
        from subscribers import kafka_facts

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

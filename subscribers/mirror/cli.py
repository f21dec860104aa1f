"""``qwatch mirror bandersnatch|devpi``: keep a PyPI mirror in line with upstream verdicts.

Wiring around :class:`subscribers.mirror.service.Enforcer`:
- ``--source kafka`` (default): a consumer group on the transitions topic *and* the processor's state topic (the
  state records carry each report's affected versions; a batch applies its state records first). A new group
  starts from the beginning, so a new mirror learns every verdict still in force; offsets are committed only after
  the mirror was changed and the enforcer's state saved.
- ``--source jsonl:PATH``: the same on a file of transitions (and state records), for replays, cron and tests.
- ``--once`` exits when the source is drained; every poll also re-hides what a re-sync brought back and purges what
  is due.
Refused transitions and undecodable records are dead-lettered (``--sink``) with the reason, and audited.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwatch import config as cfgmod
from qwatch import events
from qwatch.broker import default_cache_dir
from qwatch.config import Secret
from qwatch.deadletters import dead_letter
from qwatch.events.topics import STATE, TRANSITIONS
from qwatch.ids import now_ms
from qwatch.metrics import Heartbeat
from qwatch.runtime import Runtime, StopFlag, UsageError, add_common, build_runtime
from qwatch.sinks import Delivery, Sink, parse_endpoint
from subscribers.mirror.policy import load_policy
from subscribers.mirror.service import Adapter, AuditLog, Enforcer, Rejected, deadletter

logger = logging.getLogger(__name__)
_P = "MIRROR_"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s`` or plain seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"expected a duration like 7d, 12h, 30m or 45s, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@cfgmod.component(_P)
@dataclass(frozen=True)
class MirrorConfig:
    """``qwatch mirror`` settings (``QWATCH_MIRROR_*``)."""

    group: str = field(default="", metadata={"help": "consumer group (default qwatch-mirror-<kind>)"})
    poll_timeout: float = field(default=1.0, metadata={"help": "seconds per poll of the transitions topic"})
    purge_after: str = field(default="7d", metadata={"help": "retention of held files after a confirmed removal"})
    policy: str = field(default="", metadata={"help": "policy file (TOML); empty: the default policy"})
    transitions_topic: str = field(default=TRANSITIONS, metadata={"help": "topic of transitions"})
    state_topic: str = field(default=STATE, metadata={"help": "topic of processor state (report scopes)"})
    devpi_user: str = field(default="root", metadata={"help": "devpi user allowed to modify the index"})
    devpi_password: Secret = field(default_factory=Secret, metadata={"help": "devpi password (secret)"})

    def __post_init__(self) -> None:
        cfgmod.require(0 < self.poll_timeout <= 60, _P, "poll_timeout", "expected 0 < seconds <= 60")
        try:
            parse_duration(self.purge_after)
        except ValueError as exc:
            raise cfgmod.ConfigError(f"{cfgmod.env_name(_P, 'purge_after')}: {exc}") from None
        cfgmod.require(bool(self.transitions_topic), _P, "transitions_topic", "must not be empty")


def register(sub: Any) -> None:
    """Add ``mirror`` with ``bandersnatch`` and ``devpi``."""
    p = sub.add_parser(
        "mirror",
        help="make PyPI mirrors (bandersnatch, devpi) stop serving quarantined, removed or reported projects",
        description="Consumes transitions and changes a mirror so it serves what upstream's verdicts allow: "
        "QUARANTINED, REMOVED and live reports hide a project, RELEASE_QUARANTINED/RELEASE_REMOVED a release; "
        "CLEARED, RESTORED, RELEASE_CLEARED and REPORT_WITHDRAWN bring them back.",
    )
    kinds = p.add_subparsers(dest="mirror", metavar="MIRROR", required=True)
    b = kinds.add_parser(
        "bandersnatch",
        help="enforce on a bandersnatch mirror tree",
        description="Moves a hidden project's pages, JSON and files out of web/ into <root>/qwatch-hold/ and "
        "removes it from the root index in every format; restores them on clearance; deletes held files only after "
        "a removal confirmed by PyPI's journal and --purge-after.",
    )
    b.add_argument("--root", required=True, type=Path, help="the mirror directory (bandersnatch's [mirror] directory)")
    d = kinds.add_parser(
        "devpi",
        help="enforce on a devpi-server mirror index",
        description="Maintains the index setting qwatch_blocked through devpi's HTTP API; the quarantine-watch "
        "devpi-server plugin (subscribers/mirror/devpi_plugin.py) makes devpi answer 404 for blocked projects and "
        "drop blocked versions' links. The password comes from QWATCH_MIRROR_DEVPI_PASSWORD only.",
    )
    d.add_argument("--url", required=True, help="devpi-server base URL")
    d.add_argument("--index", required=True, help="USER/INDEX of the mirror index")
    d.add_argument("--user", default=None, help="devpi user (env QWATCH_MIRROR_DEVPI_USER, default root)")
    d.add_argument("--state-file", type=Path, default=None, help="the enforcer's holds (default in --state-dir)")
    for q in (b, d):
        q.add_argument("--policy", default=None, help="policy file (TOML; env QWATCH_MIRROR_POLICY)")
        q.add_argument("--purge-after", default=None, help="retention after a confirmed removal (default 7d)")
        q.add_argument("--audit-log", type=Path, default=None, help="JSONL audit log (default: inside the root/state)")
        q.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        q.add_argument("--once", action="store_true", help="apply what the source holds, then exit")
        q.add_argument("--group", default=None, help="consumer group (default qwatch-mirror-<mirror>)")
        q.add_argument("--transitions-topic", default=None, help="transitions topic (default qwatch.transitions.v1)")
        add_common(q, sink=True, source=True)
        q.set_defaults(func=run)


def _build(args: argparse.Namespace, rt: Runtime, cfg: MirrorConfig) -> tuple[Enforcer, Any]:
    policy = load_policy(Path(cfg.policy) if cfg.policy else None)
    purge_after = parse_duration(cfg.purge_after)
    echo = print if args.dry_run else None
    closer: Any = None
    adapter: Adapter
    if args.mirror == "bandersnatch":
        from subscribers.mirror.bandersnatch import BandersnatchMirror

        root: Path = args.root
        if not (root / "web").is_dir():
            raise UsageError(f"--root {root}: no web/ directory (is this a bandersnatch mirror directory?)")
        adapter = BandersnatchMirror(root)
        state_path = root / "qwatch-mirror-state.json"
        audit_path = args.audit_log or root / "qwatch-audit.jsonl"
        name = f"bandersnatch:{root}"
    else:
        import httpx

        from subscribers.mirror.devpi import DevpiIndex

        client = httpx.Client(timeout=30.0)
        closer = client
        adapter = DevpiIndex(client, args.url, args.index, cfg.devpi_user, cfg.devpi_password.reveal())
        adapter.blocked()  # fail now if devpi is unreachable or runs without the plugin
        base = rt.common.state_dir or default_cache_dir(dict(rt.env))
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{args.url}-{args.index}").strip("-")
        state_path = args.state_file or base / "mirror" / f"devpi-{slug}.json"
        audit_path = args.audit_log or state_path.with_suffix(".audit.jsonl")
        name = f"devpi:{args.url.rstrip('/')}/{args.index}"
    enforcer = Enforcer(
        adapter,
        policy,
        state_path,
        AuditLog(None if args.dry_run else audit_path, echo),
        mirror=name,
        purge_after_s=purge_after,
        dry_run=args.dry_run,
    )
    return enforcer, closer


def run(args: argparse.Namespace) -> int:
    """Build, then serve until stopped (or drained with --once)."""
    env = os.environ
    rt = build_runtime(args, env)
    cfg = cfgmod.load(
        MirrorConfig,
        env,
        _P,
        {
            "group": args.group,
            "policy": args.policy,
            "purge_after": args.purge_after,
            "transitions_topic": args.transitions_topic,
            "devpi_user": getattr(args, "user", None),
        },
    )
    enforcer, closer = _build(args, rt, cfg)
    sink = rt.open_sink()
    stop = StopFlag().install()
    try:
        kind, _ = parse_endpoint(args.source, "--source")
        group = cfg.group or f"qwatch-mirror-{args.mirror}"
        if kind == "jsonl":
            source: Any = rt.open_source(group)
        else:
            source = rt.open_source(group, cfg.transitions_topic, cfg.state_topic)
        beat = rt.heartbeat(f"mirror {args.mirror} loop")
        return _serve(source, enforcer, sink, cfg, args.once, stop, jsonl=kind == "jsonl", heartbeat=beat)
    finally:
        sink.close()
        if closer is not None:
            closer.close()


def _serve(
    source: Any,
    enforcer: Enforcer,
    sink: Sink,
    cfg: MirrorConfig,
    once: bool,
    stop: StopFlag,
    *,
    jsonl: bool,
    heartbeat: Heartbeat | None = None,
) -> int:
    """Apply batches until stopped; the heartbeat says the loop turns (``/healthz``) and has its partitions
    (``/readyz``), so a stuck enforcer is restarted instead of silently leaving a mirror serving takedowns."""
    polls_without_data = 0
    try:
        while not stop.is_set:
            if heartbeat is not None:
                heartbeat.beat(idle=cfg.poll_timeout)
            batch: list[Delivery] = source.poll(cfg.poll_timeout)
            if batch:
                handle_batch(batch, enforcer, sink)
                source.commit()
                polls_without_data = 0
            else:
                enforcer.reconcile()
                polls_without_data += 1
                assigned = jsonl or bool(getattr(source, "consumer", None) and source.consumer.assignment())
                if heartbeat is not None and assigned:
                    heartbeat.ready()
                if once and assigned and (jsonl or polls_without_data >= 2):
                    return 0
            if jsonl and not batch:
                if once:
                    return 0
                stop.wait(cfg.poll_timeout)  # a file source does not block: do not spin
    finally:
        source.close()
    return 0


def handle_batch(batch: list[Delivery], enforcer: Enforcer, sink: Sink) -> None:
    """State records first (report scopes), then transitions in order; refusals and undecodable records are
    dead-lettered and flushed before the caller commits."""
    letters: list[events.DeadLetter] = []
    for d in batch:
        if isinstance(d.event, events.PackageStateRecord):
            enforcer.on_state(d.event)
    transitions: list[tuple[Delivery, object]] = []
    for d in batch:
        if d.error is not None:
            letters.append(
                dead_letter(source="mirror", reason="schema", error=d.error, pointer=d.pointer, observed_at=now_ms())
            )
        elif d.event is not None and not isinstance(d.event, events.PackageStateRecord):
            transitions.append((d, d.event))
    pointers = {id(t): d.pointer for d, t in transitions}
    rejected: list[Rejected] = enforcer.handle(t for _, t in transitions)
    letters.extend(deadletter("mirror", r, pointers.get(id(r.transition), "")) for r in rejected)
    for letter in letters:
        logger.warning("mirror: dead-lettered %s: %s", letter.pointer, letter.error)
        sink.emit(letter)
    if letters:
        sink.flush(30)

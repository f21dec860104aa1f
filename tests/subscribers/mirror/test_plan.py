"""The mirror enforcers' core and the bandersnatch adapter, without Kafka or the real tools.

- Planning properties against an independent reference model: after any sequence of transitions the effective
  hidden set is exactly "some reason of each kind is still open", replaying any prefix changes nothing, and a
  rejected transition leaves the holds untouched.
- The adapter on a bandersnatch-shaped tree: hide, hide again (idempotent), restore gives back the same bytes;
  a release hide rewrites every page format and its restore puts the same lines back; purge only after a
  journal-confirmed removal and the retention; a re-sync that brings a held project back is hidden again.
- ``qwatch mirror bandersnatch --source jsonl:`` end to end: --dry-run changes nothing, --once applies, a replay is
  a no-op, malformed lines and transitions are dead-lettered with a reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwatch import events, ids
from qwatch.events.codec import Codec
from qwatch.events.kinds import ALL_KINDS
from subscribers.mirror import plan
from subscribers.mirror.bandersnatch import BandersnatchMirror
from subscribers.mirror.plan import Allow, Holds, Policy, decide
from subscribers.mirror.policy import parse_policy
from subscribers.mirror.service import AuditLog, Enforcer

NOW = 1_800_000_000_000
DEFAULT = Policy()


def tr(
    kind: str,
    package: str = "evil-pkg",
    *,
    version: str | None = None,
    report: str | None = None,
    serial: int = 1,
    source: str = "pypi-journal",
    at: int = NOW,
) -> events.Transition:
    return events.Transition(
        event_id=ids.event_id("processor", "PyPI", package, kind, version, report, serial),
        kind=kind,
        ecosystem="PyPI",
        package=package,
        severity="high",
        version=version,
        report_id=report,
        before=None,
        after=events.PackageState("active", serial),
        evidence=(events.Evidence(f"obs-{serial}", source, at),),
        upstream_time=at,
        detected_at=at,
        summary=kind,
    )


# ---------------------------------------------------------------------------------------------- planning properties

STEPS = st.lists(
    st.one_of(
        st.sampled_from(["QUARANTINED", "CLEARED", "REMOVED", "RESTORED"]).map(lambda k: (k, None, None)),
        st.tuples(
            st.sampled_from(["RELEASE_QUARANTINED", "RELEASE_CLEARED", "RELEASE_REMOVED"]),
            st.sampled_from(["1.0", "2.0"]),
            st.none(),
        ),
        st.tuples(st.sampled_from(["REPORTED", "REPORT_WITHDRAWN"]), st.none(), st.sampled_from(["MAL-1", "MAL-2"])),
    ),
    max_size=25,
)
SCOPES = {"MAL-1": (frozenset({"1.0"}), False), "MAL-2": (frozenset(), True)}


def reference(steps: list[tuple[str, str | None, str | None]]) -> tuple[bool, set[str]]:
    """Independent model: which reasons are open at the end, by scanning the history per reason."""
    open_project: dict[str, bool] = {"q": False, "r": False, "MAL-2": False}
    open_versions: dict[tuple[str, str], bool] = {}
    for kind, version, report in steps:
        if kind == "QUARANTINED":
            open_project["q"] = True
        elif kind == "CLEARED":
            open_project["q"] = False
        elif kind == "REMOVED":
            open_project["r"] = True
        elif kind == "RESTORED":
            open_project["r"] = False
        elif kind in ("RELEASE_QUARANTINED", "RELEASE_REMOVED"):
            open_versions[(kind, str(version))] = True
        elif kind == "RELEASE_CLEARED":
            open_versions[("RELEASE_QUARANTINED", str(version))] = False
        elif kind == "REPORTED" and report == "MAL-2":
            open_project["MAL-2"] = True
        elif kind == "REPORT_WITHDRAWN" and report == "MAL-2":
            open_project["MAL-2"] = False
        elif kind == "REPORTED":
            open_versions[("MAL-1", "1.0")] = True
        elif kind == "REPORT_WITHDRAWN":
            open_versions[("MAL-1", "1.0")] = False
    return any(open_project.values()), {v for (_, v), o in open_versions.items() if o}


def run_steps(
    steps: list[tuple[str, str | None, str | None]], policy: Policy = DEFAULT
) -> tuple[Holds, list[plan.Action]]:
    holds, actions = Holds(), []
    for i, (kind, version, report) in enumerate(steps):
        t = tr(kind, version=version, report=report, serial=i + 1)
        d = decide(t, holds, policy, SCOPES.get(report or ""))
        assert d.rejected is None
        holds = d.holds
        actions.extend(d.actions)
    return holds, actions


@given(STEPS)
@settings(max_examples=150, deadline=None)
def test_effective_state_matches_the_reference_model(steps: list[tuple[str, str | None, str | None]]) -> None:
    holds, actions = run_steps(steps)
    hidden, versions = plan.effective("evil-pkg", holds, Policy())
    assert (hidden, set(versions)) == reference(steps)
    # the actions, replayed on a served/hidden model, land on the same state
    model_hidden, model_versions, prev = False, set(), ""
    for a in actions:
        if a.op == "hide_project":
            assert not model_hidden
            model_hidden = True
        elif a.op == "restore_project":  # brings back everything the project hide took, held versions too
            assert model_hidden
            model_hidden, model_versions = False, set()
        elif a.op == "hide_versions":
            assert not model_versions & set(a.versions)
            model_versions |= set(a.versions)
        elif a.op == "restore_versions":
            assert set(a.versions) <= model_versions or prev == "restore_project"
            model_versions -= set(a.versions)
        prev = a.op
    assert (model_hidden, model_versions) == (hidden, set(versions))


@given(STEPS, st.integers(min_value=0, max_value=25))
@settings(max_examples=100, deadline=None)
def test_replaying_a_prefix_plans_nothing(steps: list[tuple[str, str | None, str | None]], cut: int) -> None:
    holds, _ = run_steps(steps)
    # the same transition applied twice in a row is a keep (what a redelivered record does)
    for i, (kind, version, report) in enumerate(steps[:cut]):
        t = tr(kind, version=version, report=report, serial=i + 1)
        first = decide(t, holds, Policy(), SCOPES.get(report or ""))
        again = decide(t, first.holds, Policy(), SCOPES.get(report or ""))
        assert [a.op for a in again.actions] == ["keep"]
        holds = first.holds


@pytest.mark.parametrize(
    ("t", "why"),
    [
        (tr("EXPLODED"), "unknown transition kind"),
        (tr("QUARANTINED", package="../../etc"), "not a valid project name"),
        (tr("QUARANTINED", package=""), "not a valid project name"),
        (tr("RELEASE_QUARANTINED"), "needs a valid version"),
        (tr("RELEASE_REMOVED", version="1.0/../../x"), "needs a valid version"),
        (tr("REPORTED"), "without a report_id"),
        ("not a transition", "not a Transition"),
    ],
)
def test_malformed_or_unknown_changes_nothing(t: object, why: str) -> None:
    holds = Holds(frozenset({"QUARANTINED"}))
    d = decide(t, holds, Policy())
    assert d.rejected is not None and why in d.rejected
    assert d.actions == () and d.holds is holds


def test_policy_allow_list_kind_switches_and_report_modes() -> None:
    policy = parse_policy(
        {
            "act_on": ["QUARANTINED", "REPORTED"],
            "reported": "versions",
            "allow": [{"package": "Evil_Pkg", "reason": "reviewed", "reports": ["MAL-1"]}],
        }
    )
    assert policy.allow == (Allow("evil-pkg", "reviewed", frozenset(), frozenset({"MAL-1"})),)
    # REMOVED is not acted on with this policy
    assert [a.op for a in decide(tr("REMOVED"), Holds(), policy).actions] == ["keep"]
    # MAL-1 is allowed for this package: nothing hides; MAL-3 (same scope) hides only 1.0
    assert [a.op for a in decide(tr("REPORTED", report="MAL-1"), Holds(), policy, SCOPES["MAL-1"]).actions] == ["keep"]
    d = decide(tr("REPORTED", report="MAL-3"), Holds(), policy, SCOPES["MAL-1"])
    assert [(a.op, a.versions) for a in d.actions] == [("hide_versions", ("1.0",))]
    # unknown scope fails closed: the whole project
    assert [a.op for a in decide(tr("REPORTED", report="MAL-3"), Holds(), policy, None).actions] == ["hide_project"]
    project_mode = parse_policy({"reported": "project"})
    assert [a.op for a in decide(tr("REPORTED", report="MAL-9"), Holds(), project_mode, SCOPES["MAL-1"]).actions] == [
        "hide_project"
    ]
    with pytest.raises(ValueError, match="act_on"):
        parse_policy({"act_on": ["CLEARED"]})
    with pytest.raises(ValueError, match="needs a reason"):
        parse_policy({"allow": [{"package": "x"}]})


# ---------------------------------------------------------------------------------------------- the adapter


def make_tree(root: Path, projects: dict[str, dict[str, list[str]]]) -> None:
    """A tree shaped like bandersnatch 8's output (simple-format ALL, json = true)."""
    web = root / "web"
    names = sorted(projects)
    links = "".join(f'    <a href="{n}/">{n}</a><br/>\n' for n in names)
    root_html = f"<!DOCTYPE html>\n<html>\n  <head>\n  </head>\n  <body>\n{links}  </body>\n</html>"
    for fmt in ("index.html", "index.v1_html"):
        (web / "simple").mkdir(parents=True, exist_ok=True)
        (web / "simple" / fmt).write_text(root_html)
    (web / "simple" / "index.v1_json").write_text(
        json.dumps({"meta": {"api-version": "1.1", "_last-serial": 0}, "projects": [{"name": n} for n in names]})
    )
    for name, releases in projects.items():
        files, lines, rel = [], [], {}
        for version, filenames in releases.items():
            rel[version] = []
            for fn in filenames:
                h = hashlib.sha256(fn.encode()).hexdigest()
                path = web / "packages" / h[:2] / h[2:4] / h[4:] / fn
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(fn.encode() * 3)
                if fn.endswith(".whl"):
                    path.with_name(fn + ".metadata").write_text("Metadata-Version: 2.1\n")
                url = f"../../packages/{h[:2]}/{h[2:4]}/{h[4:]}/{fn}"
                files.append({"filename": fn, "url": url, "hashes": {"sha256": h}})
                lines.append(f'    <a href="{url}#sha256={h}">{fn}</a><br/>\n')
                rel[version].append({"filename": fn, "url": "http://x/" + fn})
        page = f"<!DOCTYPE html>\n<html>\n  <body>\n    <h1>Links for {name}</h1>\n{''.join(lines)}  </body>\n</html>"
        d = web / "simple" / name
        d.mkdir(parents=True)
        (d / "index.html").write_text(page)
        (d / "index.v1_html").write_text(page)
        (d / "index.v1_json").write_text(
            json.dumps({"files": files, "meta": {}, "name": name, "versions": list(releases)})
        )
        doc = json.dumps({"info": {"name": name}, "releases": rel, "urls": []})
        (web / "json").mkdir(exist_ok=True)
        (web / "json" / name).write_text(doc)
        (web / "pypi" / name).mkdir(parents=True)
        (web / "pypi" / name / "json").write_text(doc)


def snapshot(web: Path) -> dict[str, bytes]:
    return {str(p.relative_to(web)): p.read_bytes() for p in sorted(web.rglob("*")) if p.is_file()}


PROJECTS = {
    "evil-pkg": {"0.1": ["evil_pkg-0.1-py3-none-any.whl", "evil_pkg-0.1.tar.gz"]},
    "demo": {"1.0": ["demo-1.0-py3-none-any.whl"], "1.1": ["demo-1.1-py3-none-any.whl", "demo-1.1.tar.gz"]},
    "safe": {"2.0": ["safe-2.0-py3-none-any.whl"]},
}


def test_hide_and_restore_a_project_is_exact_and_idempotent(tmp_path: Path) -> None:
    make_tree(tmp_path, PROJECTS)
    web = tmp_path / "web"
    before = snapshot(web)
    m = BandersnatchMirror(tmp_path)
    m.hide_project("evil-pkg")
    after_hide = snapshot(web)
    assert not any("evil" in k for k in after_hide), "no page, JSON or file of the project is left in web/"
    for fmt in ("index.html", "index.v1_html", "index.v1_json"):
        assert "evil-pkg" not in (web / "simple" / fmt).read_text()
        assert "safe" in (web / "simple" / fmt).read_text()
    assert (tmp_path / "qwatch-hold" / "evil-pkg" / "web" / "simple" / "evil-pkg" / "index.v1_json").exists()
    m.hide_project("evil-pkg")
    assert snapshot(web) == after_hide
    m.restore_project("evil-pkg")
    restored = snapshot(web)
    assert set(restored) == set(before)
    assert all(restored[k] == before[k] for k in before if not k.startswith("simple/index"))
    for fmt in ("index.html", "index.v1_html", "index.v1_json"):
        assert "evil-pkg" in (web / "simple" / fmt).read_text()
    m.restore_project("evil-pkg")  # nothing held any more: queued for a re-sync, nothing breaks
    assert set(snapshot(web)) == set(before)


def test_release_hide_rewrites_every_format_and_restore_puts_it_back(tmp_path: Path) -> None:
    make_tree(tmp_path, PROJECTS)
    web = tmp_path / "web"
    before = snapshot(web)
    m = BandersnatchMirror(tmp_path)
    m.hide_versions("demo", ("1.1",))
    for fmt in ("index.html", "index.v1_html", "index.v1_json"):
        text = (web / "simple" / "demo" / fmt).read_text()
        assert "demo-1.1" not in text and "demo-1.0-py3" in text
    assert not any("demo-1.1" in k for k in snapshot(web))
    assert "1.1" not in json.loads((web / "json" / "demo").read_text())["releases"]
    m.hide_versions("demo", ("1.1",))  # a replay takes nothing more and keeps what it took
    m.restore_versions("demo", ("1.1",))
    after = snapshot(web)
    assert set(after) == set(before)
    assert json.loads(after["simple/demo/index.v1_json"])["files"] == json.loads(before["simple/demo/index.v1_json"])[
        "files"
    ] or sorted(f["filename"] for f in json.loads(after["simple/demo/index.v1_json"])["files"]) == sorted(
        f["filename"] for f in json.loads(before["simple/demo/index.v1_json"])["files"]
    )
    assert sorted(after["simple/demo/index.html"].decode().splitlines()) == sorted(
        before["simple/demo/index.html"].decode().splitlines()
    )


def enforcer(root: Path, clock: list[int], purge_after_s: float = 3600) -> Enforcer:
    return Enforcer(
        BandersnatchMirror(root),
        Policy(),
        root / "qwatch-mirror-state.json",
        AuditLog(root / "qwatch-audit.jsonl"),
        mirror="test",
        purge_after_s=purge_after_s,
        clock=lambda: clock[0],
    )


def test_purge_only_after_a_journal_confirmed_removal_and_the_retention(tmp_path: Path) -> None:
    make_tree(tmp_path, PROJECTS)
    clock = [NOW]
    e = enforcer(tmp_path, clock)
    e.handle([tr("REMOVED", package="demo", source="pypi-simple", serial=5)])  # seen on pages only: never purged
    e.handle([tr("REMOVED", serial=6)])  # journal-confirmed
    held = tmp_path / "qwatch-hold"
    clock[0] = NOW + 3599_000
    e.reconcile()
    assert (held / "evil-pkg").exists() and (held / "demo").exists()
    clock[0] = NOW + 3600_000
    e.reconcile()
    assert not (held / "evil-pkg").exists(), "purged after the retention"
    assert (held / "demo").exists(), "a removal not confirmed by the journal is never purged"
    audit = [json.loads(x) for x in (tmp_path / "qwatch-audit.jsonl").read_text().splitlines()]
    assert [a["op"] for a in audit].count("purge_project") == 1
    # state survives a restart; the RESTORED after a purge queues a re-sync (nothing held to bring back)
    e2 = enforcer(tmp_path, clock)
    assert e2.state.holds["evil-pkg"].purged
    e2.handle([tr("RESTORED", serial=7)])
    assert "evil-pkg" in (tmp_path / "qwatch-resync.txt").read_text().split()


def test_a_resync_that_brings_a_held_project_back_is_hidden_again(tmp_path: Path) -> None:
    make_tree(tmp_path, PROJECTS)
    clock = [NOW]
    e = enforcer(tmp_path, clock)
    e.handle([tr("QUARANTINED")])
    assert not (tmp_path / "web" / "simple" / "evil-pkg").exists()
    make_tree(tmp_path / "resync", {"evil-pkg": PROJECTS["evil-pkg"]})  # what a later bandersnatch run writes
    for sub in ("simple/evil-pkg", "json/evil-pkg", "pypi/evil-pkg"):
        (tmp_path / "resync" / "web" / sub).rename(tmp_path / "web" / sub)
    e.reconcile()
    assert not (tmp_path / "web" / "simple" / "evil-pkg").exists()


# ---------------------------------------------------------------------------------------------- the CLI on JSONL


def write_jsonl(path: Path, items: list[object], raw: list[str] = ()) -> None:  # type: ignore[assignment]
    codec = Codec()
    lines = [json.dumps(codec.to_json_dict(t)) for t in items] + list(raw)
    path.write_text("\n".join(lines) + "\n")


def test_cli_jsonl_dry_run_once_replay_and_dead_letters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    root = tmp_path / "mirror"
    make_tree(root, PROJECTS)
    web = root / "web"
    before = snapshot(web)
    src = tmp_path / "in.jsonl"
    good = [tr("QUARANTINED", serial=2), tr("RELEASE_QUARANTINED", package="demo", version="1.1", serial=3)]
    write_jsonl(src, [tr("EXPLODED", serial=1), *good], raw=["{not json"])
    letters = tmp_path / "dl.jsonl"
    args = ["mirror", "bandersnatch", "--root", str(root), "--source", f"jsonl:{src}", "--sink", f"jsonl:{letters}"]

    assert main([*args, "--dry-run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "hide_project" in out and "hide_versions" in out
    assert snapshot(web) == before, "--dry-run changes nothing"
    letters.unlink()

    assert main([*args, "--once"]) == 0
    assert not (web / "simple" / "evil-pkg").exists()
    assert "demo-1.1" not in (web / "simple" / "demo" / "index.v1_json").read_text()
    dead = [json.loads(x) for x in letters.read_text().splitlines()]
    assert sorted(d["reason"] for d in dead) == ["invalid-transition", "schema"]
    assert any("unknown transition kind 'EXPLODED'" in d["error"] for d in dead)
    after = snapshot(web)
    audit_lines = (root / "qwatch-audit.jsonl").read_text().splitlines()
    letters.unlink()

    assert main([*args, "--once"]) == 0  # a replay: nothing moves, nothing new is audited but the refusal
    assert snapshot(web) == after
    new_audit = (root / "qwatch-audit.jsonl").read_text().splitlines()[len(audit_lines) :]
    assert new_audit and all(json.loads(x)["op"] == "rejected" for x in new_audit)
    assert len(letters.read_text().splitlines()) == 2, "the replay dead-letters the same two inputs (same ids)"


def test_a_release_quarantined_while_the_project_was_hidden_stays_hidden_after_clearance(tmp_path: Path) -> None:
    make_tree(tmp_path, PROJECTS)
    clock = [NOW]
    e = enforcer(tmp_path, clock)
    e.handle([tr("QUARANTINED", package="demo", serial=1)])
    e.handle([tr("RELEASE_QUARANTINED", package="demo", version="1.1", serial=2)])
    e.handle([tr("CLEARED", package="demo", serial=3)])
    web = tmp_path / "web"
    assert (web / "simple" / "demo" / "index.html").exists()
    for fmt in ("index.html", "index.v1_html", "index.v1_json"):
        text = (web / "simple" / "demo" / fmt).read_text()
        assert "demo-1.0-py3" in text and "demo-1.1" not in text
    assert not any("demo-1.1" in k for k in snapshot(web))
    e.handle([tr("RELEASE_CLEARED", package="demo", version="1.1", serial=4)])
    assert "demo-1.1.tar.gz" in (web / "simple" / "demo" / "index.v1_json").read_text()
    assert any(k.endswith("demo-1.1.tar.gz") for k in snapshot(web))


def test_fakepypi_serve_files_announces_the_digests_of_the_bytes_it_serves() -> None:
    """What bandersnatch and pip verify: the JSON API's and the pages' sha256 (and PEP 658's) match the bytes."""
    import io
    import zipfile

    from testing.fakepypi import FakePyPI

    pypi = FakePyPI(serve_files=True)
    pypi.add_project("Demo_Pkg", {"1.0": ["demo_pkg-1.0-py3-none-any.whl", "demo_pkg-1.0.tar.gz"]})
    with pypi.serve() as base:
        page = json.loads(pypi.render("/simple/demo-pkg/", "application/vnd.pypi.simple.v1+json").body)
        api = json.loads(pypi.render("/pypi/Demo_Pkg/json").body)
        assert len(page["files"]) == 2
        for f in page["files"]:
            assert f["url"].startswith(base + "/packages/")
            body = pypi.render(f["url"].removeprefix(base)).body
            assert hashlib.sha256(body).hexdigest() == f["hashes"]["sha256"] and len(body) == f["size"]
            if f["filename"].endswith(".whl"):
                meta = pypi.render(f["url"].removeprefix(base) + ".metadata").body
                assert hashlib.sha256(meta).hexdigest() == f["core-metadata"]["sha256"]
                names = zipfile.ZipFile(io.BytesIO(body)).namelist()
                assert "demo_pkg-1.0.dist-info/METADATA" in names and "demo_pkg-1.0.dist-info/RECORD" in names
        assert {u["digests"]["sha256"] for u in api["urls"]} == {f["hashes"]["sha256"] for f in page["files"]}
    assert pypi.render("/packages/00/00/nothing/x.whl").status == 404
    # the default fake is unchanged: CDN URLs and filename-derived digests, no file route
    plain = FakePyPI()
    plain.add_project("demo", {"1.0": ["demo-1.0.tar.gz"]})
    assert json.loads(plain.render("/simple/demo/", "application/vnd.pypi.simple.v1+json").body)["files"][0][
        "url"
    ].startswith("https://files.pythonhosted.org/packages/")


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_the_processor_emits_is_understood_never_rejected(kind: str) -> None:
    """The plan spells its kinds itself (it imports no processor code); against the processor's own list, none may
    be dead-lettered as unknown, and the provenance kinds change nothing a mirror serves."""
    t = tr(kind, version="1.0", report="MAL-2026-1")
    decision = decide(t, Holds(), Policy())
    assert decision.rejected is None, decision.rejected
    if kind.startswith("PROVENANCE_"):
        assert [a.op for a in decision.actions] == ["keep"] and decision.holds == Holds()

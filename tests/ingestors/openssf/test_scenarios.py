"""Scenarios on real local git repositories built in tmp dirs: what happens upstream, what the ingestor emits."""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import pytest

from ingestors.openssf import service
from ingestors.openssf.service import Progress
from qwatch.cursors import FileCursorStore
from qwatch.events import Cursor
from qwatch.ids import event_id
from qwatch.openssf.gitsource import GitSourceError
from qwatch.runtime import StopFlag
from qwatch.sinks import MemorySink, PublishError
from tests.openssf_support import COMPONENT, FailingSink, WorkRepo, gone, ingestor, live, osv

A, B, C, D = "MAL-2026-101", "MAL-2026-102", "MAL-2026-103", "MAL-2026-104"


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    """A repo whose first commit holds two live reports plus files that must be ignored."""
    r = WorkRepo(tmp_path / "upstream")
    r.commit(
        {
            live("alpha", A): osv(A, "alpha"),
            live("beta", B): osv(B, "beta"),
            "osv/malicious/.id-allocator": "h1\n",
            "osv/malicious/README.md": "# reports\n",
            "osv/unmergable/pypi/x/MAL-0000-x.json": osv("", "x"),
            "Downloads/osv/malicious/pypi/y/MAL-2026-999.json": osv("MAL-2026-999", "y"),
            "README.md": "upstream\n",
        },
        "base",
    )
    return r


def test_incremental_polls_follow_new_commits(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        # The snapshot is a baseline (existing), and nothing comes from unmergable/, Downloads/, non-JSON.
        assert h.take() == {("existing", A), ("existing", B)}
        repo.commit({live("gamma", C): osv(C, "gamma"), live("alpha", A): osv(A, "alpha", versions=("1.0.0", "2.0"))})
        head = repo.commit({live("beta", B): None, "osv/malicious/.id-allocator": "h2\n"})
        result = h.service.poll()
        assert h.take() == {("added", C), ("modified", A), ("deleted", B)}
        assert [s.mode for s in result.steps] == ["range"] and result.head == head
        cursor = h.cursors.load(COMPONENT)
        assert cursor is not None and cursor.value == head


def test_a_poll_with_no_change_emits_nothing(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        h.take()
        before = h.cursors.load(COMPONENT)
        result = h.service.poll()
        assert result.steps == [] and h.sink.events == [] and h.cursors.load(COMPONENT) == before
        repo.commit({"osv/malicious/.id-allocator": "h9\n", "osv/unmergable/pypi/x/MAL-0000-x.json": None})
        assert h.service.poll().steps[0].changes.total() == 0 and h.sink.events == []
        assert h.sample("qwatch_ingest_polls_total", {"source": "openssf", "outcome": "ok"}) == 3
        assert h.sample("qwatch_ingest_cursor_age_seconds", {"source": "openssf"}) > 0


def test_force_push_neither_duplicates_nor_misses(repo: WorkRepo, tmp_path: Path) -> None:
    base = repo.repo.head.commit.hexsha
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        repo.commit({live("gamma", C): osv(C, "gamma")})
        h.service.poll()
        assert h.take() == {("existing", A), ("existing", B), ("added", C)}
        repo.reset_hard(base)  # C's commit is rewritten away…
        head = repo.commit({live("delta", D): osv(D, "delta"), live("beta", B): osv(B, "beta", summary="edited")})
        result = h.service.poll()
        assert [s.mode for s in result.steps] == ["force-push"]
        assert h.take() == {("deleted", C), ("added", D), ("modified", B)}  # A unchanged: not re-emitted
        assert h.cursors.load(COMPONENT) == Cursor(
            COMPONENT,
            head,
            h.cursors.load(COMPONENT).updated_at,  # type: ignore[union-attr]
            repo.repo.head.commit.committed_date * 1000,
        )
        assert h.service.poll().steps == [] and h.sink.events == []


def test_force_push_after_the_old_commit_is_gone_uses_the_index(repo: WorkRepo, tmp_path: Path) -> None:
    """A fresh clone of rewritten history lacks the cursor commit; the index still knows the last state."""
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
        repo.commit({live("gamma", C): osv(C, "gamma")})
        h.service.poll()
    rewritten = WorkRepo(tmp_path / "rewritten")  # same content as the base commit, unrelated history
    rewritten.commit(
        {live("alpha", A): osv(A, "alpha"), live("beta", B): osv(B, "beta"), live("delta", D): osv(D, "delta")}
    )
    with ingestor(rewritten.path, state) as h:
        assert not h.source.has_commit(h.cursors.load(COMPONENT).value)  # type: ignore[union-attr]
        h.service.poll()
        events = h.reports()
        assert h.take() == {("deleted", C), ("added", D)}
        deleted = next(e for e in events if e.change == "deleted")
        # The old blob is not in this clone: the event is named from the index.
        assert (deleted.ecosystem, deleted.package, deleted.path) == ("PyPI", "gamma", live("gamma", C))
        assert h.service.poll().steps == []


def test_withdrawal_then_reinstatement_then_deletion(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state", per_commit=True) as h:
        h.service.poll()
        h.take()
        withdrawn_doc = osv(A, "alpha", withdrawn="2026-02-01T00:00:00Z", modified="2026-02-01T00:00:00Z")
        repo.move(live("alpha", A), gone("alpha", A), withdrawn_doc, "Withdraw FPs (#1276)")
        h.service.poll()
        events = h.reports()
        assert h.take() == {("withdrawn", A)}
        assert events[0].withdrawn == "2026-02-01T00:00:00Z" and events[0].path == gone("alpha", A)
        repo.move(gone("alpha", A), live("alpha", A), osv(A, "alpha"), "Unwithdraw (#1278)")
        h.service.poll()
        assert h.take() == {("reinstated", A)}
        # Withdrawn by field only (no move): still a withdrawal.
        repo.commit({live("beta", B): osv(B, "beta", withdrawn="2026-03-01T00:00:00Z")})
        h.service.poll()
        assert h.take() == {("withdrawn", B)}
        repo.commit({live("alpha", A): None}, "deleted by mistake")
        h.service.poll()
        events = h.reports()
        assert h.take() == {("deleted", A)}
        assert (events[0].package, events[0].path) == ("alpha", live("alpha", A))  # named from the old record


def test_assign_ids_rename_is_one_added_not_a_delete_and_an_add(repo: WorkRepo, tmp_path: Path) -> None:
    pending = "osv/malicious/pypi/gamma/MAL-0000-kam193-dcdb5ffaca610378.json"
    with ingestor(repo.path, tmp_path / "state", per_commit=True) as h:
        h.service.poll()
        h.take()
        repo.commit({pending: osv("", "gamma", summary="source summary")}, "Ingest OSV - Cloud Storage")
        steps = h.service.poll().steps
        assert h.take() == set() and steps[0].pending == 1
        repo.move(pending, live("gamma", C), osv(C, "gamma"), "Assign IDs")
        h.service.poll()
        assert [(e.change, e.report_id) for e in h.reports()] == [("added", C)]
        assert h.sample("qwatch_openssf_pending_files_skipped_total") == 1


def test_ingest_and_assign_in_one_range_is_one_added(repo: WorkRepo, tmp_path: Path) -> None:
    pending = "osv/malicious/pypi/gamma/MAL-0000-x.json"
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        h.take()
        repo.commit({pending: osv("", "gamma")}, "Ingest OSV - Cloud Storage")
        repo.move(pending, live("gamma", C), osv(C, "gamma"), "Assign IDs")
        h.service.poll()
        assert [(e.change, e.report_id) for e in h.reports()] == [("added", C)]


def test_a_directory_rename_with_the_same_content_is_not_a_change(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        h.take()
        repo.move(live("alpha", A), "osv/malicious/pypi/alpha_renamed/MAL-2026-101.json")
        h.service.poll()
        assert h.take() == set()
        # A second copy appears, then the first goes: still one live report, never a false 'deleted'.
        repo.commit({live("alpha", A): osv(A, "alpha")})
        repo.commit({"osv/malicious/pypi/alpha_renamed/MAL-2026-101.json": None})
        h.service.poll()
        assert h.take() == set()


def test_malformed_json_is_dead_lettered_and_the_rest_of_the_commit_flows(repo: WorkRepo, tmp_path: Path) -> None:
    bad = "osv/malicious/vscode/EffetMer.darkgpt/MAL-2026-200.json"
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        h.take()
        head = repo.commit(
            {
                bad: '{"id": "MAL-2026-200", "affected": [],}',
                "osv/malicious/pypi/odd/MAL-2026-201.json": '{"id": "MAL-2026-201", "affected": "PyPI"}',
                live("gamma", C): osv(C, "gamma"),
                live("delta", D): osv(D, "delta"),
            }
        )
        h.service.poll()
        assert {(d.reason, d.pointer) for d in h.dead()} == {
            ("malformed-json", f"{bad}@{head}"),
            ("schema", f"osv/malicious/pypi/odd/MAL-2026-201.json@{head}"),
        }
        dead = next(d for d in h.dead() if d.reason == "malformed-json")
        assert dead.event_id == event_id("openssf", f"{bad}@{head}", "malformed-json") and dead.upstream_time
        assert h.changes() == {("added", C), ("added", D)}
        assert h.sample("qwatch_deadletters_total", {"source": "openssf", "reason": "malformed-json"}) == 1
        # A live report broken by an edit is dead-lettered; it is not reported as deleted.
        h.sink.events.clear()
        broken = repo.commit({live("gamma", C): osv(C, "gamma")[:-30]})
        h.service.poll()
        assert [(d.reason, d.pointer) for d in h.dead()] == [("malformed-json", f"{live('gamma', C)}@{broken}")]
        assert h.reports() == []
        repo.commit({live("gamma", C): osv(C, "gamma", versions=("1.0.0", "1.0.1"))})
        h.service.poll()
        assert h.changes() == {("modified", C)}
        # Fixing the file later makes it an ordinary new report.
        h.sink.events.clear()
        repo.commit({bad: osv("MAL-2026-200", "EffetMer.darkgpt", ecosystem="VSCode")})
        h.service.poll()
        assert h.changes() == {("added", "MAL-2026-200")} and h.dead() == []
        assert h.reports()[0].package == "effetmer.darkgpt"


def test_cursor_stays_when_the_sink_fails_and_the_retry_emits_the_same_ids(repo: WorkRepo, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
    before = FileCursorStore(state).load(COMPONENT)
    repo.commit({live("gamma", C): osv(C, "gamma")})
    sink = FailingSink()
    with ingestor(repo.path, state, sink=sink) as h:
        with pytest.raises(PublishError):
            h.service.poll()
        assert FileCursorStore(state).load(COMPONENT) == before
        assert h.index.commit_sha == before.value  # type: ignore[union-attr]
        assert h.sample("qwatch_ingest_polls_total", {"source": "openssf", "outcome": "error"}) == 1
        assert h.sample("qwatch_openssf_reports_total", {"change": "added"}) == 0
        failed_ids = {e.event_id for e in h.reports()}
        sink.failing = False
        sink.events.clear()
        h.service.poll()
        assert {e.event_id for e in h.reports()} == failed_ids and h.changes() == {("added", C)}
        assert FileCursorStore(state).load(COMPONENT).value == repo.repo.head.commit.hexsha  # type: ignore[union-attr]


class _BrokenCursorStore(FileCursorStore):
    def save(self, cursor: Cursor) -> None:
        raise OSError(28, "No space left on device")


def test_cursor_save_failure_rolls_back_the_index(repo: WorkRepo, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
    repo.commit({live("gamma", C): osv(C, "gamma")})
    with ingestor(repo.path, state, cursors=_BrokenCursorStore(state)) as h:
        indexed = h.index.commit_sha
        with pytest.raises(OSError, match="No space"):
            h.service.poll()
        assert h.index.commit_sha == indexed
    with ingestor(repo.path, state) as h:
        h.service.poll()
        assert h.changes() == {("added", C)}


def test_service_loop_backs_off_and_retries_until_acknowledged(repo: WorkRepo, tmp_path: Path) -> None:
    stop = StopFlag()

    class FlakySink(MemorySink):
        """Fails the first flush, then acknowledges and asks the loop to stop."""

        calls = 0

        def flush(self, timeout: float | None = None) -> None:
            self.calls += 1
            if self.calls == 1:
                raise PublishError("not acknowledged")
            stop.set()

    sink = FlakySink()
    with ingestor(repo.path, tmp_path / "state", sink=sink, stop=stop) as h:
        runner = threading.Thread(target=h.service.run)
        runner.start()
        runner.join(20)
        assert not runner.is_alive()
        assert sink.calls == 2 and h.changes() == {("existing", A), ("existing", B)}
        assert h.sample("qwatch_ingest_polls_total", {"source": "openssf", "outcome": "error"}) == 1
        assert h.sample("qwatch_ingest_polls_total", {"source": "openssf", "outcome": "ok"}) == 1


def test_once_raises_so_the_cli_can_exit_non_zero(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state", sink=FailingSink()) as h:
        with pytest.raises(PublishError):
            h.service.run(once=True)
        assert h.cursors.load(COMPONENT) is None


def test_a_url_is_mirrored_bare_and_fetched_each_poll_even_after_a_force_push(tmp_path: Path) -> None:
    upstream = WorkRepo(tmp_path / "upstream")
    first = upstream.commit({live("alpha", A): osv(A, "alpha")})
    with ingestor(upstream.path.as_uri(), tmp_path / "state") as h:
        h.service.poll()
        assert h.take() == {("existing", A)} and h.source.remote and h.source.repo.bare
        assert not (upstream.path / ".git" / "qwatch").exists()  # nothing written upstream
        upstream.commit({live("gamma", C): osv(C, "gamma")})
        h.service.poll()
        assert h.take() == {("added", C)}
        upstream.reset_hard(first)
        upstream.commit({live("delta", D): osv(D, "delta")})
        assert [s.mode for s in h.service.poll().steps] == ["force-push"]
        assert h.take() == {("deleted", C), ("added", D)}


def test_a_failing_fetch_is_retried_counted_and_leaves_the_cursor(tmp_path: Path) -> None:
    upstream = WorkRepo(tmp_path / "upstream")
    upstream.commit({live("alpha", A): osv(A, "alpha")})
    with ingestor(upstream.path.as_uri(), tmp_path / "state") as h:
        h.service.poll()
        before = h.cursors.load(COMPONENT)
        shutil.rmtree(upstream.path)
        with pytest.raises(GitSourceError, match="fetch failed after 2 attempts"):
            h.service.poll()
        assert h.sample("qwatch_git_fetch_failures_total") == 2
        assert h.sample("qwatch_ingest_retries_total", {"source": "openssf", "reason": "git-fetch"}) == 1
        assert h.cursors.load(COMPONENT) == before


def test_abandoned_git_reads_do_not_poison_the_next_read(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state") as h:
        head = h.source.head()
        listing = list(h.source.list_tree(head))
        blobs = [blob for _, blob in listing]
        reader = h.source.read_blobs(blobs, 1 << 20)
        next(reader)
        reader.close()  # answers for the second blob are still in the pipe
        again = list(h.source.read_blobs(blobs[1:], 1 << 20))
        assert [d[1] for d in again if d] == [(repo.path / p).read_bytes() for p, _ in listing[1:]]
        partial = h.source.list_tree(head)
        next(partial)
        partial.close()
        assert list(h.source.read_blobs(["0" * 40], 1024)) == [None]
        big = list(h.source.read_blobs([blobs[0]], 10))
        assert big[0] is not None and big[0][0] > 10 and len(big[0][1]) == 11


def test_snapshot_progress_is_shown_when_asked(repo: WorkRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "PROGRESS_MIN_FILES", 2)
    stream = io.StringIO()
    with ingestor(repo.path, tmp_path / "state", progress=Progress(True, stream)) as h:
        h.service.poll()
    assert "\rsnapshot: 2/2 files, " in stream.getvalue() and stream.getvalue().endswith("rec/s \n")
    quiet = io.StringIO()
    with ingestor(repo.path, tmp_path / "quiet", progress=Progress(False, quiet)) as h:
        h.service.poll()
    assert quiet.getvalue() == ""

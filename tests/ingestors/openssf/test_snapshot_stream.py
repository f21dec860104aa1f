"""``GitSource.stream_blobs``, the snapshot's one-process ``cat-file --batch`` stream, on the real OpenSSF sample.

The reference is ``read_blobs`` (the per-batch reader the diff path keeps using) and ``git cat-file -p`` itself:
same content, same order, the same answer for a missing object and for an oversized one; and a stream abandoned
half-way (a stop, a failed parse) kills its git process instead of leaving it blocked on a full pipe.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from qwatch.metrics import Metrics
from qwatch.openssf.gitsource import GitSource, GitSourceError


@pytest.fixture
def source(ossf_sample_bare: Path, tmp_path: Path) -> Iterator[GitSource]:
    src = GitSource.open(str(ossf_sample_bare), "main", tmp_path / "work", Metrics(CollectorRegistry()))
    yield src
    src.close()


def _head(src: GitSource) -> str:
    return src.resolve("HEAD")


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_stream_gives_what_git_and_read_blobs_give_in_order(source: GitSource, batch: int) -> None:
    listing = list(source.list_tree(_head(source)))
    assert len(listing) > 50
    entries = [*listing, ("osv/malicious/pypi/x/MAL-missing.json", "0" * 40)]
    streamed = [row for rows in source.stream_blobs(entries, 1 << 20, batch) for row in rows]
    assert [(p, b) for p, b, _ in streamed] == entries
    expected = list(source.read_blobs([b for _, b in entries], 1 << 20))
    assert [d for _, _, d in streamed] == expected
    assert streamed[-1][2] is None
    path, blob, data = random.Random(batch).choice(streamed[:-1])
    assert data is not None
    show = subprocess.run(
        ["git", "--git-dir", str(source.repo.git_dir), "cat-file", "-p", blob], check=True, capture_output=True
    )
    assert data == (len(show.stdout), show.stdout), path


def test_oversized_blobs_are_cut_as_read_blobs_cuts_them(source: GitSource) -> None:
    entries = list(source.list_tree(_head(source)))[:40]
    streamed = [d for rows in source.stream_blobs(entries, 64, 16) for _, _, d in rows]
    assert streamed == list(source.read_blobs([b for _, b in entries], 64))
    assert all(d is not None and (d[0] <= 64 or len(d[1]) == 65) for d in streamed)


def test_an_abandoned_stream_kills_its_git_and_the_next_one_works(source: GitSource) -> None:
    entries = list(source.list_tree(_head(source)))
    stream = source.stream_blobs(iter(entries), 1 << 20, 3)
    first = next(stream)
    assert len(first) == 3
    stream.close()  # a stop mid-snapshot: git must not be left blocked writing into a pipe nobody reads
    again = [row for rows in source.stream_blobs(entries, 1 << 20, 50) for row in rows]
    assert len(again) == len(entries)


def test_a_bad_sha_is_refused_before_git_sees_it(source: GitSource) -> None:
    with pytest.raises(GitSourceError, match="not a commit or blob sha"):
        list(source.stream_blobs([("osv/malicious/pypi/x/a.json", "--batch-all-objects")], 1024))

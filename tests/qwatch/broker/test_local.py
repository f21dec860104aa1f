"""``qwatch.broker.local`` without a broker: the test port allocator (``free_port``: blocks below the ephemeral
range, disjoint per xdist worker, each port handed out once across every process of a worker, the OS's choice outside
pytest), and which pid ``stop``/``kill`` may signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qwatch.broker import LocalBroker
from qwatch.broker.local import BrokerError, _port_from_block, ephemeral_range, free_port, port_block_under_pytest

EPHEMERAL = (32768, 60999)


def test_outside_pytest_there_is_no_block() -> None:
    assert port_block_under_pytest({}, EPHEMERAL) is None
    assert port_block_under_pytest({"PATH": "/bin"}, EPHEMERAL) is None


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 40])
@pytest.mark.parametrize("ephemeral", [EPHEMERAL, (1024, 40000), (10000, 65535), (49152, 65535)])
def test_blocks_are_disjoint_per_worker_and_outside_the_ephemeral_range(
    workers: int, ephemeral: tuple[int, int]
) -> None:
    envs = [{"PYTEST_VERSION": "9", "PYTEST_XDIST_WORKER_COUNT": str(workers)}] + [
        {"PYTEST_VERSION": "9", "PYTEST_XDIST_WORKER": f"gw{n}", "PYTEST_XDIST_WORKER_COUNT": str(workers)}
        for n in range(workers)
    ]
    blocks = [port_block_under_pytest(env, ephemeral) for env in envs]
    low, high = ephemeral
    if ephemeral == (10000, 65535):  # no room at all: the OS's choice, as outside pytest
        assert blocks == [None] * len(envs)
        return
    got = [b for b in blocks if b is not None]
    assert len(got) == len(envs), blocks
    ports = [set(range(first, end)) for first, end in got]
    assert all(len(p) >= 64 for p in ports)
    assert sum(len(p) for p in ports) == len(set().union(*ports)), "blocks overlap"
    assert all(end <= low or first > high for first, end in got), (got, ephemeral)
    assert all(1024 < first and end <= 65536 for first, end in got)


def test_a_serial_session_and_an_xdist_session_side_by_side_do_not_share_ports() -> None:
    serial = port_block_under_pytest({"PYTEST_VERSION": "9"}, EPHEMERAL)
    workers = [
        port_block_under_pytest({"PYTEST_XDIST_WORKER": f"gw{n}", "PYTEST_XDIST_WORKER_COUNT": "4"}, EPHEMERAL)
        for n in range(4)
    ]
    assert serial is not None and all(w is not None and (w[0] >= serial[1]) for w in workers), (serial, workers)


def test_the_kernels_ephemeral_range_is_read(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ephemeral_range(str(f)) == (40000, 50000)
    assert ephemeral_range(str(tmp_path / "missing")) == EPHEMERAL


def test_this_session_hands_out_ports_from_its_own_block() -> None:
    block = port_block_under_pytest(os.environ)
    assert block is not None, "pytest sets PYTEST_VERSION; free_port must use a block under pytest"
    ports = [free_port() for _ in range(5)]
    assert len(set(ports)) == 5 and all(block[0] <= p < block[1] for p in ports), (ports, block)
    low, _ = ephemeral_range()
    assert all(p < low for p in ports) or block[0] > ephemeral_range()[1]


_CHILD = """
import sys
from qwatch.broker.local import free_port
print(" ".join(str(free_port()) for _ in range(int(sys.argv[1]))))
"""


def test_processes_of_one_worker_never_get_the_same_port_and_workers_never_share() -> None:
    """Four processes per worker ask at once (a test and the components it starts): every port is unique."""
    procs = []
    for worker in ("gw5", "gw6"):
        env = {**os.environ, "PYTEST_XDIST_WORKER": worker, "PYTEST_XDIST_WORKER_COUNT": "7"}
        procs += [
            (worker, subprocess.Popen([sys.executable, "-c", _CHILD, "40"], env=env, stdout=subprocess.PIPE, text=True))
            for _ in range(4)
        ]
    by_worker: dict[str, list[int]] = {"gw5": [], "gw6": []}
    for worker, proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        by_worker[worker] += [int(x) for x in out.split()]
    for worker, ports in by_worker.items():
        env = {"PYTEST_VERSION": "9", "PYTEST_XDIST_WORKER": worker, "PYTEST_XDIST_WORKER_COUNT": "7"}
        first, end = port_block_under_pytest(env) or (0, 0)
        assert len(ports) == 160 and len(set(ports)) == 160, "a port was handed out twice"
        assert all(first <= p < end for p in ports)
    assert not set(by_worker["gw5"]) & set(by_worker["gw6"])


def test_a_port_someone_holds_is_skipped_and_an_exhausted_block_says_so() -> None:
    first, end = 64000, 64004  # a private block above the ephemeral range, fresh for this test
    Path(tempfile.gettempdir(), f"qwatch-test-ports-{os.getuid()}-{first}-{end}").unlink(missing_ok=True)
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        got = [_port_from_block(first, end) for _ in range(3)]
        assert sorted(got) == [first + 1, first + 2, first + 3]
        with pytest.raises(BrokerError, match="no free port left"):
            _port_from_block(first, end)


def _pretend_broker(workdir: Path, config: Path) -> subprocess.Popen[bytes]:
    """A process whose command line is a broker's (``... kafka.Kafka CONFIG``), in its own session like one."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", str(config)]
    process = subprocess.Popen(argv, cwd=workdir, start_new_session=True)
    # Popen returns once exec has begun, but /proc/<pid>/cmdline can still read empty for a moment after (seen: half
    # of 300 tries here); a real broker is long past that when anyone stops it, so wait for it like one.
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while b"kafka.Kafka" not in cmdline.read_bytes():
        assert time.monotonic() < deadline, "the pretend broker did not start"
        time.sleep(0.01)
    return process


def test_stop_signals_the_pid_in_the_state_file_only_while_it_is_this_workdirs_broker(tmp_path: Path) -> None:
    """``qwatch broker stop`` from another process: the recorded pid is signalled only if it still runs this
    workdir's broker; a recycled pid (here: a process of another workdir, then a dead one) is left alone."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for d in (ours, theirs):
        d.mkdir()
        (d / "server.properties").write_text("")
    other = _pretend_broker(theirs, theirs / "server.properties")
    mine = _pretend_broker(ours, Path("server.properties"))  # relative to its cwd, as a caller may have started it
    try:
        broker = LocalBroker.attach(ours)
        broker.state_path.write_text(json.dumps({"pid": other.pid, "port": 1, "controller_port": 2}))
        assert broker.status() is None
        LocalBroker.attach(ours).stop(timeout=5)
        assert other.poll() is None, "a pid that is not this workdir's broker was signalled"
        assert not broker.state_path.exists(), "the stale record is dropped"

        broker.state_path.write_text(json.dumps({"pid": mine.pid, "port": 1, "controller_port": 2}))
        LocalBroker.attach(ours).stop(timeout=5)
        assert mine.wait(10) == -signal.SIGTERM, "this workdir's broker gets the clean-shutdown signal"

        # kill() forgets the pid: a later stop() (a fixture's teardown) finds nothing to signal.
        broker.state_path.write_text(json.dumps({"pid": other.pid, "port": 1, "controller_port": 2}))
        handle = LocalBroker.attach(ours)
        handle.kill()
        assert other.poll() is None and not handle.state_path.exists()
    finally:
        for p in (other, mine):
            if p.poll() is None:
                p.kill()
                p.wait(5)

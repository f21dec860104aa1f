"""Run a real Apache Kafka broker from Maven Central jars, with no Docker and no download at run time but Maven's.

Steps: resolve the jars into a cache outside git (once), format KRaft storage (once per data dir), start a
combined broker+controller on 127.0.0.1 with free ports, and wait until the admin API answers. A broker that does
not come up raises BrokerError with the tail of its log: callers fail, they never skip.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from qwatch.errors import UsageError

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release the pom pins; kafka-python 3.0.12 was checked against it."""

_JVM_OPTS = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]


class BrokerError(UsageError, RuntimeError):
    """The broker could not be prepared, started or stopped; the message says what to do next."""


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    """``QWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/quarantine-watch``, else ``~/.cache/quarantine-watch``."""
    env = dict(os.environ) if env is None else env
    if env.get("QWATCH_CACHE_DIR"):
        return Path(env["QWATCH_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "quarantine-watch"


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, for a component that must be told its port before it binds it.

    Outside a test run this is the OS's choice (bind port 0, close, hand the number out): good enough for one
    ``qwatch up`` on a workstation. Under pytest that race loses: another xdist worker, a process a test started, or
    any outgoing connection (the kernel takes its local port from the same ephemeral range) can take the number
    before the component binds it, and the component fails with EADDRINUSE. So under pytest every port comes from
    a block of its own (``port_block_under_pytest``): below the ephemeral range, disjoint per xdist worker, each
    port checked by a real bind and handed out once (a counter shared through a locked file by every process of
    the worker).
    Components that can bind port 0 themselves and report the port should do that instead.
    """
    block = port_block_under_pytest(os.environ)
    if block is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port
    return _port_from_block(*block)


_TEST_PORTS_FLOOR = 20000
"""Test port blocks start here: above the ports services on a CI machine commonly listen on (databases, 8080, 9090,
9092 ...), below Linux's default ephemeral range (32768-60999)."""
_TEST_BLOCK = 1000
_TEST_BLOCK_MIN = 64
_handed_out: set[int] = set()
"""Ports this process handed out: never twice, even after the block's shared counter wraps."""


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's range for the local port of outgoing connections and port-0 binds (inclusive)."""
    try:
        low, high = (int(x) for x in Path(path).read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def port_block_under_pytest(env: Mapping[str, str], ephemeral: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """``(first, end)`` of this process's test port block, or None when not under pytest.

    Under pytest (``PYTEST_VERSION``, set by pytest >= 8.2 for the session and inherited by every process a test
    starts) the serial run owns block 0 and xdist worker ``gwN`` (``PYTEST_XDIST_WORKER``, also inherited) block
    N+1, 1000 ports each (smaller only if ``PYTEST_XDIST_WORKER_COUNT`` + 1 blocks would not fit), in the largest gap
    outside the ephemeral range.
    """
    worker = env.get("PYTEST_XDIST_WORKER", "")
    if not (worker or env.get("PYTEST_VERSION")):
        return None
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    try:
        blocks = max(int(env.get("PYTEST_XDIST_WORKER_COUNT", "1")), index) + 1
    except ValueError:
        blocks = index + 1
    low, high = ephemeral or ephemeral_range()
    gaps = [(_TEST_PORTS_FLOOR, low), (max(high + 1, _TEST_PORTS_FLOOR), 65536)]
    start, end = max(gaps, key=lambda g: g[1] - g[0])
    # A fixed size while it fits, so a serial session and an xdist session running side by side stay disjoint too.
    size = min(_TEST_BLOCK, (end - start) // blocks)
    if size < _TEST_BLOCK_MIN:
        return None  # no room outside the ephemeral range: fall back to the OS's choice
    first = start + index * size
    return first, first + size


def _port_from_block(first: int, end: int) -> int:
    """The next port of ``[first, end)`` that binds, after the one handed out last by any process of this block."""
    size = end - first
    state = Path(tempfile.gettempdir()) / f"qwatch-test-ports-{os.getuid()}-{first}-{end}"
    with open(state, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        fh.seek(0)
        try:
            cursor = int(fh.read().strip() or 0)
        except ValueError:
            cursor = 0
        for step in range(size):
            port = first + (cursor + step) % size
            if port in _handed_out or not _binds(port):
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(str((cursor + step + 1) % size))
            fh.flush()
            _handed_out.add(port)
            return port
    raise BrokerError(f"no free port left in the test block {first}-{end - 1}: are old test processes still running?")


def _binds(port: int) -> bool:
    # Without SO_REUSEADDR: a port in TIME_WAIT counts as taken, so it suits a component that does not set it either.
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class LocalBroker:
    """One single-node KRaft broker living in ``workdir`` (data, config, log, pid file)."""

    workdir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    port: int = 0
    controller_port: int = 0
    extra_properties: dict[str, str] = field(default_factory=dict)
    scram_users: dict[str, str] = field(default_factory=dict)
    """SCRAM-SHA-512 users (name → password). When set, the client listener requires SASL/SCRAM authentication."""
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0
    _log_start: int = 0

    @property
    def lib_dir(self) -> Path:
        """Where the resolved jars live, per Kafka version."""
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"

    @property
    def log_path(self) -> Path:
        """The broker's own stdout/stderr."""
        return self.workdir / "broker.log"

    @property
    def state_path(self) -> Path:
        """pid and address, so ``qwatch broker stop|status`` find a broker started by another process."""
        return self.workdir / "broker.json"

    @property
    def bootstrap(self) -> str:
        """host:port of the client listener."""
        return f"127.0.0.1:{self.port}"

    def ensure_jars(self) -> Path:
        """Resolve Kafka's runtime jars with Maven into the cache, once; a marker file makes it atomic."""
        marker = self.lib_dir / ".complete"
        if marker.exists():
            return self.lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven is needed once to fetch Kafka's jars: install it (apt-get install maven) and retry"
            )
        work = self.cache_dir / f"kafka-{KAFKA_VERSION}"
        work.mkdir(parents=True, exist_ok=True)
        pom = work / "pom.xml"
        pom.write_bytes(resources.files("qwatch.broker").joinpath("pom.xml").read_bytes())
        tmp_lib = work / "lib.partial"
        shutil.rmtree(tmp_lib, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp_lib}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            raise BrokerError(
                f"Maven could not resolve Kafka {KAFKA_VERSION} jars (exit {result.returncode}); check access to "
                f"Maven Central and retry:\n{(result.stdout + result.stderr)[-3000:]}"
            )
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        tmp_lib.rename(self.lib_dir)
        marker.write_text(KAFKA_VERSION)
        return self.lib_dir

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("a Java 17+ runtime is needed: install it (apt-get install openjdk-17-jre-headless)")
        return java

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        proto = "SASL_PLAINTEXT" if self.scram_users else "PLAINTEXT"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"{'PLAINTEXT' if proto == 'PLAINTEXT' else 'CLIENT'}://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(data),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.partitions": "1",
            "log.cleaner.backoff.ms": "1000",
            # A killed single node must come back fast in outage tests: shorter broker session and Raft timers.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "controller.quorum.election.timeout.ms": "1000",
            "controller.quorum.fetch.timeout.ms": "2000",
        }
        if proto == "PLAINTEXT":
            props["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{self.port}"
            props["listener.security.protocol.map"] = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            props["inter.broker.listener.name"] = "PLAINTEXT"
        else:
            # A separate authenticated client listener; the broker talks to itself over it too.
            props["advertised.listeners"] = f"CLIENT://127.0.0.1:{self.port}"
            props["listener.security.protocol.map"] = f"CLIENT:{proto},CONTROLLER:PLAINTEXT"
            props["inter.broker.listener.name"] = "CLIENT"
            props["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
            props["sasl.mechanism.inter.broker.protocol"] = "SCRAM-SHA-512"
            user, password = next(iter(self.scram_users.items()))
            props["listener.name.client.scram-sha-512.sasl.jaas.config"] = (
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" '
                f'password="{password}";'
            )
        props.update(self.extra_properties)
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")

    def _log4j(self) -> str:
        target = self.workdir / "log4j2.properties"
        target.write_bytes(resources.files("qwatch.broker").joinpath("log4j2.properties").read_bytes())
        return f"-Dlog4j2.configurationFile={target}"

    def _format(self, config: Path) -> None:
        if (self.workdir / "data" / "meta.properties").exists():
            return
        cmd = [
            self._java(),
            "-cp",
            self._classpath(),
            self._log4j(),
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={_kafka_cluster_id()}",
            "-c",
            str(config),
            "--ignore-formatted",
        ]
        extra: list[str] = []
        for user, password in self.scram_users.items():
            # SCRAM credentials are bootstrapped into the KRaft metadata log at format time.
            extra += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        result = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{(result.stdout + result.stderr)[-3000:]}")

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker and wait until the admin API answers; return the bootstrap address."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ensure_jars()
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        config = self._write_config()
        self._format(config)
        t0 = time.monotonic()
        env = dict(os.environ)
        jvm = list(_JVM_OPTS)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self._log_start = log.tell()
        self.process = subprocess.Popen(
            [self._java(), *jvm, self._log4j(), "-cp", self._classpath(), "kafka.Kafka", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.state_path.write_text(
            json.dumps(
                {
                    "pid": self.process.pid,
                    "bootstrap": self.bootstrap,
                    "version": KAFKA_VERSION,
                    "port": self.port,
                    "controller_port": self.controller_port,
                }
            )
        )
        self._wait_ready(t0, timeout)
        self.started_in = time.monotonic() - t0
        return self.bootstrap

    def _wait_ready(self, t0: float, timeout: float) -> None:
        while time.monotonic() - t0 < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {self.process.returncode}; log tail:\n{_tail(self.log_path)}"
                )
            if _log_says_started(self.log_path, self._log_start) and _port_open(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not become ready within {timeout:.0f}s; log tail:\n{_tail(self.log_path)}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM for a clean shutdown (flushes logs, releases the controller), SIGKILL if it hangs."""
        pid = self._own_pid()
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid, self.process):
                time.sleep(0.1)
            if _alive(pid, self.process):
                self._kill_group(pid)
        self._forget()

    def kill(self) -> None:
        """SIGKILL, for outage tests: no clean shutdown."""
        pid = self._own_pid()
        if pid is not None:
            self._kill_group(pid)
        self._forget()

    def _kill_group(self, pid: int) -> None:
        _signal_group(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def _forget(self) -> None:
        """The broker is gone: a later stop() must not find its pid in the state file and signal whoever has it by
        then."""
        self.process = None
        self.state_path.unlink(missing_ok=True)

    def _own_pid(self) -> int | None:
        """The broker's pid (= its process group: it runs in its own session) if it still runs, else None.

        Never a pid that may have been recycled: pid_max is often 32768 and a JVM uses one per thread, so a number
        freed minutes ago can belong to another process group by now (another test's broker, say). Our own child
        counts only while not reaped; a pid from the state file only while its command line is this workdir's
        broker.
        """
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        pid = self._pid_from_state()
        if pid is None:
            return None
        proc = Path(f"/proc/{pid}")
        if not proc.parent.is_dir():  # no procfs (not Linux): the pid is all there is to go on
            return pid if _alive(pid, None) else None
        try:
            args = proc.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = proc.joinpath("cwd").readlink()
        except OSError:
            return None
        ours = self.workdir / "server.properties"
        for arg in args if "kafka.Kafka" in args else ():
            try:
                if arg.endswith("server.properties") and os.path.samefile(cwd / arg, ours):
                    return pid
            except OSError:
                continue
        return None

    def _pid_from_state(self) -> int | None:
        try:
            pid: int = json.loads(self.state_path.read_text())["pid"]
            return pid
        except (OSError, ValueError, KeyError):
            return None

    def status(self) -> dict[str, object] | None:
        """The recorded state if the broker process is alive, else None."""
        try:
            state: dict[str, object] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        if self._own_pid() is not None and _port_open(int(str(state.get("port", 0)))):
            return state
        return None

    @classmethod
    def attach(cls, workdir: Path, cache_dir: Path | None = None) -> LocalBroker:
        """A handle on a broker started earlier in ``workdir`` (for stop/status from another process)."""
        broker = cls(workdir, cache_dir or default_cache_dir())
        try:
            state = json.loads(broker.state_path.read_text())
            broker.port = int(state["port"])
            broker.controller_port = int(state["controller_port"])
        except (OSError, ValueError, KeyError):
            pass
        return broker


def _kafka_cluster_id() -> str:
    # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding (22 characters).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _signal_group(pid: int, sig: int) -> None:
    """Signal the broker's process group; one that is already gone is what was wanted."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: only its parent's wait() is missing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_says_started(path: Path, offset: int) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(offset, os.path.getsize(path) - 65536))
            return b"Kafka Server started" in fh.read()
    except OSError:
        return False

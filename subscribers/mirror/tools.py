"""The real mirror tools (bandersnatch 8, devpi-server 6) in their own venv, and helpers to run them locally.

Why a separate venv under ``~/.cache/quarantine-watch/tools/mirror-venv``: bandersnatch 8 requires Python >= 3.12
(its code uses PEP 695 generics) while quarantine-watch supports 3.11, and devpi-server brings Pyramid and its own
pins; neither belongs in the project's venv. ``python -m subscribers.mirror.tools install`` (run by
``scripts/bootstrap``) creates it with the first Python >= 3.12 it finds (``QWATCH_MIRROR_TOOLS_PYTHON``,
``python3.13``/``python3.12`` on PATH, then pyenv's versions) and installs the pinned tools from PyPI; it is
idempotent (a stamp names the pins).
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from qwatch.broker import default_cache_dir
from qwatch.broker.local import free_port

PINS = ("bandersnatch==8.2.0", "devpi-server==6.20.3")
PLUGIN = Path(__file__).with_name("devpi_plugin.py")


class ToolMissing(RuntimeError):
    """A tool is not installed; the message says how to install it."""


def cache_dir() -> Path:
    """The project's cache (``QWATCH_CACHE_DIR``; the tools sit beside helm and promtool)."""
    return default_cache_dir()


def venv_dir() -> Path:
    """Where the tools live."""
    return cache_dir() / "tools" / "mirror-venv"


def _stamp() -> Path:
    return venv_dir() / ("qwatch-" + "_".join(PINS).replace("==", "-") + ".stamp")


def find_python() -> str:
    """A Python >= 3.12 for the tools venv."""
    candidates = [os.environ.get("QWATCH_MIRROR_TOOLS_PYTHON") or ""]
    candidates += [shutil.which(n) or "" for n in ("python3.13", "python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3")), reverse=True)
    for c in candidates:
        probe = [c, "-c", "import sys; sys.exit(sys.version_info < (3, 12))"]
        if c and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
            return c
    raise ToolMissing(
        "bandersnatch 8 needs Python >= 3.12 and none was found: install python3.12 (apt-get, pyenv) or set "
        "QWATCH_MIRROR_TOOLS_PYTHON to one, then run: .venv/bin/python -m subscribers.mirror.tools install"
    )


def installed() -> bool:
    """True when the stamp of these pins and the tools are there."""
    return _stamp().exists() and all(tool(n, check=False).exists() for n in ("bandersnatch", "devpi-server"))


def install() -> Path:
    """Create the venv and install the pinned tools unless the stamp says they are there."""
    if installed():
        return venv_dir()
    python = find_python()
    print(f"bootstrap: installing {' '.join(PINS)} into {venv_dir()} (Python {python})", file=sys.stderr)
    target = venv_dir()
    if target.exists():
        shutil.rmtree(target)
    subprocess.run([python, "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PINS], check=True)
    _stamp().touch()
    return target


def tool(name: str, *, check: bool = True) -> Path:
    """Path of a tool's executable; ToolMissing (with the install command) if absent."""
    path = venv_dir() / "bin" / name
    if check and not path.exists():
        raise ToolMissing(
            f"{name} is not installed in {venv_dir()}: run ./scripts/bootstrap "
            "(or .venv/bin/python -m subscribers.mirror.tools install)"
        )
    return path


def bandersnatch_config(directory: Path, master: str, workers: int = 2) -> str:
    """A bandersnatch 8 config that mirrors ``master`` (a PyPI base URL) into ``directory``, every page format."""
    return (
        "[mirror]\n"
        f"directory = {directory}\n"
        f"master = {master}\n"
        "allow-non-https = true\n"
        "json = true\n"
        "release-files = true\n"
        "hash-index = false\n"
        "simple-format = ALL\n"
        "stop-on-error = true\n"
        "storage-backend = filesystem\n"
        f"workers = {workers}\n"
        "timeout = 10\n"
        "global-timeout = 120\n"
        "verifiers = 2\n"
    )


def run_bandersnatch(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``bandersnatch -c CONFIG mirror`` (or other args); raises with its output when it fails."""
    cmd = [str(tool("bandersnatch")), "-c", str(config), *(args or ("mirror",))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


@contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """``python -m http.server`` on 127.0.0.1 serving ``directory``; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", 20, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class DevpiServer:
    """A devpi-server on 127.0.0.1 with quarantine-watch's plugin, in ``serverdir``."""

    def __init__(self, serverdir: Path) -> None:
        self.serverdir = serverdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = serverdir.with_suffix(".log")

    def launch(self) -> None:
        """devpi-init (root with an empty password, no root/pypi), then start serving without waiting: devpi's
        start-up (Pyramid scanning its views) takes seconds, which callers overlap with their own set-up."""
        subprocess.run(
            [str(tool("devpi-init")), "--serverdir", str(self.serverdir), "--no-root-pypi"],
            check=True,
            capture_output=True,
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(tool("python")),
                    str(PLUGIN),
                    "--serverdir",
                    str(self.serverdir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float = 180) -> str:
        """Block until devpi answers; returns the base URL."""
        _wait_http(f"{self.url}/+api", timeout, self.proc)
        return self.url

    def start(self, timeout: float = 180) -> str:
        """``launch`` and ``wait``."""
        self.launch()
        return self.wait(timeout)

    def token_headers(self, user: str = "root", password: str = "") -> dict[str, str]:
        """``X-Devpi-Auth`` for ``user``."""
        r = httpx.post(
            f"{self.url}/+login", json={"user": user, "password": password}, headers={"Accept": "application/json"}
        )
        r.raise_for_status()
        token = r.json()["result"]["password"]
        return {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode(), "Accept": "application/json"}

    def create_mirror(self, index: str, mirror_url: str, cache_expiry: int = 1) -> None:
        """A mirror index of ``mirror_url`` (a /simple/ URL)."""
        r = httpx.put(
            f"{self.url}/{index}",
            json={
                "type": "mirror",
                "mirror_url": mirror_url,
                "mirror_cache_expiry": cache_expiry,
                # devpi answers a 304 on the root listing with only the projects it already cached (an unchanging
                # upstream, like the local PyPI, then loses every other name); fetch project pages directly instead
                "mirror_no_project_list": True,
            },
            headers=self.token_headers(),
        )
        if r.status_code not in (200, 201):
            raise RuntimeError(f"devpi: creating {index} failed: {r.status_code} {r.text[:300]}")

    def stop(self) -> None:
        """Terminate the server."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


def pip_download(index_url: str, project: str, dest: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``pip download --no-deps --index-url INDEX PROJECT`` in isolated mode (no user config, no find-links)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "--disable-pip-version-check",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "-d",
            str(dest),
            "--index-url",
            index_url,
            project,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
    )


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["install"]:
        print("usage: python -m subscribers.mirror.tools install", file=sys.stderr)
        sys.exit(3)
    try:
        install()
    except (ToolMissing, subprocess.CalledProcessError) as exc:
        print(f"mirror tools: {exc}", file=sys.stderr)
        sys.exit(2)

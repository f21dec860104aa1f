"""The gate against hostile index answers and lockfiles: it never exits 0 unless every package was understood and
clean.

A real HTTP server on 127.0.0.1 plays the index and answers each package from a script; the lockfile is a
generated requirements.txt (with includes, odd index spellings and lines the parser cannot classify). The oracle
is written from the generator's side, not the gate's: the generator knows which answers and lines it made
hostile, so "clean" means exactly "every answer was a well-formed active page serving the pinned version, every
line was a plain pin, every include existed". The gate must exit 0 exactly then, and must never exit 0 otherwise.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import main

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Answer:
    """One scripted answer for a project page; ``clean`` is the oracle's verdict on it."""

    status: int
    content_type: str
    body: bytes
    clean: bool
    trickle: bool = False


def page(project: str, version: str, /, **overrides: object) -> bytes:
    doc: dict[str, object] = {
        "meta": {"api-version": "1.4", "_last-serial": 7},
        "name": project,
        "project-status": {"status": "active"},
        "versions": [version],
        "files": [
            {
                "filename": f"{project.replace('-', '_')}-{version}-py3-none-any.whl",
                "url": f"https://files.example/{project}-{version}.whl",
                "hashes": {"sha256": "0" * 64},
                "upload-time": "2024-01-02T03:04:05Z",
                "yanked": False,
            }
        ],
    }
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def hostile_answers(name: str, version: str) -> dict[str, Answer]:
    """Every way an index answer can be not-quite-right, with whether a gate may pass it."""
    good = page(name, version)
    return {
        "good": Answer(200, SIMPLE_JSON, good, clean=True),
        "unknown-status": Answer(
            200, SIMPLE_JSON, page(name, version, **{"project-status": {"status": "suspended"}}), False
        ),
        "status-trailing-space": Answer(
            200, SIMPLE_JSON, page(name, version, **{"project-status": {"status": "quarantined "}}), False
        ),
        "status-not-a-string": Answer(
            200, SIMPLE_JSON, page(name, version, **{"project-status": {"status": 1}}), False
        ),
        "quarantined": Answer(
            200,
            SIMPLE_JSON,
            page(name, version, **{"project-status": {"status": "quarantined"}, "files": [], "versions": []}),
            False,
        ),
        "api-major-2": Answer(200, SIMPLE_JSON, page(name, version, meta={"api-version": "2.0"}), False),
        "other-project": Answer(200, SIMPLE_JSON, page(name, version, **{"name": "other-project-x"}), False),
        "listed-without-files": Answer(200, SIMPLE_JSON, page(name, version, files=[]), False),
        "other-version-only": Answer(
            200, SIMPLE_JSON, page(name, version + ".post9", versions=[version, version + ".post9"]), False
        ),
        "truncated": Answer(200, SIMPLE_JSON, good[: len(good) // 2], False),
        "not-json": Answer(200, SIMPLE_JSON, b"<html>hello</html>", False),
        "files-not-a-list": Answer(200, SIMPLE_JSON, page(name, version, files={"a": 1}), False),
        "html-type": Answer(200, "text/html", b"<html><body></body></html>", False),
        "plain-404": Answer(404, "text/plain", b"404 Not Found", False),
        "server-error": Answer(503, "text/plain", b"busy", False),
        "rate-limited": Answer(429, "text/plain", b"slow down", False),
        "trickle": Answer(200, SIMPLE_JSON, good, False, trickle=True),
    }


KINDS = sorted(hostile_answers("x", "1.0"))


class ScriptedIndex:
    """A real HTTP index on 127.0.0.1 answering ``/simple/<name>/`` from a dict the test sets."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                name = self.path.strip("/").split("/")[-1]
                answer = script.answers.get(name, Answer(404, "text/plain", b"404 Not Found", False))
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    if answer.trickle:
                        for i in range(len(answer.body)):
                            self.wfile.write(answer.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(0.5)
                    else:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"


@pytest.fixture(scope="module")
def index() -> Iterator[ScriptedIndex]:
    scripted = ScriptedIndex()
    scripted.thread.start()
    try:
        yield scripted
    finally:
        scripted.server.shutdown()


@pytest.fixture(autouse=True)
def _fast_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWATCH_HTTP_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("QWATCH_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("QWATCH_HTTP_BACKOFF_MAX", "0.02")
    monkeypatch.setenv("QWATCH_HTTP_TIMEOUT", "2")


def run_gate(lock: Path, index_url: str, *extra: str) -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["gate", "--lock", str(lock), "--index-url", index_url, "--format", "json", *extra])
    text = out.getvalue()
    return code, (json.loads(text) if text.strip() else {})


# --- the lockfile grammar -------------------------------------------------------------------------------------------

LINE_KINDS = (
    "pin",
    "include",
    "missing-include",
    "constraint-include",
    "pypi-spelling",
    "unparseable",
    "remote-include",
)
PYPI_SPELLINGS = (
    "https://pypi.org/simple",
    "https://PyPI.org/simple/",
    "https://pypi.org:443/simple/",
    "HTTPS://pypi.org/simple/",
)


@dataclass
class Lockfile:
    root: Path
    lines: list[str]
    packages: list[tuple[str, str]]
    understood: bool


def build_lockfile(tmp: Path, draws: list[tuple[str, int]], index_url: str) -> Lockfile:
    """requirements.txt plus its includes, from (line kind, seed) draws; every package goes through the index."""
    lines = [f"--index-url {index_url}"]
    packages: list[tuple[str, str]] = []
    understood = True
    for i, (kind, n) in enumerate(draws):
        name, version = f"pkg-{i}-{n % 7}", f"1.{n % 5}"
        if kind == "pin":
            lines.append(f"{name}=={version}")
            packages.append((name, version))
        elif kind == "include":
            (tmp / f"inc{i}.txt").write_text(f"{name}=={version}\n")
            lines.append(f"-r inc{i}.txt")
            packages.append((name, version))
        elif kind == "constraint-include":
            (tmp / f"con{i}.txt").write_text(f"{name}=={version}\n")
            lines.append(f"--constraint con{i}.txt")
        elif kind == "missing-include":
            lines.append(f"--requirement missing{i}.txt")
            understood = False
        elif kind == "remote-include":
            lines.append(f"-r https://example.invalid/req{i}.txt")
            understood = False
        elif kind == "pypi-spelling":
            lines.append(f"{name}=={version}")
            packages.append((name, version))
        elif kind == "unparseable":
            lines.append(f"{name} === ==={version} @@ ")
            understood = False
    lock = tmp / "requirements.txt"
    lock.write_text("\n".join(lines) + "\n")
    return Lockfile(tmp, lines, packages, understood)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    draws=st.lists(st.tuples(st.sampled_from(LINE_KINDS), st.integers(0, 50)), min_size=0, max_size=5),
    kinds=st.lists(st.sampled_from([k for k in KINDS if k != "trickle"]), min_size=5, max_size=5),
    spelling=st.sampled_from(PYPI_SPELLINGS),
)
def test_never_exit_0_unless_everything_was_understood_and_clean(
    index: ScriptedIndex,
    tmp_path_factory: pytest.TempPathFactory,
    draws: list[tuple[str, int]],
    kinds: list[str],
    spelling: str,
) -> None:
    tmp = tmp_path_factory.mktemp("lock")
    lock = build_lockfile(tmp, draws, index.url)
    clean = lock.understood and bool(lock.packages)
    for j, (name, version) in enumerate(lock.packages):
        kind = kinds[j % len(kinds)]
        answer = hostile_answers(name, version)[kind]
        index.answers[name] = answer
        clean = clean and answer.clean
    code, doc = run_gate(tmp / "requirements.txt", index.url, "--timeout", "20")
    if clean:
        assert code == 0, doc
    else:
        assert code in (1, 2), (code, doc)
    assert code != 3
    # A PyPI index spelled differently is still PyPI: never skipped as "another index".
    (tmp / "spelled.txt").write_text(f"--index-url {spelling}\nrequests==2.0\n")
    code, doc = run_gate(tmp / "spelled.txt", index.url, "--timeout", "20")
    assert code != 0
    assert not doc.get("skipped"), doc


@pytest.mark.parametrize("kind", KINDS)
def test_each_hostile_answer_alone(index: ScriptedIndex, tmp_path: Path, kind: str) -> None:
    name = f"solo-{kind}"
    index.answers[name] = hostile_answers(name, "1.0")[kind]
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"{name}==1.0\n")
    started = time.monotonic()
    code, doc = run_gate(lock, index.url, "--timeout", "5")
    took = time.monotonic() - started
    if kind == "good":
        assert code == 0, doc
    else:
        assert code in (1, 2), (kind, code, doc)
    if kind == "trickle":
        assert code == 2 and took < 15, (code, took)
        assert [u["reason"] for u in doc["unverified"]] == ["deadline"]


def test_nothing_checked_is_not_clean(index: ScriptedIndex, tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("# nothing pinned yet\n")
    code, doc = run_gate(lock, index.url)
    assert code == 2 and "allow-empty" in str(doc["message"])
    code, _ = run_gate(lock, index.url, "--allow-empty")
    assert code == 0


def test_include_pins_a_quarantined_package(index: ScriptedIndex, tmp_path: Path) -> None:
    """`-r base.txt` used to be dropped: "CLEAN … 0 checked" while base.txt pinned a quarantined package."""
    index.answers["evil-inc"] = hostile_answers("evil-inc", "0.1")["quarantined"]
    (tmp_path / "base.txt").write_text("evil-inc==0.1\n")
    lock = tmp_path / "requirements.txt"
    lock.write_text("-r base.txt\n")
    code, doc = run_gate(lock, index.url)
    assert code == 1
    assert [(f["package"], f["reason"]) for f in doc["findings"]] == [("evil-inc", "quarantined")]


def test_usage_errors_have_their_own_exit_code(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("a==1\n")
    assert main(["gate", "--lock", str(lock), "--format", "yaml"]) == 3
    assert main(["gate", "--lock", str(lock), "--no-such-flag"]) == 3
    assert main(["gate"]) == 3
    (tmp_path / "pyproject.toml").write_text('[[tool.qwatch.gate.ignore]]\npackage = "a"\nuntil = 2099-01-01\n')
    assert main(["gate", "--lock", str(lock)]) == 3  # a suppression without a reason

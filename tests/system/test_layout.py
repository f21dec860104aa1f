"""The floor plan, checked: which package may import which, read from the source with ``ast``.

The layout (README, "Layout") is a promise to a newcomer: ``qwatch/`` is the ground floor every stage stands on,
the stages (``ingestors/``, ``processors/``, ``subscribers/``) stand beside each other, ``app/`` is the only top
floor, and ``testing/`` (the local PyPI, sample builders) is reached only from tests, benchmarks and the demo.
An import that breaks the plan fails here, with the file and line, instead of surfacing months later as an
import cycle. Imports inside functions count the same as module-level ones: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("qwatch", "ingestors", "processors", "subscribers", "schemas", "app", "testing")
STAGES = ("ingestors", "processors", "subscribers")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # the ground floor imports no stage, no app, no test double
    "qwatch": (*STAGES, "app", "testing"),
    "schemas": ("qwatch", *STAGES, "app", "testing"),
    # stages stand side by side on the ground floor: none imports another, the app or the doubles
    "ingestors": ("processors", "subscribers", "app", "testing"),
    "processors": ("ingestors", "subscribers", "app", "testing"),
    "subscribers": ("ingestors", "processors", "app", "testing"),
    # the doubles are built from the vocabulary only
    "testing": (*STAGES, "app"),
}
"""Top-level package -> top-level packages it must never import."""

DEMO_MAY_USE_TESTING = ("app/demo/",)
"""The demo is the one product place that runs the local PyPI (``qwatch up --demo``)."""


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _violations() -> list[str]:
    found = []
    for path, tree in _modules():
        rel = path.relative_to(ROOT).as_posix()
        top = rel.split("/", 1)[0]
        banned = FORBIDDEN.get(top, ())
        for line, name in _imported(tree):
            first = name.split(".", 1)[0]
            if first == "testing" and rel.startswith(DEMO_MAY_USE_TESTING):
                continue
            if first in banned:
                found.append(f"{rel}:{line}: {top}/ imports {name}")
    return found


def test_every_package_imports_only_what_the_floor_plan_allows() -> None:
    assert _violations() == []


def test_nothing_imports_the_app() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path, tree in _modules()
        if not path.relative_to(ROOT).as_posix().startswith("app/")
        for line, name in _imported(tree)
        if name.split(".", 1)[0] == "app"
    ]
    assert offenders == []


def test_no_string_loading_of_the_projects_own_modules() -> None:
    """``importlib.import_module("processors.cli")`` hides a dependency from mypy, ruff and the reader."""
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                literal = arg.value if isinstance(arg, ast.Constant) else None
                if not isinstance(literal, str) or literal.split(".", 1)[0] in PRODUCT:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule above can fail: a ground-floor module importing a stage is reported, lazy imports included."""
    tree = ast.parse("def f():\n    from processors.core import step\n    import subscribers.gate\n")
    names = [name for _, name in _imported(tree)]
    assert "processors.core" in names and "subscribers.gate" in names
    assert all(name.split(".", 1)[0] in FORBIDDEN["qwatch"] for name in names)


def _calls_and_powers(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            yield node.lineno, f"call:{name}"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            base = node.left
            if isinstance(base, ast.Constant) and base.value in (2, 2.0) and not isinstance(node.right, ast.Constant):
                yield node.lineno, "power-of-two"


def test_one_dead_letter_builder_and_one_backoff_rule() -> None:
    """Every DeadLetter comes from ``qwatch.deadletters.dead_letter`` (same id rule, same caps); every exponential
    delay from ``qwatch.retry.backoff_delay``. The local PyPI (``testing/``) models upstream and is exempt."""
    offenders = []
    for path, tree in _modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("testing/"):
            continue
        for line, what in _calls_and_powers(tree):
            if what == "call:DeadLetter" and rel != "qwatch/deadletters.py":
                offenders.append(f"{rel}:{line}: builds a DeadLetter by hand")
            if what == "power-of-two" and rel != "qwatch/retry.py":
                offenders.append(f"{rel}:{line}: computes a backoff by hand")
    assert offenders == []

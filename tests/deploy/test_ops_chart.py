"""The Helm chart, the Grafana dashboard and the Prometheus rules agree with the code (no broker needed).

- every metric the dashboard and the rules query is defined in ``qwatch.metrics.Metrics``;
- the copies under ``deploy/`` equal the chart's canonical files;
- every ``QWATCH_*`` variable the chart sets is a registered config field, and every registered field can be set
  from values (``values.schema.json`` lists exactly the registered keys);
- the values validate against ``values.schema.json``;
- the rendered manifests (when ``helm`` is on PATH or in the ops-check tools cache) run every container non-root,
  read-only, without privilege escalation or capabilities, under RuntimeDefault seccomp.

``python tests/deploy/test_ops_chart.py --write-schema`` regenerates the config keys of values.schema.json from
``qwatch.config.REGISTERED`` after a config class gains, loses or retypes a field.

PyYAML and jsonschema are optional here: without them the YAML-reading tests skip, unless OPS_CHECK_STRICT=1
(set by .ci/ops-check, which brings both) turns every skip into a failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # for `python tests/deploy/test_ops_chart.py --write-schema`
    sys.path.insert(0, str(ROOT))

from qwatch import config as cfgmod  # noqa: E402
from qwatch.metrics import Metrics  # noqa: E402

CHART = ROOT / "helm" / "quarantine-watch"
RULES = CHART / "files" / "rules.yml"
RULES_COPY = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules.test.yml"
DASHBOARD = CHART / "dashboards" / "quarantine-watch.json"
DASHBOARD_COPY = ROOT / "deploy" / "grafana" / "quarantine-watch.json"
SCHEMA = CHART / "values.schema.json"
CI_VALUES = CHART / "ci" / "values-sasl-tls.yaml"
KUBE_VERSION = "1.33.0"
STRICT = os.environ.get("OPS_CHECK_STRICT") == "1"  # read at import: conftest clears QWATCH_* per test

COMPONENT_MODULES = (
    "qwatch.runtime",
    "ingestors.cli",
    "ingestors.openssf.cli",
    "ingestors.openssf.config",
    "ingestors.pypi.cli",
    "ingestors.pypi.config",
    "processors.cli",
    "processors.config",
    "subscribers.cli",
    "subscribers.alerts.core",
    "subscribers.config",
)
"""Modules that declare ``@component`` config classes; any other module whose source does is found by a scan."""

UNREGISTERED_ENV = {"QWATCH_CACHE_DIR": "qwatch/broker/local.py"}
"""Variables the chart sets that are read directly by code rather than through a config class (and where)."""

SOC_AND_PLATFORM_ALERTS = {
    "QwatchFeedStale",
    "QwatchHighErrorRate",
    "QwatchProcessorLagging",
    "QwatchDeadLettersGrowing",
    "QwatchDetectionLatencySLO",
    "QwatchNewQuarantine",
    "QwatchReportedInstallable",
    "QwatchSourceDown",
    "QwatchProcessorStuck",
    "QwatchWebhookFailing",
}


def _skip_or_fail(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (OPS_CHECK_STRICT=1 forbids skipping)")
    pytest.skip(reason)


def _yaml() -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        _skip_or_fail("PyYAML is not installed")
    return yaml


def tools_dir() -> Path:
    """Where .ci/ops-check installs helm, kubeconform and promtool."""
    return Path(os.environ.get("QWATCH_CACHE_DIR") or Path.home() / ".cache" / "quarantine-watch") / "tools"


def _load_yaml(path: Path) -> Any:
    return _yaml().safe_load(path.read_text())


# --------------------------------------------------------------------------------------------- metric names


def exported_sample_names() -> set[str]:
    """Every sample name a ``Metrics`` registry can expose, labelled children or not."""
    registry = CollectorRegistry()
    Metrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.update({f"{family.name}_total", f"{family.name}_created"})
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count", "_created"))
        elif family.type == "summary":
            names.update(f"{family.name}{suffix}" for suffix in ("_sum", "_count", "_created"))
        else:
            names.add(family.name)
    return names


METRIC_TOKEN = re.compile(r"\bqwatch_[a-z0-9_]+\b")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    out = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_dashboard_queries_only_exported_metrics() -> None:
    exported = exported_sample_names()
    used = {name for expr in dashboard_exprs() for name in METRIC_TOKEN.findall(expr)}
    assert used, "the dashboard queries no qwatch_ metric"
    assert used <= exported, f"not exported by qwatch.metrics: {sorted(used - exported)}"


def test_rules_query_only_exported_metrics() -> None:
    exported = exported_sample_names()
    used = set(METRIC_TOKEN.findall(RULES.read_text()))
    assert used, "the rules query no qwatch_ metric"
    assert used <= exported, f"not exported by qwatch.metrics: {sorted(used - exported)}"


def test_dashboard_and_rules_cover_the_key_metrics() -> None:
    """The issue's list: freshness, errors, throughput, processor and transitions are all on the dashboard."""
    used = {name for expr in dashboard_exprs() for name in METRIC_TOKEN.findall(expr)}
    for name in (
        "qwatch_ingest_cursor_age_seconds",
        "qwatch_ingest_last_success_timestamp_seconds",
        "qwatch_watchset_packages",
        "qwatch_ingest_fetches_total",
        "qwatch_http_responses_total",
        "qwatch_deadletters_total",
        "qwatch_git_fetch_failures_total",
        "qwatch_ingest_retries_total",
        "qwatch_events_emitted_total",
        "qwatch_ingest_polls_total",
        "qwatch_processor_observations_total",
        "qwatch_consumer_lag_records",
        "qwatch_processor_state_packages",
        "qwatch_detection_latency_seconds_bucket",
        "qwatch_transitions_total",
    ):
        assert name in used, f"dashboard does not show {name}"


# --------------------------------------------------------------------------------------------- copies


def test_deploy_copies_equal_the_chart_files() -> None:
    assert RULES_COPY.read_bytes() == RULES.read_bytes(), f"copy {RULES} over {RULES_COPY}"
    assert DASHBOARD_COPY.read_bytes() == DASHBOARD.read_bytes(), f"copy {DASHBOARD} over {DASHBOARD_COPY}"


# --------------------------------------------------------------------------------------------- dashboard lint
# The checks of grafana/dashboard-linter that apply here, for machines where it cannot be installed.

VALID_UNITS = {"s", "ms", "short", "none", "percentunit", "percent", "reqps", "ops", "cps", "bytes", "dateTimeAsIso"}


def test_dashboard_shape() -> None:
    d = dashboard()
    assert d["uid"] == "quarantine-watch"
    assert 36 <= d["schemaVersion"] <= 41
    assert d["editable"] is False
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Feed freshness", "Errors", "Throughput", "Processor", "Transitions"]
    titles = {p["title"] for p in panels()}
    assert "New quarantines" in titles
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_template_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name in ("job", "instance"):
        var = variables[name]
        assert var["type"] == "query" and var["datasource"]["uid"] == "${datasource}"
        assert var["multi"] is True and var["allValue"] == ".+" and var["label"] == name.title()
        assert var["refresh"] == 2, "reload on time range change"


def test_dashboard_panels_follow_the_linter_rules() -> None:
    problems = []
    for p in panels():
        if p["type"] == "row":
            continue
        where = f"panel {p['title']!r}"
        if not p.get("description"):
            problems.append(f"{where}: no description")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: datasource is not ${{datasource}}")
        if p["fieldConfig"]["defaults"].get("unit") not in VALID_UNITS:
            problems.append(f"{where}: unit {p['fieldConfig']['defaults'].get('unit')!r}")
        if not p.get("targets"):
            problems.append(f"{where}: no targets")
        for t in p.get("targets", []):
            expr = t["expr"]
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{where}: target datasource")
            selectors = re.findall(r"qwatch_[a-z0-9_]+(\{[^}]*\})?", expr)
            for matcher in ('job=~"$job"', 'instance=~"$instance"'):
                problems.extend(f"{where}: {expr!r} lacks {matcher}" for s in selectors if matcher not in s)
            for fn, window in re.findall(r"\b(i?rate)\([^\[]*\[([^\]]+)\]", expr):
                if window != "$__rate_interval":
                    problems.append(f"{where}: {fn} over {window}, not $__rate_interval")
            for counter in re.finditer(r"qwatch_[a-z0-9_]+_total", expr):
                before = expr[: counter.start()]
                if not re.search(r"\b(rate|irate|increase)\($", before):
                    problems.append(f"{where}: counter {counter.group()} outside rate/increase")
    assert not problems, "\n".join(problems)


def promtool_binary() -> str | None:
    found = shutil.which("promtool")
    if found:
        return found
    candidate = tools_dir() / "bin" / "promtool"
    return str(candidate) if candidate.is_file() else None


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL once Grafana's variables are substituted (promtool parses it)."""
    promtool = promtool_binary()
    if promtool is None:
        _skip_or_fail("promtool not found: run `bash .ci/ops-check --install-only`")
    assert promtool is not None
    substitutions = {"$__rate_interval": "2m", "$__range": "6h", "$job": ".+", "$instance": ".+"}
    rules = []
    for i, expr in enumerate(e for e in dashboard_exprs() if not e.startswith("label_values(")):
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unsubstituted variable in {expr!r}"
        rules.append({"record": f"dashboard:expr{i}", "expr": expr})
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------- rules


def rule_list() -> list[dict[str, Any]]:
    groups = _load_yaml(RULES)["groups"]
    assert [g["name"] for g in groups] == ["quarantine-watch"]
    rules: list[dict[str, Any]] = groups[0]["rules"]
    return rules


def test_rules_have_severity_and_runbook() -> None:
    alerts = {r["alert"]: r for r in rule_list() if "alert" in r}
    assert SOC_AND_PLATFORM_ALERTS <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["labels"]["team"] in ("platform", "soc"), name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), f"{name} lacks annotation {key}"


def test_every_alert_has_a_firing_promtool_test() -> None:
    alerts = {r["alert"] for r in rule_list() if "alert" in r}
    tests = _load_yaml(RULES_TEST)["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts <= firing, f"alerts without a firing test: {sorted(alerts - firing)}"


# --------------------------------------------------------------------------------------------- config registry


@cache
def registered() -> tuple[tuple[type, str], ...]:
    """REGISTERED after importing every module that declares a config class."""
    names = set(COMPONENT_MODULES)
    for package in ("qwatch", "ingestors", "processors", "subscribers"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"^@(\w+\.)?component\(", path.read_text(errors="replace"), re.M):
                names.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    errors = []
    for name in sorted(names):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                errors.append(f"{name}: {exc}")  # the module exists but one of its imports does not
        except Exception as exc:  # noqa: BLE001 - report every broken module at once
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not errors, "config modules failed to import:\n" + "\n".join(errors)
    seen: dict[tuple[str, str], tuple[type, str]] = {}
    for cls, prefix in cfgmod.REGISTERED:
        seen[(cls.__module__ + "." + cls.__qualname__, prefix)] = (cls, prefix)
    return tuple(seen.values())


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _json_type(tp: Any) -> dict[str, Any]:
    tp, optional = _strip_optional(tp)
    if tp is bool:
        schema: dict[str, Any] = {"type": ["boolean"]}
    elif tp is int:
        schema = {"type": ["integer"]}
    elif tp is float:
        schema = {"type": ["number"]}
    elif tp in (str, Path):
        schema = {"type": ["string"]}
    elif typing.get_origin(tp) is tuple:
        schema = {"type": ["array", "string"], "items": {"type": "string"}}
    else:
        raise AssertionError(f"no JSON type for {tp}")
    schema["type"].append("null")  # null unsets a key (e.g. a component dropping a global setting)
    if optional:
        schema["description"] = "empty or null = not set"
    return schema


def expected_keys() -> tuple[dict[str, Any], dict[str, Any]]:
    """(config properties, secretEnv properties) of values.schema.json, from REGISTERED."""
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for cls, prefix in registered():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = cfgmod.env_name(prefix, f.name)[len("QWATCH_") :].lower()
            tp = hints[f.name]
            if _strip_optional(tp)[0] is cfgmod.Secret:
                prop: dict[str, Any] = {"$ref": "#/definitions/secretRef"}
                target = secrets
            else:
                prop = _json_type(tp)
                target = config
            help_text = f.metadata.get("help", "")
            prop["description"] = f"QWATCH_{key.upper()}" + (f": {help_text}" if help_text else "")
            if key in config or key in secrets:
                raise AssertionError(f"QWATCH_{key.upper()} is declared twice (prefix clash)")
            target[key] = prop
    return dict(sorted(config.items())), dict(sorted(secrets.items()))


COMPONENT_VARIANTS = {"serveComponent": ("http",), "mirrorComponentFields": ("mirrorVolume",)}
"""Schema definitions that are ``component`` plus a few keys of their own (hand-kept in values.schema.json).
Draft 7 cannot extend an object that has ``additionalProperties: false``, so they repeat its properties;
``--write-schema`` copies those over from ``component`` and keeps only the listed extra keys."""


def component_variant(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """What definition ``name`` must be: ``component``'s shape plus its own extra keys as written in the file."""
    definitions = schema["definitions"]
    base, have = definitions["component"], definitions[name]
    extras = {key: have["properties"][key] for key in COMPONENT_VARIANTS[name]}
    clash = set(extras) & set(base["properties"])
    assert not clash, f"{name}: {sorted(clash)} are now generic component keys; drop them from COMPONENT_VARIANTS"
    out = dict(have)
    out.update(
        type="object",
        additionalProperties=False,
        required=list(base["required"]),
        properties={**base["properties"], **extras},
    )
    return out


def write_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    config, secrets = expected_keys()
    schema["definitions"]["qwatchConfig"]["properties"] = config
    schema["definitions"]["qwatchSecretEnv"]["properties"] = secrets
    for name in COMPONENT_VARIANTS:
        schema["definitions"][name] = component_variant(schema, name)
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")


def test_component_variants_follow_the_generic_component() -> None:
    """serve and mirror-bandersnatch accept every generic component key (and only their own extras on top)."""
    schema = json.loads(SCHEMA.read_text())
    for name in COMPONENT_VARIANTS:
        assert schema["definitions"][name] == component_variant(schema, name), (
            f"{name} differs from definitions.component; run `python tests/deploy/test_ops_chart.py --write-schema`"
        )


def test_every_registered_field_is_settable_from_values() -> None:
    schema = json.loads(SCHEMA.read_text())
    config, secrets = expected_keys()
    have_config = schema["definitions"]["qwatchConfig"]["properties"]
    have_secrets = schema["definitions"]["qwatchSecretEnv"]["properties"]
    fix = "run `python tests/deploy/test_ops_chart.py --write-schema`"
    assert set(have_config) == set(config), (
        f"values.schema.json config keys differ from REGISTERED: missing {sorted(set(config) - set(have_config))}, "
        f"unknown {sorted(set(have_config) - set(config))}; {fix}"
    )
    assert set(have_secrets) == set(secrets), f"secretEnv keys differ from REGISTERED; {fix}"
    assert have_config == config and have_secrets == secrets, f"types or help changed; {fix}"
    assert schema["definitions"]["qwatchConfig"]["additionalProperties"] is False
    assert schema["definitions"]["qwatchSecretEnv"]["additionalProperties"] is False


def registered_env_names() -> set[str]:
    return {cfgmod.env_name(prefix, f.name) for cls, prefix in registered() for f in dataclasses.fields(cls)}


def test_values_keys_map_to_registered_variables() -> None:
    known = registered_env_names()
    for path in (CHART / "values.yaml", CI_VALUES):
        values = _load_yaml(path)
        keys = set(values.get("config", {})) | set(values.get("secretEnv", {}))
        for component in values.get("components", {}).values():
            keys |= set(component.get("config", {}))
        unknown = {f"QWATCH_{k.upper()}" for k in keys} - known
        assert not unknown, f"{path.name}: not registered config variables: {sorted(unknown)}"


def test_unregistered_chart_variables_are_really_read() -> None:
    for name, where in UNREGISTERED_ENV.items():
        assert name in (ROOT / where).read_text(), f"{name} is no longer read in {where}: drop it from the chart"


# --------------------------------------------------------------------------------------------- values schema


def test_values_validate_against_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    try:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        jsonschema = None
    good = [_load_yaml(CHART / "values.yaml"), _load_yaml(CI_VALUES)]
    if jsonschema is None:
        if STRICT:
            pytest.fail("jsonschema is not installed (OPS_CHECK_STRICT=1)")
        # Structural check: every top-level key is described and config keys are known.
        for values in good:
            assert set(values) <= set(schema["properties"]), set(values) - set(schema["properties"])
            assert set(values.get("config", {})) <= set(schema["definitions"]["qwatchConfig"]["properties"])
        return
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = good[0]
    for values in good:
        merged = _deep_merge(defaults, values)
        jsonschema.validate(merged, schema)
    bad = _deep_merge(defaults, {"config": {"kafka_bootstrapp": "typo:9092"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = _deep_merge(defaults, {"config": {"kafka_sasl_password": "not-here"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = _deep_merge(defaults, {"securityContext": {"readOnlyRootFilesystem": False}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------- rendered chart


def helm_binary() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    candidate = tools_dir() / "bin" / "helm"
    return str(candidate) if candidate.is_file() else None


def helm_template(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    helm = helm_binary()
    if helm is None:
        _skip_or_fail("helm not found: run `bash .ci/ops-check --install-only`")
    assert helm is not None
    cmd = [helm, "template", "qwatch", str(CHART), "--namespace", "qwatch", "--kube-version", KUBE_VERSION, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@cache
def render(*args: str) -> tuple[dict[str, Any], ...]:
    docs = _yaml().safe_load_all(helm_template(*args).stdout)
    return tuple(d for d in docs if d)


RENDERS = {"default": (), "sasl-tls": ("-f", str(CI_VALUES))}


def pod_specs(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("render_name", sorted(RENDERS))
def test_rendered_security_context(render_name: str) -> None:
    specs = pod_specs(render(*RENDERS[render_name]))
    assert len(specs) == 9, [name for name, _ in specs]  # 5 ingestors, processor, alerts, serve, topics Job
    for name, spec in specs:
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert spec.get("automountServiceAccountToken") is False, name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            where = f"{name}/{c['name']}"
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            seccomp = sc.get("seccompProfile") or pod.get("seccompProfile") or {}
            assert seccomp.get("type") == "RuntimeDefault", where
            assert c.get("resources", {}).get("limits", {}).get("memory"), f"{where}: no memory limit"
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for path in ("/tmp", "/var/cache/qwatch"):
                assert path in mounts and "emptyDir" in volumes[mounts[path]], f"{where}: {path} not an emptyDir"


@pytest.mark.parametrize("render_name", sorted(RENDERS))
def test_rendered_variables_are_registered(render_name: str) -> None:
    known = registered_env_names() | set(UNREGISTERED_ENV)
    for name, spec in pod_specs(render(*RENDERS[render_name])):
        for c in spec["containers"]:
            qwatch_vars = {n for n in env_of(c) if n.startswith("QWATCH_")}
            assert qwatch_vars, name
            assert qwatch_vars <= known, f"{name}: unregistered {sorted(qwatch_vars - known)}"


def test_rendered_components_and_commands() -> None:
    docs = render()
    commands = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert commands == {
        "ingest-openssf": ["ingest", "openssf"],
        "ingest-pypi-simple": ["ingest", "pypi-simple"],
        "ingest-pypi-json": ["ingest", "pypi-json"],
        "ingest-pypi-journal": ["ingest", "pypi-journal"],
        "ingest-pypi-provenance": ["ingest", "pypi-provenance"],
        "processor": ["process"],
        "alerts": ["alerts"],
        "serve": ["serve"],
    }
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]


def test_chart_commands_exist_in_the_cli() -> None:
    """Each Deployment's args parse with the real `qwatch` parser (skips commands not registered yet)."""
    from app.cli import build_parser

    values = _load_yaml(CHART / "values.yaml")
    parser = build_parser()

    def commands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    missing = []
    for name, component in values["components"].items():
        args = component["args"]
        sub = commands(parser).get(args[0])
        nested = commands(sub) if sub else {}
        if sub is None or (nested and args[1] not in nested):
            missing.append(f"{name}: qwatch {' '.join(args)}")
            continue
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{name}: `qwatch {' '.join(args)}` does not parse")
    if missing:
        pytest.skip(f"commands not registered in app.cli yet: {missing}")


def test_values_map_one_to_one_onto_env() -> None:
    docs = render(
        "--set",
        "config.log_level=WARNING",
        "--set",
        "components.processor.config.log_level=DEBUG",
        "--set",
        "components.ingest-pypi-journal.config.metrics_port=9999",
        "--set",
        "secretEnv.kafka_sasl_password.value=s3cret",
    )
    envs = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: env_of(d["spec"]["template"]["spec"]["containers"][0])
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert envs["processor"]["QWATCH_LOG_LEVEL"]["value"] == "DEBUG"
    assert envs["alerts"]["QWATCH_LOG_LEVEL"]["value"] == "WARNING"
    assert envs["ingest-pypi-journal"]["QWATCH_METRICS_PORT"]["value"] == "9999"
    assert envs["ingest-openssf"]["QWATCH_METRICS_PORT"]["value"] == "9464"
    assert envs["ingest-openssf"]["QWATCH_KAFKA_CLIENT_ID"]["value"].endswith("-ingest-openssf")
    ref = envs["alerts"]["QWATCH_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert ref == {"name": secret["metadata"]["name"], "key": "QWATCH_KAFKA_SASL_PASSWORD"}
    assert "s3cret" not in json.dumps(envs), "secrets never appear as plain env values"
    journal = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("ingest-pypi-journal")
    )
    assert journal["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 9999


def _processor_env(*args: str) -> dict[str, dict[str, Any]]:
    docs = render(*args)
    (processor,) = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == "processor"
    ]
    return env_of(processor["spec"]["template"]["spec"]["containers"][0])


def test_processor_authority_follows_the_journal_ingestor() -> None:
    """With ingest-pypi-journal running its rows decide (README S3); without it the pages must, or a deployment
    without the journal would silently never report a quarantine."""
    assert _processor_env()["QWATCH_PROCESSOR_AUTHORITY"]["value"] == "journal"
    off = _processor_env("--set", "components.ingest-pypi-journal.enabled=false")
    assert off["QWATCH_PROCESSOR_AUTHORITY"]["value"] == "pages"
    forced = _processor_env(
        "--set", "components.ingest-pypi-journal.enabled=false", "--set", "config.processor_authority=journal"
    )
    assert forced["QWATCH_PROCESSOR_AUTHORITY"]["value"] == "journal"


def test_sasl_tls_render_wires_the_secrets() -> None:
    docs = render(*RENDERS["sasl-tls"])
    for name, spec in pod_specs(docs):
        env = env_of(spec["containers"][0])
        assert env["QWATCH_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL", name
        assert env["QWATCH_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512", name
        assert env["QWATCH_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "quarantine-watch-kafka",
            "key": "password",
        }, name
        cafile = env["QWATCH_KAFKA_SSL_CAFILE"]["value"]
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert cafile.startswith(mounts["kafka-ca"]["mountPath"] + "/") and mounts["kafka-ca"]["readOnly"], name
    assert not [d for d in docs if d["kind"] == "Secret"], "an existing Secret must not be duplicated"


def test_sasl_without_a_password_fails_to_render() -> None:
    proc = helm_template(
        "--set",
        "config.kafka_security_protocol=SASL_SSL",
        "--set",
        "config.kafka_sasl_mechanism=SCRAM-SHA-512",
        "--set",
        "config.kafka_sasl_username=qwatch",
        check=False,
    )
    assert proc.returncode != 0 and "kafka_sasl_password" in proc.stderr


def test_rendered_monitoring_objects_use_the_canonical_files() -> None:
    docs = render(*RENDERS["sasl-tls"])
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"] == _load_yaml(RULES)
    dashboard_cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard_cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard_cm["data"]["quarantine-watch.json"]) == dashboard()
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    services = [d for d in docs if d["kind"] == "Service"]
    metrics_services = [d for d in services if "quarantine-watch/metrics" in d["metadata"]["labels"]]
    assert len(metrics_services) == 8 and all(
        [p["name"] for p in s["spec"]["ports"]] == ["metrics"] for s in metrics_services
    )
    other = [d["metadata"]["name"] for d in services if d not in metrics_services]
    assert other == ["qwatch-quarantine-watch-serve-http"], "only serve's HTTP Service lacks the metrics label"
    kinds = {d["kind"] for d in docs}
    assert {"PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"} <= kinds


def test_network_policy_egress() -> None:
    docs = render()
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert set(policies) == {
        "qwatch-quarantine-watch",
        "qwatch-quarantine-watch-egress-https",
        "qwatch-quarantine-watch-serve-http",
    }
    base = policies["qwatch-quarantine-watch"]
    https = policies["qwatch-quarantine-watch-egress-https"]
    egress_ports = {p["port"] for rule in base["egress"] for p in rule["ports"]}
    assert {53, 9092} <= egress_ports and 443 not in egress_ports
    assert base["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert {p["port"] for p in https["egress"][0]["ports"]} == {443}
    processor = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-processor"))
    assert "quarantine-watch/egress-https" not in processor["spec"]["template"]["metadata"]["labels"]


# --------------------------------------------------------------------------------------------- outcomes, zeros


def test_fetch_outcomes_have_one_spelling_in_code_rules_and_dashboard() -> None:
    """The outcomes the rules and dashboard name are the ones qwatch.http exports, and the success set is the same
    everywhere (a 304 and a 404 are answers, not errors)."""
    from qwatch import http
    from qwatch.metrics import FETCH_OUTCOMES, FETCH_SUCCESS_OUTCOMES

    produced = {http._outcome(status) for status in range(100, 600)} | {
        "timeout",
        "transport",
        "truncated",
        "oversized",
    }
    assert produced == set(FETCH_OUTCOMES)
    assert http._outcome(304) == "not-modified" and http._outcome(404) == "not-found"
    texts = {"rules": RULES.read_text(), "dashboard": DASHBOARD.read_text()}
    for where, text in texts.items():
        matchers = re.findall(r'qwatch_ingest_fetches_total\{[^}]*outcome!~\\?"([^"\\]+)\\?"', text)
        assert matchers, f"{where}: no error-ratio matcher on fetch outcomes"
        for matcher in matchers:
            assert set(matcher.split("|")) == set(FETCH_SUCCESS_OUTCOMES), f"{where}: {matcher}"
        assert "not_modified" not in text and "not_found" not in text, where
    test_text = RULES_TEST.read_text()
    for outcome in re.findall(r'qwatch_ingest_fetches_total\{[^}]*outcome="([^"]+)"', test_text):
        assert outcome in FETCH_OUTCOMES, f"rules.test.yml feeds outcome {outcome!r}, which the code never exports"


def test_pre_declared_label_sets_match_the_code() -> None:
    from processors.draft import OUTCOME_RANK
    from qwatch.events.kinds import ALL_KINDS
    from qwatch.metrics import OBSERVATION_OUTCOMES, TRANSITION_KINDS

    assert TRANSITION_KINDS == ALL_KINDS
    assert set(OBSERVATION_OUTCOMES) == {*OUTCOME_RANK, "deadletter"}
    from qwatch.http import RETRY_STATUSES
    from qwatch.metrics import RETRY_REASONS

    assert {str(code) for code in RETRY_STATUSES} <= set(RETRY_REASONS)


def test_counters_start_at_zero_for_every_known_label() -> None:
    """After a restart increase() needs a 0 sample before the first event: the processor exports every kind,
    each HTTP ingestor every fetch outcome, before anything happened."""
    from qwatch.metrics import FETCH_OUTCOMES, TRANSITION_KINDS

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.declare("processor")
    metrics.declare("pypi-json")
    for kind in TRANSITION_KINDS:
        assert registry.get_sample_value("qwatch_transitions_total", {"kind": kind}) == 0.0, kind
    for outcome in FETCH_OUTCOMES:
        labels = {"source": "pypi-json", "outcome": outcome}
        assert registry.get_sample_value("qwatch_ingest_fetches_total", labels) == 0.0, outcome
    assert registry.get_sample_value("qwatch_source_up", {"source": "pypi-json"}) is None, "never polled != down"
    assert registry.get_sample_value("qwatch_ingest_last_success_timestamp_seconds", {"source": "pypi-json"}) is None


# --------------------------------------------------------------------------------------------- singletons, probes

SINGLETONS = {
    "ingest-openssf",
    "ingest-pypi-simple",
    "ingest-pypi-journal",
    "ingest-pypi-provenance",
    "mirror-bandersnatch",
}
"""Ingestors that keep one cursor or root snapshot and poll upstream alone (openssf: commit cursor; journal: serial
cursor; simple: the root snapshot and its ETag), and the bandersnatch enforcer (it moves files in one mirror tree
and keeps its holds there). pypi-json, the processor and serve may scale."""


def _deployments(*args: str) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in render(*args) if d["kind"] == "Deployment"
    }


def test_singletons_use_recreate_and_others_do_not() -> None:
    values = _load_yaml(CHART / "values.yaml")
    assert {name for name, c in values["components"].items() if c.get("singleton")} == SINGLETONS
    for name, deployment in _deployments().items():
        strategy = deployment["spec"].get("strategy", {}).get("type", "RollingUpdate")
        assert (strategy == "Recreate") == (name in SINGLETONS), (name, strategy)


@pytest.mark.parametrize("name", sorted(SINGLETONS))
def test_a_second_replica_of_a_singleton_is_refused(name: str) -> None:
    proc = helm_template("--set", f"components.{name}.replicas=2", check=False)
    assert proc.returncode != 0, f"{name} with 2 replicas rendered"
    assert "replicas" in proc.stderr and name in proc.stderr, proc.stderr
    # Turning the flag off to get around the cap, or asking for a rolling update, is refused as well.
    for trick in (
        ("--set", f"components.{name}.singleton=false", "--set", f"components.{name}.replicas=2"),
        ("--set", f"components.{name}.strategy.type=RollingUpdate"),
    ):
        assert helm_template(*trick, check=False).returncode != 0, trick
    assert helm_template("--set", f"components.{name}.replicas=0").returncode == 0


def test_processor_replicas_beyond_the_partitions_are_refused() -> None:
    from qwatch.events.topics import ALL_TOPICS, OBSERVATIONS

    partitions = next(t.partitions for t in ALL_TOPICS if t.name == OBSERVATIONS)
    values = _load_yaml(CHART / "values.yaml")
    assert values["observationsPartitions"] == partitions
    schema = json.loads(SCHEMA.read_text())
    assert schema["definitions"]["processorComponent"]["allOf"][1]["properties"]["replicas"]["maximum"] == partitions
    assert helm_template("--set", f"components.processor.replicas={partitions}").returncode == 0
    proc = helm_template("--set", f"components.processor.replicas={partitions + 1}", check=False)
    assert proc.returncode != 0 and "replicas" in proc.stderr, proc.stderr
    # A smaller topic (observationsPartitions) lowers the cap through the template's own check.
    proc = helm_template("--set", "observationsPartitions=1", check=False)
    assert proc.returncode != 0 and "exceeds the 1 partitions" in proc.stderr, proc.stderr


def test_probes_use_healthz_and_readyz() -> None:
    """The service loops answer on the metrics port; serve answers on its HTTP port, where /healthz?ready=1 is 503
    until its view caught up (subscribers/serve/app.py has no /readyz, and registers no heartbeat on the metrics
    port, whose /readyz would then always say 200)."""
    deployments = _deployments()
    assert "serve" in deployments
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        port, ready = ("http", "/healthz?ready=1") if name == "serve" else ("metrics", "/readyz")
        assert port in {p["name"] for p in container["ports"]}, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}, name
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port}, name
        assert container["readinessProbe"]["httpGet"] == {"path": ready, "port": port}, name
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "a first snapshot needs minutes"


def test_placement_per_component_overrides_the_global_one() -> None:
    docs = _deployments(
        "--set",
        "nodeSelector.pool=general",
        "--set",
        "components.processor.nodeSelector.pool=streaming",
        "--set",
        "components.processor.tolerations[0].key=dedicated",
        "--set",
        "components.processor.tolerations[0].operator=Exists",
        "--set",
        "components.ingest-openssf.priorityClassName=qwatch-high",
        "--set",
        "components.alerts.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
        "--set",
        "components.alerts.resources.limits.memory=2Gi",
    )
    spec = {name: d["spec"]["template"]["spec"] for name, d in docs.items()}
    assert spec["processor"]["nodeSelector"] == {"pool": "streaming"}
    assert spec["processor"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert spec["ingest-pypi-json"]["nodeSelector"] == {"pool": "general"}
    assert "tolerations" not in spec["ingest-pypi-json"]
    assert spec["ingest-openssf"]["priorityClassName"] == "qwatch-high"
    assert "priorityClassName" not in spec["processor"]
    assert "podAntiAffinity" in spec["alerts"]["affinity"]
    assert spec["alerts"]["containers"][0]["resources"]["limits"]["memory"] == "2Gi"


# --------------------------------------------------------------------------------------------- serve, mirror


def _of(docs: tuple[dict[str, Any], ...], kind: str, component: str) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        or d["kind"] == kind == "NetworkPolicy"
        and d["metadata"]["name"].endswith(f"-{component}-http")
    ]


@pytest.mark.parametrize(
    ("args", "http_port", "service_port", "peers"),
    [
        ((), 8080, 80, None),
        (
            (
                "--set",
                "components.serve.config.serve_port=9000",
                "--set",
                "components.serve.http.servicePort=8443",
                "--set",
                "components.serve.http.from[0].podSelector.matchLabels.role=frontend",
            ),
            9000,
            8443,
            [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
        ),
    ],
)
def test_serve_renders_a_deployment_service_and_ingress_on_its_port(
    args: tuple[str, ...], http_port: int, service_port: int, peers: Any
) -> None:
    docs = render(*args)
    (deployment,) = _of(docs, "Deployment", "serve")
    spec = deployment["spec"]
    assert spec["replicas"] == 2 and spec.get("strategy", {}).get("type") != "Recreate"
    container = spec["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": http_port, "metrics": 9464}
    env = env_of(container)
    assert env["QWATCH_SERVE_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - the pod must listen on its pod IP
    assert env["QWATCH_SERVE_PORT"]["value"] == str(http_port)
    state = env["QWATCH_STATE_DIR"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[state]], "serve's view lives in the state emptyDir"
    assert "quarantine-watch/egress-https" not in spec["template"]["metadata"]["labels"]

    services = {s["metadata"]["name"]: s["spec"] for s in _of(docs, "Service", "serve")}
    http = services.pop("qwatch-quarantine-watch-serve-http")
    assert http["ports"] == [{"name": "http", "port": service_port, "targetPort": http_port, "protocol": "TCP"}]
    assert http["type"] == "ClusterIP"
    pod_labels = spec["template"]["metadata"]["labels"]
    assert http["selector"].items() <= pod_labels.items() and http["selector"] == spec["selector"]["matchLabels"]
    assert [s["ports"][0]["name"] for s in services.values()] == ["metrics"]

    (policy,) = _of(docs, "NetworkPolicy", "serve")
    assert policy["spec"]["podSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": http_port, "protocol": "TCP"}]
    assert rule.get("from") == peers


def test_serve_probe_paths_answer_as_the_chart_expects_in_the_real_app(tmp_path: Path) -> None:
    """The rendered probes against serve's real ASGI app (in process), with a token set: liveness and startup pass
    while the view is still catching up, readiness only once it caught up, and neither needs the token."""
    import asyncio

    import httpx
    from prometheus_client import CollectorRegistry as Registry

    from qwatch.config import Secret
    from qwatch.events.codec import Codec
    from subscribers.serve.app import Service, build_app
    from subscribers.serve.config import ServeConfig
    from subscribers.serve.metrics import ServeMetrics
    from subscribers.serve.view import View

    (deployment,) = _of(render(), "Deployment", "serve")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    probes = {kind: container[f"{kind}Probe"]["httpGet"]["path"] for kind in ("startup", "liveness", "readiness")}
    health = {"caught_up": False, "error": None}
    view = View(tmp_path, "probe", "qwatch.transitions.v1", Codec())
    service = Service(ServeConfig(token=Secret("t0ken")), view.reader(), ServeMetrics(Registry()), lambda: health)

    async def statuses() -> dict[str, int]:
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            return {kind: (await client.get(path)).status_code for kind, path in probes.items()}

    try:
        assert asyncio.run(statuses()) == {"startup": 200, "liveness": 200, "readiness": 503}
        health["caught_up"] = True
        assert asyncio.run(statuses()) == {"startup": 200, "liveness": 200, "readiness": 200}
    finally:
        service.reader.close()
        view.close()


def test_serve_token_is_a_secret_ref_and_colliding_ports_are_refused() -> None:
    docs = render("--set", "secretEnv.serve_token.existingSecret=qwatch-serve", "--set", "secretEnv.serve_token.key=t")
    (deployment,) = _of(docs, "Deployment", "serve")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["QWATCH_SERVE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "qwatch-serve", "key": "t"}
    assert helm_template("--set", "config.serve_token=plain", check=False).returncode != 0, "Secret outside secretEnv"
    proc = helm_template("--set", "components.serve.config.serve_port=9464", check=False)
    assert proc.returncode != 0 and "serve_port and metrics_port" in proc.stderr, proc.stderr
    proc = helm_template("--set", "components.serve.config.serve_port=0", check=False)
    assert proc.returncode != 0 and "fixed port" in proc.stderr, proc.stderr
    assert not _of(render("--set", "components.serve.enabled=false"), "Service", "serve")


MIRROR = "components.mirror-bandersnatch"


def test_mirror_bandersnatch_renders_nothing_by_default() -> None:
    docs = render()
    assert not [d for d in docs if "mirror" in json.dumps(d.get("metadata", {}))]
    assert not [v for _, spec in pod_specs(docs) for v in spec["volumes"] if "persistentVolumeClaim" in v]


def test_mirror_bandersnatch_mounts_its_claim_at_the_root_it_enforces() -> None:
    docs = render("--set", f"{MIRROR}.enabled=true", "--set", f"{MIRROR}.mirrorVolume.claimName=pypi-mirror")
    (deployment,) = _of(docs, "Deployment", "mirror-bandersnatch")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"} and deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert args[:2] == ["mirror", "bandersnatch"]
    root = args[args.index("--root") + 1]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "mirror"]
    assert mount["mountPath"] == root and not mount.get("readOnly"), "the enforcer moves files: read-write"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "mirror"]
    assert volume == {"name": "mirror", "persistentVolumeClaim": {"claimName": "pypi-mirror"}}
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] == 10001
    assert "quarantine-watch/egress-https" not in deployment["spec"]["template"]["metadata"]["labels"]
    others = [spec for name, spec in pod_specs(docs) if not name.endswith("-mirror-bandersnatch")]
    assert len(others) == 9
    for spec in others:
        assert "mirror" not in {v["name"] for v in spec["volumes"]}
        assert "mirror" not in {m["name"] for m in spec["containers"][0]["volumeMounts"]}


def test_mirror_bandersnatch_without_a_claim_or_with_two_replicas_is_refused() -> None:
    proc = helm_template("--set", f"{MIRROR}.enabled=true", check=False)
    assert proc.returncode != 0 and f"{MIRROR}.mirrorVolume.claimName is required" in proc.stderr, proc.stderr
    claim = ("--set", f"{MIRROR}.enabled=true", "--set", f"{MIRROR}.mirrorVolume.claimName=pypi-mirror")
    proc = helm_template(*claim, "--set", f"{MIRROR}.replicas=2", check=False)
    assert proc.returncode != 0 and "replicas" in proc.stderr and "mirror-bandersnatch" in proc.stderr, proc.stderr
    # The template refuses it too, for installs that skip the schema.
    proc = helm_template(*claim, "--set", f"{MIRROR}.replicas=2", "--skip-schema-validation", check=False)
    assert proc.returncode != 0 and "must run as a single replica" in proc.stderr, proc.stderr
    assert helm_template(*claim, "--set", f"{MIRROR}.replicas=0").returncode == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-schema"]:
        write_schema()
        print(f"wrote {SCHEMA.relative_to(ROOT)}")
    else:
        sys.exit("usage: python tests/deploy/test_ops_chart.py --write-schema")

"""Config objects: typed, frozen, from QWATCH_* variables, validated with one-line errors; secrets stay secret."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from qwatch import config
from qwatch.config import ConfigError, KafkaConfig, Secret
from qwatch.runtime import CommonConfig


def test_env_overrides_defaults_and_flags_override_env() -> None:
    env = {"QWATCH_KAFKA_BOOTSTRAP": "a:1,b:2", "QWATCH_KAFKA_CLIENT_ID": "x"}
    cfg = config.load(KafkaConfig, env, "KAFKA_", {"client_id": "from-flag", "bootstrap": None})
    assert cfg.bootstrap == "a:1,b:2"
    assert cfg.client_id == "from-flag"
    assert cfg.client_kwargs()["bootstrap_servers"] == ["a:1", "b:2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bootstrap = "c:3"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"QWATCH_METRICS_PORT": "abc"}, "QWATCH_METRICS_PORT"),
        ({"QWATCH_METRICS_PORT": "70000"}, "QWATCH_METRICS_PORT"),
        ({"QWATCH_LOG_LEVEL": "chatty"}, "QWATCH_LOG_LEVEL"),
        ({"QWATCH_JSON_LOGS": "maybe"}, "QWATCH_JSON_LOGS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.load(CommonConfig, env)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_sasl_needs_mechanism_and_user() -> None:
    with pytest.raises(ConfigError, match="QWATCH_KAFKA_SASL_MECHANISM"):
        config.load(KafkaConfig, {"QWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_")


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", None])
@pytest.mark.parametrize(
    ("field", "value"),
    [("SASL_MECHANISM", "SCRAM-SHA-512"), ("SASL_USERNAME", "qwatch"), ("SASL_PASSWORD", "hunter2-very-secret")],
)
def test_sasl_settings_without_a_sasl_protocol_are_refused(protocol: str | None, field: str, value: str) -> None:
    """The client would ignore them and connect unauthenticated: the error names the variable and the protocol,
    and never echoes the password."""
    env = {f"QWATCH_KAFKA_{field}": value}
    if protocol is not None:
        env["QWATCH_KAFKA_SECURITY_PROTOCOL"] = protocol
    with pytest.raises(ConfigError) as exc:
        config.load(KafkaConfig, env, "KAFKA_")
    message = str(exc.value)
    assert message.startswith(f"QWATCH_KAFKA_{field}:"), message
    assert (protocol or "PLAINTEXT") in message and "SASL_SSL" in message
    assert "hunter2" not in message and "\n" not in message


def test_every_sasl_setting_is_accepted_with_a_sasl_protocol_and_none_without() -> None:
    full = {
        "QWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "QWATCH_KAFKA_SASL_USERNAME": "qwatch",
        "QWATCH_KAFKA_SASL_PASSWORD": "pw",
    }
    for protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        cfg = config.load(KafkaConfig, {**full, "QWATCH_KAFKA_SECURITY_PROTOCOL": protocol}, "KAFKA_")
        assert cfg.client_kwargs()["sasl_mechanism"] == "SCRAM-SHA-512"
    for protocol in ("PLAINTEXT", "SSL"):
        cfg = config.load(
            KafkaConfig, {"QWATCH_KAFKA_SECURITY_PROTOCOL": protocol, "QWATCH_KAFKA_SSL_CAFILE": ""}, "KAFKA_"
        )
        assert "sasl_mechanism" not in cfg.client_kwargs()


def test_health_bound_is_validated() -> None:
    assert config.load(CommonConfig, {"QWATCH_HEALTH_MAX_SILENCE": "30"}).health_max_silence == 30.0
    with pytest.raises(ConfigError, match="QWATCH_HEALTH_MAX_SILENCE"):
        config.load(CommonConfig, {"QWATCH_HEALTH_MAX_SILENCE": "0"})


def test_secrets_never_show_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "QWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "QWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "QWATCH_KAFKA_SASL_USERNAME": "qwatch",
        "QWATCH_KAFKA_SASL_PASSWORD": "hunter2-very-secret",
    }
    cfg = config.load(KafkaConfig, env, "KAFKA_")
    logging.getLogger("qwatch.test").warning("config: %s %r", cfg, cfg)
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)
    assert "hunter2" not in caplog.text
    assert cfg.sasl_password.reveal() == "hunter2-very-secret"
    assert cfg.client_kwargs()["sasl_plain_password"] == "hunter2-very-secret"
    assert repr(Secret("x")) == "Secret('***')"


def test_registered_configs_have_help_for_every_field() -> None:
    import qwatch.runtime  # noqa: F401 - registers CommonConfig

    for cls, prefix in config.REGISTERED:
        for var, _default, text in config.describe(cls, prefix):
            assert var.startswith("QWATCH_")
            assert text, f"{var} needs help text"

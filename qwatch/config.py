"""Typed, frozen configuration loaded from ``QWATCH_*`` environment variables and CLI flags.

Each component declares one frozen dataclass; every field maps to exactly one variable (``QWATCH_`` + prefix + the
upper-cased field name) and to one Helm value, so an operator reads the same names everywhere. Nothing below the
CLI reads ``os.environ``: the CLI builds configs once and passes them in.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from qwatch.errors import UsageError

T = TypeVar("T")


class ConfigError(UsageError):
    """A bad setting; the message is one line that names the variable and says what is expected."""


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or logs; call ``reveal()`` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that must hand it to a client library."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def env_name(prefix: str, field: str) -> str:
    """``QWATCH_`` + prefix + FIELD: the one spelling shared by env, docs and Helm values."""
    return f"QWATCH_{prefix}{field}".upper()


def _convert(raw: str, tp: Any, var: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if type(None) in args:
        if raw == "":
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
    try:
        if tp is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("expected true or false")
        if tp is int:
            return int(raw)
        if tp is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("expected a finite number")
            return value
        if tp is Secret:
            return Secret(raw)
        if tp is Path:
            return Path(raw).expanduser()
        if origin is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if tp is str:
            return raw
    except ValueError as exc:
        raise ConfigError(f"{var}={raw!r}: {exc}; expected {getattr(tp, '__name__', tp)}") from None
    raise ConfigError(f"{var}: unsupported setting type {tp}")


def load(cls: type[T], env: Mapping[str, str], prefix: str = "", overrides: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` from defaults, then ``QWATCH_<PREFIX><FIELD>`` variables, then non-None CLI overrides.

    Validation lives in the dataclass's ``__post_init__``, which raises ConfigError naming the variable.
    """
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        var = env_name(prefix, f.name)
        if overrides and overrides.get(f.name) is not None:
            kwargs[f.name] = overrides[f.name]
        elif var in env:
            kwargs[f.name] = _convert(env[var], hints[f.name], var)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


REGISTERED: list[tuple[type, str]] = []
"""Every component config class with its variable prefix; the Helm values test walks this list."""


def component(prefix: str) -> Any:
    """Class decorator recording a config class and its ``QWATCH_<prefix>`` so docs and Helm stay in step."""

    def wrap(cls: type[T]) -> type[T]:
        REGISTERED.append((cls, prefix))
        return cls

    return wrap


def require(condition: bool, prefix: str, field: str, message: str) -> None:
    """Raise the one-line ConfigError used by every ``__post_init__`` check."""
    if not condition:
        raise ConfigError(f"{env_name(prefix, field)}: {message}")


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(variable, default, help) rows, for ``--help`` epilogs and the README's configuration table."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else ""
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        rows.append((env_name(prefix, f.name), repr(default) if default != "" else "", f.metadata.get("help", "")))
    return rows


@component("KAFKA_")
@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    """How every component reaches Kafka; SASL and TLS settings map onto the Helm chart's Secret."""

    bootstrap: str = dataclasses.field(default="", metadata={"help": "host:port list; empty = embedded local broker"})
    security_protocol: str = dataclasses.field(
        default="PLAINTEXT", metadata={"help": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"}
    )
    sasl_mechanism: str = dataclasses.field(default="", metadata={"help": "e.g. SCRAM-SHA-512"})
    sasl_username: str = dataclasses.field(default="", metadata={"help": "SASL user"})
    sasl_password: Secret = dataclasses.field(default_factory=Secret, metadata={"help": "SASL password (secret)"})
    ssl_cafile: str = dataclasses.field(default="", metadata={"help": "CA bundle for TLS to the brokers"})
    client_id: str = dataclasses.field(default="qwatch", metadata={"help": "Kafka client.id prefix"})

    def __post_init__(self) -> None:
        protocols = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        require(
            self.security_protocol in protocols,
            "KAFKA_",
            "security_protocol",
            f"one of {', '.join(protocols)}",
        )
        if self.security_protocol.startswith("SASL"):
            require(bool(self.sasl_mechanism), "KAFKA_", "sasl_mechanism", "required with SASL")
            require(bool(self.sasl_username), "KAFKA_", "sasl_username", "required with SASL")
        else:
            # SASL settings under PLAINTEXT or SSL would be silently ignored by the client, which then connects
            # unauthenticated: refuse, naming the first variable that is set, and say what to change.
            for name, value in (
                ("sasl_mechanism", self.sasl_mechanism),
                ("sasl_username", self.sasl_username),
                ("sasl_password", self.sasl_password),
            ):
                require(
                    not value,
                    "KAFKA_",
                    name,
                    f"is set but QWATCH_KAFKA_SECURITY_PROTOCOL is {self.security_protocol}, so it would be ignored "
                    "and the connection left unauthenticated; use SASL_SSL (or SASL_PLAINTEXT), or unset it",
                )

    def client_kwargs(self) -> dict[str, Any]:
        """kafka-python keyword arguments shared by producers, consumers and admin clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.reveal(),
            )
        if self.ssl_cafile:
            kwargs["ssl_cafile"] = self.ssl_cafile
        # TLS verification stays on: kafka-python checks hostnames by default and we never turn that off.
        return kwargs

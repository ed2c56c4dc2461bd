"""Settings of a run, from the Lambda environment or the CLI, validated up front.

Values that end up in object keys (prefixes) are checked here, at cold start, so no
configuration can write outside the lake layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dmd.lake import layout
from dmd.lake.formats import DEFAULT_FORMAT, FORMATS
from dmd.lake.layout import DEFAULT_STATE_PREFIX
from dmd.lake.metrics import DEFAULT_NAMESPACE, NAMESPACE_PATTERN
from dmd.lake.storage import S3Policy, bucket_problem, endpoint_problem

CODECS: dict[str, tuple[str, ...]] = {f.name: f.codecs for f in FORMATS.values()}  # first = default
# S3 "safe characters" only, segments separated by single slashes: no "..", no leading "/".
_PREFIX = re.compile(r"[A-Za-z0-9_.*'()!-]+(/[A-Za-z0-9_.*'()!-]+)*\Z")
_NAMESPACE = re.compile(NAMESPACE_PATTERN)

# Environment variables of the Lambda handler, with their defaults (None = required).
ENVIRONMENT: dict[str, str | None] = {
    "DMD_BUCKET": None,
    "DMD_PREFIX": "archive",
    "DMD_ERRORS_PREFIX": "errors",
    # where each batch records the partitions it wrote, for the compactor; empty: not recorded
    "DMD_STATE_PREFIX": DEFAULT_STATE_PREFIX,
    "DMD_FORMAT": DEFAULT_FORMAT,
    "DMD_CODEC": "",  # empty: the format's default (parquet: snappy, avro: deflate)
    "DMD_SOURCE_SYSTEM_ID": "demand-capture",
    "DMD_S3_ENDPOINT": "",  # empty: AWS's endpoint
    "DMD_LOG_LEVEL": "INFO",
    "DMD_METRICS_NAMESPACE": DEFAULT_NAMESPACE,  # CloudWatch namespace of the EMF metrics
    # S3 requests: attempts in total (standard retry mode) and timeouts in seconds
    "DMD_S3_MAX_ATTEMPTS": "4",
    "DMD_S3_CONNECT_TIMEOUT": "5",
    "DMD_S3_READ_TIMEOUT": "20",
}


class ConfigError(ValueError):
    """Bad configuration; the message lists every bad setting."""


@dataclass(frozen=True)
class Settings:
    format: str = DEFAULT_FORMAT
    codec: str = ""
    prefix: str = "archive"
    errors_prefix: str = "errors"
    source_system_id: str = "demand-capture"
    # The compactor's state prefix: each batch puts one marker there naming the partitions it
    # writes (dmd.lake.compact finds its work from them). "" records nothing.
    state_prefix: str = DEFAULT_STATE_PREFIX
    record_settings: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(f"format {self.format!r} must be one of {', '.join(FORMATS)}")
        else:
            if not self.codec:
                object.__setattr__(self, "codec", FORMATS[self.format].default_codec)
            if self.codec not in CODECS[self.format]:
                problems.append(
                    f"codec {self.codec!r} must be one of {', '.join(CODECS[self.format])} for {self.format}"
                )
        for name in ("prefix", "errors_prefix", "state_prefix"):
            value = getattr(self, name)
            if name == "state_prefix" and not value:
                continue
            if not _PREFIX.match(value) or ".." in value.split("/") or "." in value.split("/"):
                problems.append(
                    f"{name} {value!r} must be one or more '/'-separated segments of letters, digits and _.*'()!- "
                    "(no leading or trailing '/', no '.' or '..' segments)"
                )
        a, b = self.prefix + "/", self.errors_prefix + "/"
        if a.startswith(b) or b.startswith(a):  # an expiry on the error prefix would delete the archive
            problems.append(
                f"prefix {self.prefix!r} and errors_prefix {self.errors_prefix!r} must not contain one another"
            )
        elif (longest := layout.longest_key_bytes(self.prefix, self.errors_prefix)) > layout.MAX_KEY_BYTES:
            problems.append(
                f"prefixes too long: keys under them would reach {longest} bytes, over S3's {layout.MAX_KEY_BYTES}"
            )
        for name in ("prefix", "errors_prefix"):
            a, b = getattr(self, name) + "/", self.state_prefix + "/"
            if self.state_prefix and (a.startswith(b) or b.startswith(a)):
                problems.append(f"state_prefix {self.state_prefix!r} and {name} must not contain one another")
        if not self.source_system_id:
            problems.append("source_system_id must not be empty")
        if problems:
            raise ConfigError("; ".join(problems))
        # What generated decoders read for `"added": "config"` fields.
        object.__setattr__(self, "record_settings", {"source_system_id": self.source_system_id})


@dataclass(frozen=True)
class LambdaConfig:
    settings: Settings
    bucket: str
    endpoint_url: str | None
    log_level: str
    s3_policy: S3Policy = field(default_factory=S3Policy)
    metrics_namespace: str = DEFAULT_NAMESPACE


def from_environment(environ: Mapping[str, str]) -> LambdaConfig:
    """The handler's configuration; raises ConfigError naming each bad variable."""
    values = {name: environ.get(name, default or "") for name, default in ENVIRONMENT.items()}
    problems = []
    if not values["DMD_BUCKET"]:
        problems.append("DMD_BUCKET is required")
    elif problem := bucket_problem(values["DMD_BUCKET"]):
        problems.append(f"DMD_BUCKET {values['DMD_BUCKET']!r} is not a valid S3 bucket name: {problem}")
    if values["DMD_LOG_LEVEL"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"DMD_LOG_LEVEL {values['DMD_LOG_LEVEL']!r} must be DEBUG, INFO, WARNING or ERROR")
    endpoint = values["DMD_S3_ENDPOINT"] or None
    if endpoint and (problem := endpoint_problem(endpoint)):
        problems.append(f"DMD_S3_ENDPOINT {endpoint!r}: {problem}")
    policy = _s3_policy(values, problems)
    namespace = values["DMD_METRICS_NAMESPACE"]
    if not _NAMESPACE.match(namespace):
        problems.append(f"DMD_METRICS_NAMESPACE {namespace!r} must be 1 to 255 of letters, digits and .-_/#:")
    settings = None
    try:
        settings = Settings(
            format=values["DMD_FORMAT"],
            codec=values["DMD_CODEC"],
            prefix=values["DMD_PREFIX"],
            errors_prefix=values["DMD_ERRORS_PREFIX"],
            source_system_id=values["DMD_SOURCE_SYSTEM_ID"],
            state_prefix=values["DMD_STATE_PREFIX"],
        )
    except ConfigError as e:
        problems.append(str(e))
    if problems or settings is None:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return LambdaConfig(settings, values["DMD_BUCKET"], endpoint, values["DMD_LOG_LEVEL"].upper(), policy, namespace)


def _s3_policy(values: Mapping[str, str], problems: list[str]) -> S3Policy:
    """Bounded: 1 to 10 attempts, timeouts of 0.1 to 900 s (Lambda's own limit)."""
    parsed: dict[str, float] = {}
    for name, lo, hi in (
        ("DMD_S3_MAX_ATTEMPTS", 1, 10),
        ("DMD_S3_CONNECT_TIMEOUT", 0.1, 900),
        ("DMD_S3_READ_TIMEOUT", 0.1, 900),
    ):
        try:
            value = float(values[name])
        except ValueError:
            value = float("nan")
        if not lo <= value <= hi or (name == "DMD_S3_MAX_ATTEMPTS" and value != int(value)):
            problems.append(f"{name} {values[name]!r} must be a number from {lo} to {hi}")
            parsed[name] = hi
        else:
            parsed[name] = value
    return S3Policy(int(parsed["DMD_S3_MAX_ATTEMPTS"]), parsed["DMD_S3_CONNECT_TIMEOUT"], parsed["DMD_S3_READ_TIMEOUT"])

"""The one choke point for cloud calls: settings, sessions, endpoints, eucarc, retries, stats.

Everything recon sends to a cloud goes through :meth:`Cloud.call` (or :meth:`Cloud.paginate`,
which is built on it). That is where

- endpoints are chosen (Eucalyptus front-end URL layout, eucarc variables, explicit URLs),
- credentials are chosen (environment keys, eucarc keys, profiles), never printed,
- each HTTP attempt has a wall-clock deadline and the whole call a budget
  (:mod:`reconciler.deadline`; ``[cloud] timeout`` / ``RECON_CALL_TIMEOUT``),
- transient failures (throttling, 5xx, connection errors, no answer in time) are retried with
  exponential backoff and full jitter by tenacity -- botocore's own retries are switched off so
  that there is exactly one retry layer and :class:`CallStats` sees every HTTP attempt,
- a successful reply that is not the service's protocol (an HTML page) is refused before
  botocore reads it as an empty result (:mod:`reconciler.replies`),
- botocore errors become :class:`~reconciler.errors.CloudError` naming the call, the
  cloud's error code and message, and a hint where one helps.

The Eucalyptus properties service has no botocore model of its own; recon ships one in
``reconciler/models`` and adds that folder to the loader of the botocore session it makes.
"""

from __future__ import annotations

import difflib
import io
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import botocore.session
import jmespath
from botocore.config import Config
from botocore.parsers import ResponseParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    CredentialRetrievalError,
    DataNotFoundError,
    EndpointProviderError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError as BotoSSLError,
)
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_random_exponential

from reconciler import __version__, models
from reconciler.crashpoints import CrashPoints, is_mutating
from reconciler.deadline import DEFAULT_TIMEOUT, MAX_TIMEOUT, MIN_TIMEOUT, Deadline, NoAnswer, run_attempt, timeout_setting
from reconciler.errors import CloudError, ConfigError
from reconciler.redact import remember
from reconciler.replies import NotTheProtocol, check_reply
from reconciler.schema import Field

try:  # urllib3 is always there with botocore; be defensive about its layout anyway.
    from urllib3.exceptions import ProtocolError as _Urllib3ProtocolError
except ImportError:  # pragma: no cover
    _Urllib3ProtocolError = ()  # type: ignore[assignment]

__all__ = [
    "SERVICES",
    "CLOUD_FIELDS",
    "CLOUD_KEYS",
    "DEFAULT_REGION",
    "DEFAULT_EUCALYPTUS_VERSION",
    "Endpoints",
    "CloudSettings",
    "resolve_settings",
    "describe_path",
    "parse_version",
    "CallStats",
    "RetryPolicy",
    "Cloud",
    "is_transient",
]

log = logging.getLogger(__name__)

SERVICES = ("ec2", "s3", "elb", "properties")
"""The services recon talks to, by botocore service name."""

CLOUD_FIELDS = {
    "endpoint": Field("string", "Eucalyptus front end, e.g. http://clc:8773; service URLs are derived.",
                      references=False),
    "compute": Field("string", "EC2 API URL (overrides endpoint).", references=False),
    "objectstorage": Field("string", "S3 API URL (overrides endpoint).", references=False),
    "loadbalancing": Field("string", "ELB API URL (overrides endpoint).", references=False),
    "properties": Field("string", "Properties API URL (overrides endpoint).", references=False),
    "region": Field("string", "Region name used in signatures.", references=False),
    "eucalyptus_version": Field("string", "Cloud version: selects property names and API paths.",
                                references=False),
    "properties_signature": Field("string", "Signature for the properties API.", choices=("v4", "v2"),
                                  references=False),
    "ca_bundle": Field("string", "PEM file of the CA that signed the cloud's certificate.",
                       references=False),
    "profile": Field("string", "AWS shared-credentials profile.", references=False),
    "timeout": Field("integer", "Seconds one attempt of a cloud call may take (default 90; the call with its "
                     "retries up to three times that). RECON_CALL_TIMEOUT sets it too.",
                     minimum=MIN_TIMEOUT, maximum=MAX_TIMEOUT, references=False),
}
"""The keys a ``[cloud]`` table may hold: the desired-state file's schema of it (config.py checks
files against it); :func:`resolve_settings` checks the values."""
CLOUD_KEYS = tuple(CLOUD_FIELDS)

DEFAULT_REGION = "eucalyptus"
DEFAULT_EUCALYPTUS_VERSION = "4.0"
PROPERTIES_SIGNATURES = ("v4", "v2")

MAX_POOL_CONNECTIONS = 32  # above the default --parallelism, so no pool-full churn

# The [cloud] key (and Endpoints field) that holds each service's URL.
_SERVICE_KEY = {
    "ec2": "compute",
    "s3": "objectstorage",
    "elb": "loadbalancing",
    "properties": "properties",
}

_UNREACHABLE_HINT = (
    "is the cloud reachable? source your eucarc? "
    "(or set [cloud].endpoint to the front end, e.g. http://clc:8773)"
)
_NOT_THE_SERVICE_HINT = "is the URL right for this Eucalyptus version? is a proxy or another web server in the way?"
_CREDENTIALS_HINT = (
    "set EC2_ACCESS_KEY and EC2_SECRET_KEY (source your eucarc), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or name a profile with [cloud].profile or AWS_PROFILE"
)
_DEFAULT_CHAIN = "botocore's default credential chain"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Endpoints:
    """Service URLs; ``None`` means botocore's default (plain AWS)."""

    compute: str | None = None
    objectstorage: str | None = None
    loadbalancing: str | None = None
    properties: str | None = None
    """ModifyPropertyValue (always ``/services/Properties`` on a Eucalyptus front end)."""
    properties_describe: str | None = None
    """DescribeProperties: ``/services/Empyrean`` on 4.0/4.1, ``/services/Configuration``
    on 3.x, ``/services/Properties`` on 4.2+."""

    def for_service(self, service: str) -> str | None:
        """The URL of one of :data:`SERVICES` (``properties`` = the modify URL)."""
        try:
            return getattr(self, _SERVICE_KEY[service])
        except KeyError:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}") from None


@dataclass(frozen=True)
class CloudSettings:
    """Where and how to reach the cloud. Holds no secrets: its repr is printed in debug output."""

    endpoints: Endpoints
    region: str = DEFAULT_REGION
    eucalyptus_version: str = DEFAULT_EUCALYPTUS_VERSION
    properties_signature: str = "v4"
    ca_bundle: str | None = None
    profile: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    """Seconds one attempt of a call may take (see :class:`~reconciler.deadline.Deadline`)."""

    @property
    def version_info(self) -> tuple[int, int]:
        """``eucalyptus_version`` as ``(major, minor)``, e.g. ``(4, 2)``; ``"5"`` is ``(5, 0)``."""
        return parse_version(self.eucalyptus_version)


_VERSION_RE = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)*$")


def parse_version(version: str) -> tuple[int, int]:
    """``"4.2"`` → ``(4, 2)``. Known: 3.x, 4.0–4.4, 5.x. Raises ``ValueError`` otherwise."""
    match = _VERSION_RE.match(str(version).strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major in (3, 5) or (major == 4 and minor <= 4):
        return major, minor
    raise ValueError(f"unknown Eucalyptus version {version!r}")


def describe_path(version: str) -> str:
    """The path DescribeProperties is served at on a front end of this Eucalyptus version."""
    major, minor = parse_version(version)
    if major < 4:
        return "/services/Configuration"
    if (major, minor) < (4, 2):
        return "/services/Empyrean"
    return "/services/Properties"


def _service_paths(version: str) -> dict[str, str]:
    """Front-end paths per ``[cloud]`` service key for this version."""
    major, _ = parse_version(version)
    if major < 4:  # 3.x: EC2 was "Eucalyptus", S3 was Walrus
        compute, objectstorage = "/services/Eucalyptus", "/services/Walrus"
    else:
        compute, objectstorage = "/services/compute", "/services/objectstorage"
    return {
        "compute": compute,
        "objectstorage": objectstorage,
        "loadbalancing": "/services/LoadBalancing",
        "properties": "/services/Properties",
        "properties_describe": describe_path(version),
    }


# Environment variables naming a service URL, in precedence order (eucarc first).
_ENV_URLS = {
    "compute": ("EC2_URL", "AWS_ENDPOINT_URL_EC2"),
    "objectstorage": ("S3_URL", "AWS_ENDPOINT_URL_S3"),
    "loadbalancing": ("AWS_ELB_URL", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING"),
    "properties": ("EUCA_PROPERTIES_URL",),
}
# A compute URL ending like this names its front end (4.x layout, then 3.x).
_COMPUTE_SUFFIXES = ("/services/compute", "/services/Eucalyptus")
_REGION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_url(value: str, where: str, *, front_end: bool = False) -> str:
    try:
        parts = urlsplit(value)
        parts.port    # raises for a port that is not a number or out of range
    except ValueError as exc:   # e.g. "http://[::1" (an unclosed IPv6 address)
        raise ConfigError(f"{value!r} is not a valid URL: {exc}", where=where) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{value!r} is not an http(s) URL",
            where=where,
            hint="write it like http://clc.example.internal:8773" + ("" if front_end else "/services/compute"),
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{value!r}: a service URL takes no query or fragment", where=where)
    if front_end:
        path = parts.path.rstrip("/")
        if re.search(r"/services/[^/]+$", path):
            raise ConfigError(
                f"{value!r} is a service URL, not the front end",
                where=where,
                hint="give the front end only (e.g. http://clc:8773); "
                "set compute / objectstorage / loadbalancing / properties for single services",
            )
        return value.rstrip("/")
    return value


def _file_string(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {type(value).__name__}", where=f"[cloud].{key}")
    value = value.strip()
    if not value:
        raise ConfigError("must not be empty", where=f"[cloud].{key}")
    return value


def _env_string(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    return value or None


def resolve_settings(cloud_table: Mapping[str, Any] | None, env: Mapping[str, str], base_dir: Path) -> CloudSettings:
    """Work out the :class:`CloudSettings` from the ``[cloud]`` table and the environment.

    Precedence, per value: a key in the file, then the environment (the variables a sourced
    Eucalyptus ``eucarc`` exports, then the usual AWS ones), then the default. Service URLs:
    explicit ``[cloud].<service>`` > derived from ``[cloud].endpoint`` > ``EC2_URL`` /
    ``S3_URL`` / ``AWS_ELB_URL`` / ``EUCA_PROPERTIES_URL`` (then ``AWS_ENDPOINT_URL_<SVC>``) >
    derived from the front end that ``EC2_URL`` names > ``None`` (botocore's default).
    An explicit properties URL (``[cloud].properties`` or ``EUCA_PROPERTIES_URL``) serves both
    DescribeProperties and ModifyPropertyValue.

    Raises :class:`ConfigError` naming the key (``[cloud].KEY``) or variable for bad values.
    """
    table = dict(cloud_table or {})
    for key in table:
        if key not in CLOUD_KEYS:
            near = difflib.get_close_matches(str(key), CLOUD_KEYS, n=1)
            raise ConfigError(
                f"unknown key {key!r}",
                where=f"[cloud].{key}",
                hint=f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(CLOUD_KEYS)}",
            )

    # eucalyptus_version first: the derived paths depend on it.
    raw_version = table.get("eucalyptus_version", DEFAULT_EUCALYPTUS_VERSION)
    if isinstance(raw_version, bool) or not isinstance(raw_version, (str, int, float)):
        raise ConfigError(
            f"must be a string like \"4.0\", not {type(raw_version).__name__}", where="[cloud].eucalyptus_version"
        )
    version = str(raw_version).strip()
    try:
        parse_version(version)
    except ValueError:
        raise ConfigError(
            f"unknown Eucalyptus version {version!r}",
            where="[cloud].eucalyptus_version",
            hint='use one of "3.4", "4.0", "4.1", "4.2", "4.3", "4.4", "5"',
        ) from None
    paths = _service_paths(version)

    front_end = _file_string(table, "endpoint")
    if front_end is not None:
        front_end = _check_url(front_end, "[cloud].endpoint", front_end=True)

    explicit = {}
    for key in ("compute", "objectstorage", "loadbalancing", "properties"):
        value = _file_string(table, key)
        explicit[key] = _check_url(value, f"[cloud].{key}") if value is not None else None

    from_env = {}
    for key, names in _ENV_URLS.items():
        from_env[key] = None
        for name in names:
            value = _env_string(env, name)
            if value is not None:
                from_env[key] = _check_url(value, f"environment variable {name}")
                break
    env_front_end = None
    if from_env["compute"]:
        compute = from_env["compute"].rstrip("/")
        for suffix in _COMPUTE_SUFFIXES:
            if compute.endswith(suffix):
                env_front_end = compute[: -len(suffix)]
                break

    def pick(key: str) -> str | None:
        explicit_key = "properties" if key == "properties_describe" else key
        if explicit[explicit_key]:
            return explicit[explicit_key]
        if front_end:
            return front_end + paths[key]
        if from_env[explicit_key]:
            return from_env[explicit_key]
        if env_front_end:
            return env_front_end + paths[key]
        return None

    endpoints = Endpoints(
        compute=pick("compute"),
        objectstorage=pick("objectstorage"),
        loadbalancing=pick("loadbalancing"),
        properties=pick("properties"),
        properties_describe=pick("properties_describe"),
    )

    region = _file_string(table, "region")
    region_where = "[cloud].region"
    if region is None:
        for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            region = _env_string(env, name)
            if region:
                region_where = f"environment variable {name}"
                break
    region = region or DEFAULT_REGION
    if not _REGION_RE.match(region):
        raise ConfigError(f"{region!r} is not a region name", where=region_where)

    signature = _file_string(table, "properties_signature") or "v4"
    if signature.lower() not in PROPERTIES_SIGNATURES:
        raise ConfigError(
            f"unknown signature {signature!r}",
            where="[cloud].properties_signature",
            hint='use "v4" (default) or "v2" (HmacSHA256, for 4.0/4.1 clouds)',
        )
    signature = signature.lower()

    ca_bundle = _file_string(table, "ca_bundle")
    if ca_bundle is not None:
        try:
            path = Path(ca_bundle).expanduser()
            if not path.is_absolute():
                path = Path(base_dir) / path
            found = path.is_file()
        except (OSError, RuntimeError) as exc:   # a name too long, ~user without a home
            raise ConfigError(f"cannot use {ca_bundle[:80]!r}: {getattr(exc, 'strerror', None) or exc}",
                              where="[cloud].ca_bundle") from None
        if not found:
            raise ConfigError(f"no such file: {str(path)!r}", where="[cloud].ca_bundle",
                              hint="the path is relative to the desired-state file")
        ca_bundle = str(path)
    else:
        ca_bundle = _env_string(env, "AWS_CA_BUNDLE")

    profile = _file_string(table, "profile") or _env_string(env, "AWS_PROFILE")

    return CloudSettings(
        endpoints=endpoints,
        region=region,
        eucalyptus_version=version,
        properties_signature=signature,
        ca_bundle=ca_bundle,
        profile=profile,
        timeout=timeout_setting(table.get("timeout"), env),
    )


# --------------------------------------------------------------------------- stats and retries


class CallStats:
    """Counts of HTTP requests sent and retried, and seconds per phase. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._retries = 0
        self._operations: Counter[str] = Counter()
        self._phases: dict[str, float] = {}

    @property
    def calls(self) -> int:
        """HTTP requests actually sent (each retry attempt counts)."""
        with self._lock:
            return self._calls

    @property
    def retries(self) -> int:
        """Attempts that failed transiently and were retried."""
        with self._lock:
            return self._retries

    def record_call(self, operation: str) -> None:
        """One HTTP request of ``operation`` (``"ec2.DescribeKeyPairs"``) was sent."""
        with self._lock:
            self._calls += 1
            self._operations[operation] += 1

    def record_retry(self) -> None:
        with self._lock:
            self._retries += 1

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall-clock seconds spent inside the block to phase ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._phases[name] = self._phases.get(name, 0.0) + elapsed

    def phases(self) -> dict[str, float]:
        with self._lock:
            return dict(self._phases)

    def by_operation(self) -> dict[str, int]:
        """HTTP requests per operation, ``{"ec2.DescribeKeyPairs": 1, ...}``, sorted by name."""
        with self._lock:
            return dict(sorted(self._operations.items()))

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "calls": self._calls,
                "retries": self._retries,
                "phases": dict(self._phases),
                "operations": dict(sorted(self._operations.items())),
            }

    def __repr__(self) -> str:
        return f"CallStats(calls={self.calls}, retries={self.retries})"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (tenacity ``wait_random_exponential``).

    Attempt *n* (from 1) fails transiently → wait uniformly in
    ``[0, min(maximum, initial * 2**(n-1))]`` seconds, up to ``attempts`` attempts in all.
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("waits must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """Defaults, overridden by ``RECON_RETRY_ATTEMPTS`` / ``RECON_RETRY_INITIAL`` / ``RECON_RETRY_MAX``."""
        values: dict[str, Any] = {}
        for name, field, kind in (
            ("RECON_RETRY_ATTEMPTS", "attempts", int),
            ("RECON_RETRY_INITIAL", "initial", float),
            ("RECON_RETRY_MAX", "maximum", float),
        ):
            raw = _env_string(env, name)
            if raw is None:
                continue
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{raw!r} is not a{'n integer' if kind is int else ' number'}",
                                  where=f"environment variable {name}") from None
            if value < (1 if kind is int else 0) or value != value:  # also rejects NaN
                raise ConfigError(f"{raw!r} is out of range", where=f"environment variable {name}")
            values[field] = value
        return cls(**values)


_THROTTLING_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
})
_TRANSIENT_CODES = _THROTTLING_CODES | {
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
}
_AUTH_CODES = frozenset({
    "AuthFailure",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidSecurity",
    "ExpiredToken",
    "RequestExpired",
    "RequestTimeTooSkewed",
})
_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"})


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` later may succeed: throttling, HTTP 5xx (not 501), connection errors,
    no answer within the attempt's deadline (:class:`~reconciler.deadline.NoAnswer`).

    Validation, authentication, authorization and not-found errors are not transient.
    """
    if isinstance(exc, ClientError):
        response = exc.response or {}
        code = (response.get("Error") or {}).get("Code")
        if code in _TRANSIENT_CODES:
            return True
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status == 429 or (500 <= status < 600 and status != 501)
        return False
    if isinstance(exc, ResponseParserError):
        # An unparseable reply: typically a proxy's or load balancer's plain-text 502/503 page.
        return True
    if isinstance(exc, BotoSSLError):  # a certificate problem does not go away by waiting
        return False
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError,
        # ConnectionClosedError (ProtocolError/reset), ReadTimeoutError, ResponseStreamingError
        return True
    if _Urllib3ProtocolError and isinstance(exc, _Urllib3ProtocolError):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))  # builtins (resets while streaming)


# --------------------------------------------------------------------------- the cloud


_LOADER_LOCK = threading.Lock()
_LOADER: Any = None


def _new_botocore_session():
    """A fresh botocore session whose data loader (shared, with recon's models) is already warm.

    Loading and parsing a service model (EC2's is megabytes of JSON) is most of the cost of
    making a client; sharing the loader makes every Cloud after the first cheap to set up.
    """
    global _LOADER
    session = botocore.session.Session()
    with _LOADER_LOCK:
        if _LOADER is None:
            models.add_to_session(session)
            _LOADER = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _LOADER)
    return session


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = _env_string(env, name)
        if value is not None:
            return name, value
    return None


class Cloud:
    """Sessions and clients for one cloud, and the single place cloud calls are made."""

    def __init__(
        self,
        settings: CloudSettings,
        env: Mapping[str, str],
        *,
        stats: CallStats | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else CallStats()
        self.retry = retry if retry is not None else RetryPolicy.from_env(env)
        self.deadline = Deadline(settings.timeout)
        self.crash_points = CrashPoints.from_env(env)  # test-only, see reconciler/crashpoints.py
        #: Called with "service.Operation" before every call that changes something (see :meth:`fenced`).
        self._fence: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._session, self.credential_source = self._make_session(settings, env)

    def __repr__(self) -> str:
        return f"Cloud(settings={self.settings!r}, credentials={self.credential_source!r})"

    # ---- session and clients

    @staticmethod
    def _make_session(settings: CloudSettings, env: Mapping[str, str]) -> tuple[Any, str]:
        """A private botocore session with recon's models and the chosen credentials.

        Returns it with a description of where the credentials come from (never the keys).
        """
        session = _new_botocore_session()

        def use_profile(profile: str, where: str) -> None:
            # An explicitly set profile also switches off botocore's environment-key provider.
            session.set_config_variable("profile", profile)
            if profile not in session.available_profiles:
                known = ", ".join(sorted(session.available_profiles)) or "none"
                raise ConfigError(f"no profile named {profile!r} in the AWS config files (known: {known})",
                                  where=where)

        env_profile = _env_string(env, "AWS_PROFILE")
        if settings.profile and settings.profile != env_profile:  # [cloud].profile wins over env keys
            use_profile(settings.profile, "[cloud].profile")
            return session, f"profile {settings.profile!r} ([cloud].profile)"

        for kind, key_name, secret_name, token_names in (
            ("AWS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")),
            ("eucarc", "EC2_ACCESS_KEY", "EC2_SECRET_KEY", ()),
        ):
            key, secret = _env_string(env, key_name), _env_string(env, secret_name)
            if key and secret:
                token = _first(env, *token_names)
                remember(secret)
                session.set_credentials(key, secret, token[1] if token else None)
                return session, f"the {kind} variables {key_name} / {secret_name} in the environment"
            if key or secret:
                present, missing = (key_name, secret_name) if key else (secret_name, key_name)
                raise ConfigError(f"{present} is set but {missing} is not", where="environment",
                                  hint=_CREDENTIALS_HINT)

        if settings.profile:
            use_profile(settings.profile, "environment variable AWS_PROFILE")
            return session, f"profile {settings.profile!r} (AWS_PROFILE)"
        return session, _DEFAULT_CHAIN

    def endpoint_url(self, service: str, operation: str | None = None) -> str | None:
        """The URL a call goes to (``None``: botocore's default for the region)."""
        if service == "properties" and operation == "describe_properties":
            return self.settings.endpoints.properties_describe
        return self.settings.endpoints.for_service(service)

    def client(self, service: str):
        """The botocore client for one of :data:`SERVICES`, made once (thread-safe).

        For ``properties`` this is the ModifyPropertyValue endpoint; :meth:`call` sends
        DescribeProperties to the describe endpoint by itself.
        """
        return self._client(service, self.endpoint_url(service))

    def _client_for(self, service: str, operation: str):
        return self._client(service, self.endpoint_url(service, operation))

    def _client(self, service: str, url: str | None):
        key = (service, url)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._clients[key] = self._create_client(service, url)
        return client

    def _create_client(self, service: str, url: str | None):
        if service == "properties" and url is None:
            raise ConfigError(
                "no URL for the Eucalyptus properties service",
                where="[cloud]",
                hint="set [cloud].endpoint (the front end) or [cloud].properties, or EUCA_PROPERTIES_URL",
            )
        options: dict[str, Any] = {
            "connect_timeout": self.deadline.connect,
            "read_timeout": self.deadline.read,
            "retries": {"total_max_attempts": 1, "mode": "standard"},  # tenacity is the only retry layer
            "max_pool_connections": MAX_POOL_CONNECTIONS,
            "user_agent_extra": f"recon/{__version__}",
        }
        if service == "s3":
            options["s3"] = {"addressing_style": "path"}
            options["signature_version"] = "s3v4"
            # Newer botocore adds CRC trailers / aws-chunked bodies by default, which
            # Eucalyptus object storage (and older S3 clones) do not understand.
            for name in ("request_checksum_calculation", "response_checksum_validation"):
                if name in Config.OPTION_DEFAULTS:
                    options[name] = "when_required"
        elif service == "properties":
            options["signature_version"] = "v2" if self.settings.properties_signature == "v2" else "v4"
        kwargs: dict[str, Any] = {"region_name": self.settings.region, "config": Config(**options)}
        if url is not None:
            kwargs["endpoint_url"] = url
        if self.settings.ca_bundle:
            kwargs["verify"] = self.settings.ca_bundle
        try:
            client = self._session.create_client(service, **kwargs)
        except ProfileNotFound as exc:
            raise ConfigError(str(exc), where="[cloud].profile") from exc
        except BotoCoreError as exc:
            raise CloudError(f"cannot make a {service} client: {exc}", where="[cloud]") from exc
        client.meta.events.register("before-send", self._counter(service))
        client.meta.events.register("before-parse", check_reply)
        return client

    def _counter(self, service: str) -> Callable[..., None]:
        stats = self.stats

        def count(event_name: str = "", **_: Any) -> None:
            # event_name is "before-send.<service-id>.<OperationName>"; one per HTTP attempt.
            stats.record_call(f"{service}.{event_name.rsplit('.', 1)[-1]}")

        return count

    # ---- calls

    @contextmanager
    def fenced(self, check: Callable[[str], None]) -> Iterator[None]:
        """While in this block, ``check("service.Operation")`` runs before every call that changes
        something, and may raise to stop it: an apply checks there that it still holds the state
        lock. Calls made with ``fenced=False`` (the state backend's own) are not checked."""
        self._fence = check
        try:
            yield
        finally:
            self._fence = None

    def call(
        self,
        service: str,
        operation: str,
        /,
        *,
        where: str | None = None,
        ignore_codes: Collection[str] = (),
        done_if_retried: Collection[str] = (),
        fenced: bool = True,
        deadline: Deadline | None = None,
        **params: Any,
    ) -> dict | None:
        """Call ``operation`` (botocore method name, ``"describe_key_pairs"``) with ``params``.

        Transient failures are retried per :attr:`retry`, within :attr:`deadline`: an attempt
        without a complete reply by its deadline is one of them. An error whose code is in
        ``ignore_codes`` returns ``None``, and so does one in ``done_if_retried`` on a
        retried attempt: an earlier attempt took effect but its reply was lost (a create
        then says "already exists"). Anything else raises :class:`CloudError`.
        A streamed reply body (``get_object``'s ``Body``) is read within the attempt.
        ``deadline`` replaces the cloud's own bounds for this call (a lease renewal is given less);
        ``fenced=False`` skips the check :meth:`fenced` installs.
        """
        client = self._client_for(service, operation)
        method = getattr(client, operation, None)
        if method is None or operation not in client.meta.method_to_api_mapping:
            raise ValueError(f"{service} has no operation {operation!r}")
        api_name = client.meta.method_to_api_mapping[operation]
        url = client.meta.endpoint_url
        host = urlsplit(url).netloc or url
        deadline = deadline or self.deadline
        fence = self._fence if fenced and is_mutating(api_name) else None
        started = time.monotonic()
        attempts = 0

        def send() -> dict:
            try:
                reply = method(**params)
            except KeyError as exc:  # botocore's parser, on a document without the result element
                raise NotTheProtocol(f"a reply without the <{exc.args[0] if exc.args else '?'}> element") from exc
            body = reply.get("Body")
            if hasattr(body, "read"):
                reply["Body"] = io.BytesIO(body.read())
            return reply

        def still_waiting(waited: float) -> None:
            again = f", attempt {attempts}" if attempts > 1 else ""
            log.info("no answer from %s (%s%s) after %g s, still waiting…", host, api_name, again, waited)

        def attempt() -> dict:
            nonlocal attempts
            if fence is not None:  # every attempt: a retry may come long after the first one
                fence(f"{service}.{api_name}")
            attempts += 1
            return run_attempt(send, deadline.for_attempt(started), notice_after=deadline.notice_after,
                               still_waiting=still_waiting)

        try:
            reply = self._retrying(f"{service}.{api_name}", deadline)(attempt)
            self.crash_points.after(service, api_name)
            return reply
        except NoAnswer as exc:
            raise CloudError(
                f"{api_name} failed: no answer from {host} after {time.monotonic() - started:.0f} s "
                f"({_count(attempts, 'attempt')})",
                where=where, code="Timeout", operation=api_name,
                hint=f"each attempt waits up to {deadline.timeout} s: is the cloud overloaded, or is {url} not it? "
                     "a slow cloud is given longer with [cloud] timeout (or RECON_CALL_TIMEOUT)",
            ) from exc
        except NotTheProtocol as exc:
            raise CloudError(f"{api_name} failed: {url} sent {exc}, not the service's reply", where=where,
                             hint=_NOT_THE_SERVICE_HINT, code="InvalidReply", operation=api_name) from exc
        except ClientError as exc:
            error = exc.response.get("Error") or {}
            code = str(error.get("Code") or "Unknown")
            if code in ignore_codes or (attempts > 1 and code in done_if_retried):
                log.debug("%s.%s: %s ignored (attempt %d)", service, api_name, code, attempts)
                return None
            message = str(error.get("Message") or "").strip()
            refused = f"{self._refused(client)}: " if code in _AUTH_CODES else ""
            text = f"{api_name} failed: {refused}{code}" + (f": {message}" if message else "")
            if attempts > 1:
                text += f" (after {attempts} attempts)"
            raise CloudError(text, where=where, hint=self._hint_for(service, code), code=code,
                             operation=api_name) from exc
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError) as exc:
            raise CloudError(f"{api_name} failed: no usable credentials ({exc})", where=where,
                             hint=_CREDENTIALS_HINT, code="NoCredentials", operation=api_name) from exc
        except BotoSSLError as exc:
            raise CloudError(f"{api_name} failed: TLS error talking to {url}: {exc}", where=where,
                             hint="a private CA is given with [cloud].ca_bundle (or AWS_CA_BUNDLE)",
                             code="SSLError", operation=api_name) from exc
        except ParamValidationError as exc:
            raise CloudError(f"{api_name} failed: invalid parameters: {exc}", where=where,
                             code="ParamValidation", operation=api_name) from exc
        except EndpointProviderError as exc:
            raise CloudError(f"{api_name} failed: no endpoint: {exc}", where=where,
                             hint="set [cloud].endpoint", code="NoEndpoint", operation=api_name) from exc
        except ResponseParserError as exc:
            raise CloudError(
                f"{api_name} failed: {url} sent a reply that is not the service's XML "
                f"(after {_count(attempts, 'attempt')})",
                where=where, hint=_NOT_THE_SERVICE_HINT, code="InvalidReply", operation=api_name,
            ) from exc
        except Exception as exc:
            if is_transient(exc):
                raise CloudError(
                    f"{api_name} failed: cannot reach {url} (after {_count(attempts, 'attempt')}): {exc}",
                    where=where, hint=_UNREACHABLE_HINT, code="ConnectionError", operation=api_name,
                ) from exc
            if isinstance(exc, BotoCoreError):
                raise CloudError(f"{api_name} failed: {exc}", where=where, code=type(exc).__name__,
                                 operation=api_name) from exc
            raise

    def _retrying(self, label: str, deadline: Deadline) -> Retrying:
        policy = self.retry
        stats = self.stats

        def before_sleep(state) -> None:
            stats.record_retry()
            exc = state.outcome.exception() if state.outcome else None
            reason = (exc.response.get("Error") or {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
            log.debug("%s: attempt %d failed (%s), retrying", label, state.attempt_number, reason)

        return Retrying(
            # no attempt starts in the last second of the call's budget
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(deadline.budget - 1),
            wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
            retry=retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _refused(self, client) -> str:
        """Who refused which credentials, from where: never the secret."""
        try:
            credentials = self._session.get_credentials()
        except BotoCoreError:
            credentials = None
        source = self.credential_source
        if source == _DEFAULT_CHAIN and credentials is not None:
            source += f" ({credentials.method})"
        key = f"access key {credentials.access_key} from " if credentials is not None else ""
        return f"{client.meta.endpoint_url} refused the credentials ({key}{source})"

    @staticmethod
    def _hint_for(service: str, code: str) -> str | None:
        if code in _AUTH_CODES:
            return "check the credentials and the clock: " + _CREDENTIALS_HINT
        if code in _DENIED_CODES:
            if service == "properties":
                return "only cloud administrators may read or change cloud properties (use the admin's eucarc)"
            return "the credentials are valid but not allowed to do this"
        return None

    def paginate(self, service: str, operation: str, result_key: str, /, *, where: str | None = None,
                 **params: Any) -> list:
        """All of ``result_key`` over every page of ``operation``.

        Follows botocore's pagination model when the operation has one (else makes one call);
        each page's request is retried on its own. ``result_key`` is a JMESPath expression,
        usually a top-level key (``"KeyPairs"``); ``"Reservations[].Instances[]"`` works too.
        """
        client = self._client_for(service, operation)
        api_name = client.meta.method_to_api_mapping.get(operation)
        if api_name is None:
            raise ValueError(f"{service} has no operation {operation!r}")
        expression = jmespath.compile(result_key)
        config = self._pagination_config(client, api_name)
        if config is None:
            return _items(expression, self.call(service, operation, where=where, **params))

        input_tokens = _as_list(config["input_token"])
        output_tokens = [jmespath.compile(t) for t in _as_list(config["output_token"])]
        more_results = jmespath.compile(config["more_results"]) if config.get("more_results") else None
        request = dict(params)
        items: list = []
        seen: set[str] = set()
        while True:
            page = self.call(service, operation, where=where, **request)
            items.extend(_items(expression, page))
            if more_results is not None and not more_results.search(page):
                break
            tokens = [t.search(page) for t in output_tokens]
            if all(token in (None, "") for token in tokens):
                break
            marker = repr(tokens)
            if marker in seen:
                raise CloudError(f"{api_name} failed: the cloud returned the same page token twice",
                                 where=where, code="PaginationLoop", operation=api_name)
            seen.add(marker)
            for name, token in zip(input_tokens, tokens):
                if token in (None, ""):
                    request.pop(name, None)
                else:
                    request[name] = token
        return items

    def _pagination_config(self, client, api_name: str) -> dict | None:
        model = client.meta.service_model
        loader = self._session.get_component("data_loader")
        try:
            data = loader.load_service_model(model.service_name, "paginators-1", model.api_version)
        except DataNotFoundError:
            return None
        return data.get("pagination", {}).get(api_name)

    # ---- the properties service

    def properties_describe(self, names: Sequence[str] = (), *, where: str | None = None) -> list[dict]:
        """``[{"name", "value", "description"}]`` for the given names or prefixes (all when none)."""
        if isinstance(names, str):
            names = [names]
        params: dict[str, Any] = {"Properties": list(names)} if names else {}
        reply = self.call("properties", "describe_properties", where=where, **params) or {}
        return [
            {"name": item.get("name"), "value": item.get("value"), "description": item.get("description")}
            for item in reply.get("properties") or []
            if item is not None
        ]

    def modify_property(self, name: str, value: str | None = None, *, reset: bool = False,
                        where: str | None = None) -> dict:
        """Set property ``name`` to ``value`` (or back to its default with ``reset=True``).

        Returns ``{"name", "value", "old_value"}`` as the cloud reports them.
        """
        if reset == (value is not None):
            raise ValueError("give either a value or reset=True")
        params: dict[str, Any] = {"Name": name}
        if reset:
            params["Reset"] = True
        else:
            params["Value"] = str(value)
        reply = self.call("properties", "modify_property_value", where=where, **params) or {}
        return {"name": reply.get("name", name), "value": reply.get("value"), "old_value": reply.get("oldValue")}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _items(expression, page: Mapping | None) -> list:
    if not page:
        return []
    found = expression.search(page)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]

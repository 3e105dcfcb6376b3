"""The ``[cloud]`` table and the environment, resolved into :class:`CloudSettings`.

:data:`CLOUD_FIELDS` declares the table's keys; :mod:`reconciler.config` checks a file's
``[cloud]`` table against it (unknown keys, types, choices, bounds) with the rest of the file.
:func:`resolve_settings` takes that checked table and decides the precedence of the file, a
sourced ``eucarc`` and the usual AWS variables; it checks what the fields cannot say (URLs,
versions, region names, the CA file) and every environment variable, naming ``[cloud].KEY`` or
the variable. No network, no secrets: credentials are chosen in :mod:`reconciler.cloud.credentials`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.deadline import DEFAULT_TIMEOUT, MAX_TIMEOUT, MIN_TIMEOUT, timeout_setting
from reconciler.errors import ConfigError
from reconciler.schema import Field

from .endpoints import Endpoints, parse_version, service_paths

PROPERTIES_SIGNATURES = ("v4", "v2")

CLOUD_FIELDS = {
    "endpoint": Field("string", "Eucalyptus front end, e.g. http://clc:8773; service URLs are derived.",
                      references=False),
    "compute": Field("string", "EC2 API URL (overrides endpoint).", references=False),
    "objectstorage": Field("string", "S3 API URL (overrides endpoint).", references=False),
    "loadbalancing": Field("string", "ELB API URL (overrides endpoint).", references=False),
    "autoscaling": Field("string", "Auto Scaling API URL (overrides endpoint): where recon reads and replaces "
                         "load balancers' worker VMs.", references=False),
    "properties": Field("string", "Properties API URL (overrides endpoint).", references=False),
    "region": Field("string", "Region name used in signatures.", references=False),
    "eucalyptus_version": Field("string", "Cloud version: selects property names and API paths.",
                                references=False),
    "properties_signature": Field("string", "Signature for the properties API.", choices=PROPERTIES_SIGNATURES,
                                  references=False),
    "ca_bundle": Field("string", "PEM file of the CA that signed the cloud's certificate.",
                       references=False),
    "profile": Field("string", "AWS shared-credentials profile.", references=False),
    "timeout": Field("integer", "Seconds one attempt of a cloud call may take (default 90; the call with its "
                     "retries up to three times that). RECON_CALL_TIMEOUT sets it too.",
                     minimum=MIN_TIMEOUT, maximum=MAX_TIMEOUT, references=False),
}
"""The keys a ``[cloud]`` table may hold, declared once: the desired-state file's schema of it
(config.py checks files against it, ``recon schema`` prints it)."""

DEFAULT_REGION = "eucalyptus"
DEFAULT_EUCALYPTUS_VERSION = "4.0"


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


# Environment variables naming a service URL, in precedence order (eucarc first).
_ENV_URLS = {
    "compute": ("EC2_URL", "AWS_ENDPOINT_URL_EC2"),
    "objectstorage": ("S3_URL", "AWS_ENDPOINT_URL_S3"),
    "loadbalancing": ("AWS_ELB_URL", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING"),
    "autoscaling": ("AWS_AUTO_SCALING_URL", "AWS_ENDPOINT_URL_AUTO_SCALING"),
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
    """A string key of the checked table, stripped; ``None`` when it is absent."""
    value = table.get(key)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ConfigError("must not be empty", where=f"[cloud].{key}")
    return value


def env_string(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, stripped; ``None`` when it is unset or blank."""
    value = (env.get(name) or "").strip()
    return value or None


def resolve_settings(cloud_table: Mapping[str, Any] | None, env: Mapping[str, str], base_dir: Path) -> CloudSettings:
    """Work out the :class:`CloudSettings` from the ``[cloud]`` table and the environment.

    ``cloud_table`` is a ``[cloud]`` table already checked against :data:`CLOUD_FIELDS` (a
    loaded :class:`~reconciler.config.Stack`'s ``cloud``): its keys are known and its values
    have their declared types.

    Precedence, per value: a key in the file, then the environment (the variables a sourced
    Eucalyptus ``eucarc`` exports, then the usual AWS ones), then the default. Service URLs:
    explicit ``[cloud].<service>`` > derived from ``[cloud].endpoint`` > ``EC2_URL`` /
    ``S3_URL`` / ``AWS_ELB_URL`` / ``AWS_AUTO_SCALING_URL`` / ``EUCA_PROPERTIES_URL`` (then ``AWS_ENDPOINT_URL_<SVC>``) >
    derived from the front end that ``EC2_URL`` names > ``None`` (botocore's default).
    An explicit properties URL (``[cloud].properties`` or ``EUCA_PROPERTIES_URL``) serves both
    DescribeProperties and ModifyPropertyValue.

    Raises :class:`ConfigError` naming the key (``[cloud].KEY``) or variable for bad values.
    """
    table = dict(cloud_table or {})
    version = _version(table)  # first: the derived paths depend on it
    endpoints = _endpoints(table, env, service_paths(version))
    return CloudSettings(
        endpoints=endpoints,
        region=_region(table, env),
        eucalyptus_version=version,
        properties_signature=table.get("properties_signature", "v4"),
        ca_bundle=_ca_bundle(table, env, base_dir),
        profile=_file_string(table, "profile") or env_string(env, "AWS_PROFILE"),
        timeout=timeout_setting(table.get("timeout"), env),
    )


def _version(table: Mapping[str, Any]) -> str:
    """``eucalyptus_version``, checked to be one recon knows."""
    version = table.get("eucalyptus_version", DEFAULT_EUCALYPTUS_VERSION).strip()
    try:
        parse_version(version)
    except ValueError:
        raise ConfigError(
            f"unknown Eucalyptus version {version!r}",
            where="[cloud].eucalyptus_version",
            hint='use one of "3.4", "4.0", "4.1", "4.2", "4.3", "4.4", "5"',
        ) from None
    return version


def _endpoints(table: Mapping[str, Any], env: Mapping[str, str], paths: Mapping[str, str]) -> Endpoints:
    """Each service's URL: from the file (its own key, then the front end), then from the
    environment (its variable, then the front end that EC2_URL names), else None."""
    front_end = _file_string(table, "endpoint")
    if front_end is not None:
        front_end = _check_url(front_end, "[cloud].endpoint", front_end=True)
    explicit = {}
    for key in ("compute", "objectstorage", "loadbalancing", "autoscaling", "properties"):
        value = _file_string(table, key)
        explicit[key] = _check_url(value, f"[cloud].{key}") if value is not None else None
    from_env = {key: _env_url(env, names) for key, names in _ENV_URLS.items()}
    layers = ((explicit, front_end), (from_env, _front_end_of(from_env["compute"])))

    def pick(key: str) -> str | None:
        url_key = "properties" if key == "properties_describe" else key
        for urls, base in layers:
            if urls[url_key]:
                return urls[url_key]
            if base:
                return base + paths[key]
        return None

    return Endpoints(
        compute=pick("compute"),
        objectstorage=pick("objectstorage"),
        loadbalancing=pick("loadbalancing"),
        autoscaling=pick("autoscaling"),
        properties=pick("properties"),
        properties_describe=pick("properties_describe"),
    )


def _env_url(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of these variables that is set, checked as a URL."""
    for name in names:
        value = env_string(env, name)
        if value is not None:
            return _check_url(value, f"environment variable {name}")
    return None


def _front_end_of(compute: str | None) -> str | None:
    """The front end a compute URL names, if it ends like one of a front end's."""
    if not compute:
        return None
    compute = compute.rstrip("/")
    for suffix in _COMPUTE_SUFFIXES:
        if compute.endswith(suffix):
            return compute[: -len(suffix)]
    return None


def _region(table: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The region: from the file, then AWS_DEFAULT_REGION / AWS_REGION, else the default."""
    region = _file_string(table, "region")
    region_where = "[cloud].region"
    if region is None:
        for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            region = env_string(env, name)
            if region:
                region_where = f"environment variable {name}"
                break
    region = region or DEFAULT_REGION
    if not _REGION_RE.match(region):
        raise ConfigError(f"{region!r} is not a region name", where=region_where)
    return region


def _ca_bundle(table: Mapping[str, Any], env: Mapping[str, str], base_dir: Path) -> str | None:
    """The CA bundle named in the file (relative to it, and it must exist), else AWS_CA_BUNDLE."""
    ca_bundle = _file_string(table, "ca_bundle")
    if ca_bundle is None:
        return env_string(env, "AWS_CA_BUNDLE")
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
    return str(path)

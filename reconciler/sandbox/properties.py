"""Eucalyptus' cloud properties service, as the sandbox serves it (DESIGN §6).

Query protocol, ``Version=eucalyptus``: ``DescribeProperties`` (``Property.N``: exact names or
prefixes, none = all) and ``ModifyPropertyValue`` (``Name`` with ``Value``, or ``Reset=true``).
Replies are ``euca:``-namespaced XML documents shaped like the cloud's; errors are AWS query
error documents. Only the cloud administrator's access key may call it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

from werkzeug.wrappers import Response

from .wire import QueryRequest, query_error, request_id, xml_response, xml_text

HIDDEN_VALUE = "********"


@dataclass
class Property:
    name: str
    default: str
    description: str
    value: str | None = None
    hidden: bool = False
    kind: str = "string"  # "string" | "integer" | "boolean"

    def __post_init__(self) -> None:
        if self.value is None:
            self.value = self.default

    @property
    def shown(self) -> str:
        return HIDDEN_VALUE if self.hidden else str(self.value)


# (name suffix, default, kind, description) of the load-balancing properties, by naming scheme.
_LB_40 = [
    ("loadbalancing.loadbalancer_emi", "NULL", "string",
     "EMI containing haproxy and the controller"),
    ("loadbalancing.loadbalancer_instance_type", "m1.small", "string",
     "instance type for loadbalancer instances"),
    ("loadbalancing.loadbalancer_vm_keyname", "", "string",
     "keyname to use when debugging loadbalancer VMs"),
    ("loadbalancing.loadbalancer_vm_ntp_server", "", "string",
     "the address of the NTP server used by loadbalancer VMs"),
    ("loadbalancing.loadbalancer_num_vm", "1", "integer",
     "number of VMs per loadbalancer zone"),
    ("loadbalancing.loadbalancer_restricted_ports", "22", "string",
     "the ports restricted for use as a loadbalancer port. Format should be port(, port) or [port-port]"),
    ("loadbalancing.loadbalancer_dns_subdomain", "lb", "string",
     "loadbalancer dns subdomain"),
    ("loadbalancing.loadbalancer_app_cookie_duration", "24", "integer",
     "duration of app-controlled cookie to be maintained (hours)"),
]

_LB_42 = [
    ("services.loadbalancing.worker.image", "NULL", "string",
     "EMI containing haproxy and the controller"),
    ("services.loadbalancing.worker.instance_type", "m1.small", "string",
     "instance type for loadbalancer instances"),
    ("services.loadbalancing.worker.keyname", "", "string",
     "keyname to use when debugging loadbalancer VMs"),
    ("services.loadbalancing.worker.ntp_server", "", "string",
     "the address of the NTP server used by loadbalancer VMs"),
    ("services.loadbalancing.worker.app_cookie_duration", "24", "integer",
     "duration of app-controlled cookie to be maintained (hours)"),
    ("services.loadbalancing.dns_subdomain", "lb", "string",
     "loadbalancer dns subdomain"),
    ("services.loadbalancing.vm_per_zone", "1", "integer",
     "number of VMs per loadbalancer zone"),
    ("services.loadbalancing.restricted_ports", "22", "string",
     "the ports restricted for use as a loadbalancer port. Format should be port(, port) or [port-port]"),
]

_OTHERS = [
    ("cloud.network.global_max_network_index", "4096", "integer",
     "Maximum network index that can be assigned to a security group"),
    ("cloud.vmstate.instance_timeout", "720", "integer",
     "Amount of time (in minutes) before a VM which is not reported by a cluster will be marked as terminated."),
    ("system.dns.dnsdomain", "localhost", "string",
     "Domain name to use for DNS."),
    ("objectstorage.providerclient", "walrus", "string",
     "Internal S3 provider client class to use for object-storage operations"),
    ("objectstorage.max_buckets_per_account", "100", "integer",
     "Maximum number of buckets per account"),
]

_HIDDEN = [
    ("objectstorage.s3provider.s3secretkey", "", "string",
     "Secret key to use with the external S3 provider (hidden)"),
]


def version_tuple(version: str) -> tuple[int, int]:
    """``"4.0"`` -> ``(4, 0)``; raises ValueError for anything that is not MAJOR.MINOR[.PATCH]."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)*", str(version).strip())
    if not match:
        raise ValueError(f"not a Eucalyptus version: {version!r} (expected e.g. 4.0 or 4.2)")
    return int(match.group(1)), int(match.group(2))


def namespace(version: str) -> str:
    major, minor = version_tuple(version)
    return f"http://msgs.eucalyptus.com/{major}.{minor}.0"


def default_properties(eucalyptus_version: str = "4.0") -> list[Property]:
    """The properties a fresh cloud of that version has, load balancing ones named for it."""
    lb = _LB_42 if version_tuple(eucalyptus_version) >= (4, 2) else _LB_40
    props = [Property(n, d, desc, kind=k) for n, d, k, desc in [*lb, *_OTHERS]]
    props += [Property(n, d, desc, kind=k, hidden=True) for n, d, k, desc in _HIDDEN]
    return props


class PropertyError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class PropertyStore:
    """The cloud's properties, safe to use from many request threads at once."""

    def __init__(self, properties: Iterable[Property]):
        self._lock = threading.Lock()
        self._props: dict[str, Property] = {p.name: p for p in properties}

    def describe(self, selectors: Sequence[str] = ()) -> list[tuple[str, str, str]]:
        """(name, shown value, description) of every property whose name equals or starts with
        one of ``selectors`` (all when there are none), sorted by name."""
        with self._lock:
            chosen = [
                p for p in self._props.values()
                if not selectors or any(p.name == s or p.name.startswith(s) for s in selectors)
            ]
            return [(p.name, p.shown, p.description) for p in sorted(chosen, key=lambda p: p.name)]

    def value(self, name: str) -> str:
        """The real (unmasked) value of ``name``: for the sandbox's own use, never sent out."""
        with self._lock:
            return str(self._lookup(name).value)

    def modify(self, name: str, value: str | None = None, *, reset: bool = False) -> tuple[str, str, str]:
        """Set (or reset to its default) one property; returns (name, shown value, shown old value)."""
        with self._lock:
            prop = self._lookup(name)
            new = prop.default if reset else value
            if new is None:
                raise PropertyError("MissingParameter", "Value or Reset=true is required")
            _check(prop, new)
            old = prop.shown
            prop.value = new
            return prop.name, prop.shown, old

    def _lookup(self, name: str) -> Property:
        prop = self._props.get(name)
        if prop is None:
            raise PropertyError("InvalidParameterValue", f"Cannot find property with name: {name}")
        return prop


def _check(prop: Property, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise PropertyError("InvalidParameterValue", f"Invalid value for {prop.name}: line breaks are not allowed")
    if prop.kind == "integer" and not re.fullmatch(r"-?\d+", value.strip()):
        raise PropertyError("InvalidParameterValue", f"Invalid value for {prop.name}: {value!r} is not an integer")
    if prop.kind == "boolean" and value.strip().lower() not in ("true", "false"):
        raise PropertyError("InvalidParameterValue", f"Invalid value for {prop.name}: {value!r} is not true or false")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


class PropertiesApp:
    """WSGI application answering DescribeProperties and ModifyPropertyValue."""

    def __init__(self, store: PropertyStore, *, admin_access_key: str, eucalyptus_version: str = "4.0"):
        self.store = store
        self.admin_access_key = admin_access_key
        self.namespace = namespace(eucalyptus_version)

    def __call__(self, environ: dict, start_response):
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: dict) -> Response:
        params = QueryRequest.from_environ(environ)
        key = params.access_key
        if not key:
            return query_error("AccessDenied", "Request is not signed: an administrator's access key is required", 403)
        if key != self.admin_access_key:
            return query_error("AccessDenied", f"User with access key {key} is not authorized to access cloud properties", 403)
        handler = {
            "DescribeProperties": self.describe_properties,
            "ModifyPropertyValue": self.modify_property_value,
        }.get(params.action)
        if handler is None:
            if not params.action:
                return query_error("MissingAction", "Missing Action parameter")
            return query_error("InvalidAction", f"The action {params.action} is not valid for this web service.")
        try:
            return handler(params)
        except PropertyError as err:
            return query_error(err.code, err.message, err.status)

    def _document(self, root: str, inner: str) -> Response:
        body = (
            f'<euca:{root} xmlns:euca="{self.namespace}">'
            f"<euca:requestId>{request_id()}</euca:requestId>{inner}</euca:{root}>"
        )
        return xml_response(body)

    def describe_properties(self, params: QueryRequest) -> Response:
        selectors = [s for s in params.members("Property") if s]
        items = "".join(
            "<euca:item>"
            f"<euca:name>{xml_text(name)}</euca:name>"
            f"<euca:value>{xml_text(value)}</euca:value>"
            f"<euca:description>{xml_text(description)}</euca:description>"
            "</euca:item>"
            for name, value, description in self.store.describe(selectors)
        )
        return self._document("DescribePropertiesResponseType", f"<euca:properties>{items}</euca:properties>")

    def modify_property_value(self, params: QueryRequest) -> Response:
        name = params.get("Name")
        if not name:
            raise PropertyError("MissingParameter", "The request must contain the parameter Name")
        reset = _truthy(params.get("Reset"))
        value = params.get("Value")
        if not reset and value is None:
            raise PropertyError("MissingParameter", "The request must contain the parameter Value (or Reset=true)")
        name, shown, old = self.store.modify(name, value, reset=reset)
        inner = (
            f"<euca:name>{xml_text(name)}</euca:name>"
            f"<euca:value>{xml_text(shown)}</euca:value>"
            f"<euca:oldValue>{xml_text(old)}</euca:oldValue>"
        )
        return self._document("ModifyPropertyValueResponseType", inner)

"""Eucalyptus' cloud properties service, as the sandbox serves it (DESIGN §6, §11).

Query protocol, ``Version=eucalyptus``: ``DescribeProperties`` (``Property.N``: exact names or
prefixes, none = all) and ``ModifyPropertyValue`` (``Name`` with ``Value``, or ``Reset=true``).
Replies are ``euca:``-namespaced XML documents shaped like the cloud's. Only the cloud
administrator's access key may call it.

A new value is checked as Eucalyptus' change listeners check it (4.0
``LoadBalancerASGroupCreator``, ``LoadBalancerDnsRecord``; 4.2 the same classes under
``services.loadbalancing``), and refused with their words: the cloud's ``PropertiesManager``
turns the listener's exception into an error whose code is the request type
(``ModifyPropertyValueType``), with HTTP status 406 and, in the request-id element, the
exception chain. The emi and key-name checks ask the compute side through the ``image_exists``
and ``keypair_exists`` callables the store is given.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from werkzeug.wrappers import Response

from .wire import QueryRequest, query_error, request_id, xml_response, xml_text
from .limits import unstorable

HIDDEN_VALUE = "********"


@dataclass
class Property:
    name: str
    default: str
    description: str
    value: str | None = None
    hidden: bool = False
    check: str = ""  # how a new value is checked: a key of _CHECKS, or "" for any text

    def __post_init__(self) -> None:
        if self.value is None:
            self.value = self.default

    @property
    def shown(self) -> str:
        return HIDDEN_VALUE if self.hidden else str(self.value)


# (name, default, check, description) of the load-balancing properties, by naming scheme. In
# 4.0 the number of VMs is a text field nothing checks; the others have a change listener.
_LB_40 = [
    ("loadbalancing.loadbalancer_emi", "NULL", "emi",
     "EMI containing haproxy and the controller"),
    ("loadbalancing.loadbalancer_instance_type", "m1.small", "instance_type",
     "instance type for loadbalancer instances"),
    ("loadbalancing.loadbalancer_vm_keyname", "", "keyname",
     "keyname to use when debugging loadbalancer VMs"),
    ("loadbalancing.loadbalancer_vm_ntp_server", "", "ntp",
     "the address of the NTP server used by loadbalancer VMs"),
    ("loadbalancing.loadbalancer_num_vm", "1", "",
     "number of VMs per loadbalancer zone"),
    ("loadbalancing.loadbalancer_restricted_ports", "22", "",
     "the ports restricted for use as a loadbalancer port. Format should be port(, port) or [port-port]"),
    ("loadbalancing.loadbalancer_dns_subdomain", "lb", "dns",
     "loadbalancer dns subdomain"),
    ("loadbalancing.loadbalancer_app_cookie_duration", "24", "cookie",
     "duration of app-controlled cookie to be maintained (hours)"),
]

_LB_42 = [
    ("services.loadbalancing.worker.image", "NULL", "emi",
     "EMI containing haproxy and the controller"),
    ("services.loadbalancing.worker.instance_type", "m1.small", "instance_type",
     "instance type for loadbalancer instances"),
    ("services.loadbalancing.worker.keyname", "", "keyname",
     "keyname to use when debugging loadbalancer VMs"),
    ("services.loadbalancing.worker.ntp_server", "", "ntp",
     "the address of the NTP server used by loadbalancer VMs"),
    ("services.loadbalancing.worker.app_cookie_duration", "24", "cookie",
     "duration of app-controlled cookie to be maintained (hours)"),
    ("services.loadbalancing.dns_subdomain", "lb", "dns",
     "loadbalancer dns subdomain"),
    ("services.loadbalancing.vm_per_zone", "1", "",
     "number of VMs per loadbalancer zone"),
    ("services.loadbalancing.restricted_ports", "22", "",
     "the ports restricted for use as a loadbalancer port. Format should be port(, port) or [port-port]"),
]

# Fields Eucalyptus declares Integer or Long: their type parser refuses anything else.
_OTHERS = [
    ("cloud.network.global_max_network_index", "4096", "integer",
     "Maximum network index that can be assigned to a security group"),
    ("cloud.vmstate.instance_timeout", "720", "integer",
     "Amount of time (in minutes) before a VM which is not reported by a cluster will be marked as terminated."),
    ("system.dns.dnsdomain", "localhost", "",
     "Domain name to use for DNS."),
    ("objectstorage.providerclient", "walrus", "",
     "Internal S3 provider client class to use for object-storage operations"),
    ("objectstorage.max_buckets_per_account", "100", "integer",
     "Maximum number of buckets per account"),
]

_HIDDEN = [
    ("objectstorage.s3provider.s3secretkey", "", "",
     "Secret key to use with the external S3 provider (hidden)"),
]

DNS_DOMAIN = "system.dns.dnsdomain"


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
    props = [Property(n, d, desc, check=c) for n, d, c, desc in [*lb, *_OTHERS]]
    props += [Property(n, d, desc, check=c, hidden=True) for n, d, c, desc in _HIDDEN]
    return props


def lb_property(eucalyptus_version: str, check: str) -> str:
    """The name of the load-balancing property a cloud of that version checks with ``check``
    (``"emi"``, ``"instance_type"``, ``"keyname"``, ``"dns"``, ...)."""
    lb = _LB_42 if version_tuple(eucalyptus_version) >= (4, 2) else _LB_40
    return next(name for name, _, kind, _ in lb if kind == check)


def vm_per_zone_property(eucalyptus_version: str) -> str:
    """The name of the number-of-worker-VMs-per-zone property (nothing checks its value)."""
    lb = _LB_42 if version_tuple(eucalyptus_version) >= (4, 2) else _LB_40
    return next(name for name, *_ in lb if name.endswith(("num_vm", "vm_per_zone")))


class Refused(Exception):
    """What ``PropertiesManager.modifyProperty`` throws: ``message`` is what the client reads,
    ``causes`` the messages of the exceptions it wraps (shown only in the request-id element)."""

    EXCEPTION = "com.eucalyptus.configurable.ConfigurablePropertyException"
    CAUSE = "com.eucalyptus.util.EucalyptusCloudException"

    def __init__(self, message: str, *causes: str, exception: str = EXCEPTION):
        super().__init__(message)
        self.message, self.causes, self.exception = message, causes, exception

    def response(self) -> Response:
        """The cloud's fault document (``Binding.createRestFault``) for a ModifyPropertyValue."""
        chain = "\n".join([f"{self.exception}: {self.message}",
                            *(f"Caused by: {self.CAUSE}: {cause}" for cause in self.causes)])
        body = ('<?xml version="1.0"?><Response><Errors><Error><Code>ModifyPropertyValueType</Code>'
                f"<Message>{xml_text(self.message)}</Message></Error></Errors>"
                f"<RequestID>{xml_text(chain)}</RequestID></Response>")
        return xml_response(body, 406)


Lookup = Callable[[str], bool]


class PropertyStore:
    """The cloud's properties, safe to use from many request threads at once.

    ``image_exists(image_id)`` and ``keypair_exists(name)`` answer for the compute side whether
    the cloud has that image or key pair (by default: none). ``changed(check, value)`` is told of
    a new value that passed its check and differs from the old one, before it is stored (as the
    cloud's change listeners are); raising ``Refused`` refuses it.
    """

    def __init__(self, properties: Iterable[Property], *, eucalyptus_version: str = "4.0",
                 image_exists: Lookup = lambda _id: False, keypair_exists: Lookup = lambda _name: False,
                 changed: Callable[[str, str], None] = lambda _check, _value: None):
        self._lock = threading.Lock()
        self._props: dict[str, Property] = {p.name: p for p in properties}
        self._v42 = version_tuple(eucalyptus_version) >= (4, 2)
        self._image_exists, self._keypair_exists = image_exists, keypair_exists
        self._changed = changed

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

    def modify(self, name: str, value: str | None = None, *, reset: bool | None = None) -> tuple[str, str, str]:
        """Set one property as ``modifyProperty`` does; returns (name, shown value, shown old value).

        ``reset=True`` sets the default (checked like any value), ``reset=False`` changes
        nothing; otherwise ``value`` is set, the empty string when it is None.
        """
        with self._lock:
            prop = self._lookup(name)
            old = prop.shown
            if reset is False:
                return prop.name, old, old
            new = prop.default if reset else ("" if value is None else value)
            self._check(prop, new)
            if prop.check and new != prop.value:
                self._changed(prop.check, new)
            prop.value = new
            return prop.name, prop.shown, old

    def _lookup(self, name: str) -> Property:
        prop = self._props.get(name)
        if prop is None:  # PropertyDirectory's IllegalAccessException, re-thrown by modifyProperty
            raise Refused(f"Failed to set property: No such property: {name}", exception=Refused.CAUSE)
        return prop

    def _check(self, prop: Property, new: str) -> None:
        if prop.check:
            _CHECKS[prop.check](self, str(prop.value), new)

    # -- the change listeners (4.0 and 4.2 word their refusals differently) ----------------
    def _because(self, what: str, reason: str) -> Refused:
        """4.0 throws "Could not change WHAT" wrapping the reason; 4.2 puts the reason in the message."""
        if self._v42:
            return Refused(f"Could not change {what} due to: {reason}")
        return Refused(f"Could not change {what}", reason)

    def _check_emi(self, current: str, new: str) -> None:
        if new != current and not self._image_exists(new):
            raise self._because("EMI ID", "No such EMI is found in the system")

    def _check_instance_type(self, current: str, new: str) -> None:
        if new == "":
            raise self._because("instance type", "Instance type cannot be unset")

    def _check_keyname(self, current: str, new: str) -> None:
        if new == current or new == "" or self._keypair_exists(new):
            return
        if self._v42:  # 4.2 looks in the ELB system account and says so
            raise Refused(f"Could not change key name due to: The key pair '{new}' does not exist. "
                          f"Do you have keypair {new} that belongs to (eucalyptus)loadbalancing account?")
        raise Refused("Could not change key name", "No such keypair is found in the system")

    def _check_ntp(self, current: str, new: str) -> None:
        if new != "" and not all(_host_specifier(address) for address in new.split(",")):
            raise Refused("Could not change ntp server address", "Invalid address")

    def _check_cookie(self, current: str, new: str) -> None:
        number = java_int(new)
        if number is None:
            raise Refused("Duration must be in number type and bigger than 0 (in hours)")
        if number <= 0:  # 4.0's listener reuses the instance-type listener's words here
            raise Refused("Could not change ELB app cookie duration" if self._v42 else
                          "Could not change instance type")

    def _check_dns(self, current: str, new: str) -> None:
        if not _host_specifier(new):
            raise Refused("Malformed domain name")

    def _check_integer(self, current: str, new: str) -> None:
        if java_int(new) is None:  # Integer.parseInt's NumberFormatException, wrapped by setValue
            raise Refused(f'For input string: "{new}"')


_CHECKS: dict[str, Callable[[PropertyStore, str, str], None]] = {
    "emi": PropertyStore._check_emi,
    "instance_type": PropertyStore._check_instance_type,
    "keyname": PropertyStore._check_keyname,
    "ntp": PropertyStore._check_ntp,
    "cookie": PropertyStore._check_cookie,
    "dns": PropertyStore._check_dns,
    "integer": PropertyStore._check_integer,
}

_JAVA_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DOMAIN_PART = re.compile(r"[A-Za-z0-9_-]*")


def java_int(text: str) -> int | None:
    """``Integer.parseInt(text)``, or None where Java throws NumberFormatException."""
    if not _JAVA_INT.fullmatch(text):
        return None
    number = int(text)
    return number if -2**31 <= number < 2**31 else None


def _host_specifier(address: str) -> bool:
    """Eucalyptus' host-name rule: Guava's ``HostSpecifier.isValid(address + ".com")``.

    That is a domain name (the ``.com`` supplies a public suffix, so an IPv4 address passes as
    well): at most 253 characters, 127 labels of 1 to 63 characters, ASCII ones among letters,
    digits, ``-`` and ``_``, a label neither starting nor ending with ``-`` or ``_``; no port.
    """
    name = f"{address}.com"
    if ":" in name or len(name) > 253:
        return False
    labels = name.split(".")
    return len(labels) <= 127 and all(
        0 < len(label) <= 63
        and _DOMAIN_PART.fullmatch("".join(c for c in label if c.isascii()))
        and label[0] not in "-_" and label[-1] not in "-_"
        for label in labels
    )


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
        refused = unstorable(params)
        if refused:
            return query_error(*refused)
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
        except Refused as err:
            return err.response()

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
        name = params.get("Name")  # left out, the cloud's binding makes it null: no such property
        reset = params.get("Reset")  # the binding's Boolean: only "true" resets
        name, shown, old = self.store.modify(
            "null" if name is None else name, params.get("Value"),
            reset=None if reset is None else reset.strip().lower() == "true")
        inner = (
            f"<euca:name>{xml_text(name)}</euca:name>"
            f"<euca:value>{xml_text(shown)}</euca:value>"
            f"<euca:oldValue>{xml_text(old)}</euca:oldValue>"
        )
        return self._document("ModifyPropertyValueResponseType", inner)

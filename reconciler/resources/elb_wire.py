"""The ELB API's shapes of what a load balancer block says: its listeners and its attributes, to and
from the file's form (lower-case keys, protocols upper-case, the instance protocol filled in)."""

from __future__ import annotations

from typing import Any, Mapping


def listener_key(listener: Mapping[str, Any]) -> tuple:
    return (listener["lb_port"], listener["protocol"])


def canonical_listener(block: Mapping[str, Any]) -> dict[str, Any]:
    listener = {
        "lb_port": block["lb_port"],
        "protocol": block["protocol"].upper(),
        "instance_port": block["instance_port"],
        "instance_protocol": (block.get("instance_protocol") or block["protocol"]).upper(),
    }
    if block.get("ssl_certificate_id"):
        listener["ssl_certificate_id"] = block["ssl_certificate_id"]
    return listener


def api_listener(listener: Mapping[str, Any]) -> dict[str, Any]:
    out = {"LoadBalancerPort": listener["lb_port"], "Protocol": listener["protocol"],
           "InstancePort": listener["instance_port"], "InstanceProtocol": listener["instance_protocol"]}
    if listener.get("ssl_certificate_id"):
        out["SSLCertificateId"] = listener["ssl_certificate_id"]
    return out


def attributes_from_api(reply: Mapping[str, Any]) -> dict[str, Any]:
    attrs = reply.get("LoadBalancerAttributes", {})
    draining = attrs.get("ConnectionDraining", {})
    return {
        "cross_zone_load_balancing": bool(attrs.get("CrossZoneLoadBalancing", {}).get("Enabled", False)),
        "idle_timeout": attrs.get("ConnectionSettings", {}).get("IdleTimeout", 60),
        "connection_draining": bool(draining.get("Enabled", False)),
        "connection_draining_timeout": draining.get("Timeout", 300),
    }


def attributes_to_api(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "cross_zone_load_balancing" in attrs:
        out["CrossZoneLoadBalancing"] = {"Enabled": attrs["cross_zone_load_balancing"]}
    if "idle_timeout" in attrs:
        out["ConnectionSettings"] = {"IdleTimeout": attrs["idle_timeout"]}
    if "connection_draining" in attrs or "connection_draining_timeout" in attrs:
        draining: dict[str, Any] = {"Enabled": attrs.get("connection_draining", True)}
        if "connection_draining_timeout" in attrs:
            draining["Timeout"] = attrs["connection_draining_timeout"]
        out["ConnectionDraining"] = draining
    return out

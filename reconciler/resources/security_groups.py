"""Security groups and their ingress rules (``euca-create-group``, ``euca-authorize``).

Rules are compared as sets of canonical strings such as ``tcp:22 from 0.0.0.0/0``,
``udp:1000-2000 from sg:web`` or ``icmp:8/-1 from 10.0.0.0/8``.

A group recon creates is owned whole: its rule set is exactly the file's. A group
marked ``existing = true`` belongs to the cloud (Eucalyptus makes one per load
balancer, ``euca-internal-ACCOUNT-LBNAME``): recon adds the rules the file declares and
revokes only rules it added before, never rules it did not write; removing such a
group from the file revokes recon's rules and leaves the group.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError, ReconError
from ..schema import Field
from ..text import text_check
from .abilities import Importable, NamesOthers, Preexisting
from .base import Kind, LoadContext, NameUse, Traits
from ..waits import wait_until
from .tags import OWNER, owner_from_tags, ownership_tags

#: How long to wait for a group the cloud makes (Eucalyptus creates it with the load balancer).
EXISTING_GROUP_WAIT = 120.0
#: Eucalyptus (NetworkGroupManager): an EC2-Classic group's name and description are ASCII; a VPC
#: group's are under 256 characters.
GROUP_TEXT_CHARS = 255

PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "all": "-1",
             "6": "tcp", "17": "udp", "1": "icmp", "-1": "-1"}
RULE_RE = re.compile(r"^(tcp|udp|icmp|all)(?::(\S+))? from (\S+)$")

RULE_FIELDS = {
    "protocol": Field("string", "tcp, udp, icmp or all.", required=True, choices=("tcp", "udp", "icmp", "all"),
                      references=False),
    "ports": Field("scalar", 'A port or range ("22", 22, "8000-8080"); for icmp "TYPE" or "TYPE/CODE".',
                   references=False),
    "cidr": Field("string", "Source address range, e.g. 0.0.0.0/0."),
    "group": Field("string", "Source security group name (instead of cidr)."),
}


@dataclass(frozen=True)
class Rule:
    protocol: str  # tcp | udp | icmp | all
    low: int
    high: int
    source: str   # a CIDR, or "sg:NAME"

    def __str__(self) -> str:
        if self.protocol == "all":
            ports = ""
        elif self.protocol == "icmp":
            ports = ":all" if self.low == -1 else f":{self.low}/{self.high}"
        else:
            ports = f":{self.low}" if self.low == self.high else f":{self.low}-{self.high}"
        return f"{self.protocol}{ports} from {self.source}"

    @classmethod
    def parse(cls, text: str) -> "Rule":
        match = RULE_RE.match(text)
        if not match:
            raise ValueError(text)
        protocol, ports, source = match.groups()
        if protocol == "all":
            return cls("all", -1, -1, source)
        if protocol == "icmp":
            if ports in (None, "all"):
                return cls("icmp", -1, -1, source)
            low, _, high = ports.partition("/")
            return cls("icmp", int(low), int(high or -1), source)
        low, _, high = (ports or "").partition("-")
        return cls(protocol, int(low), int(high or low), source)

    def permission(self, group_ids: Mapping[str, str]) -> dict[str, Any]:
        perm: dict[str, Any] = {"IpProtocol": PROTOCOLS[self.protocol]}
        if self.protocol != "all":
            perm.update(FromPort=self.low, ToPort=self.high)
        if self.source.startswith("sg:"):
            name = self.source[3:]
            perm["UserIdGroupPairs"] = [{"GroupId": group_ids[name]} if name in group_ids else {"GroupName": name}]
        else:
            perm["IpRanges"] = [{"CidrIp": self.source}]
        return perm


def rule_from_block(block: Mapping[str, Any], where: str) -> str:
    protocol = block["protocol"]
    if ("cidr" in block) == ("group" in block):
        raise ConfigError("give exactly one of cidr or group", where=where)
    if "cidr" in block and "${" not in block["cidr"]:
        try:
            source = str(ipaddress.ip_network(block["cidr"], strict=False))
        except ValueError:
            raise ConfigError(f"{block['cidr']!r} is not an address range like 10.0.0.0/8", where=f"{where}.cidr")
    elif "cidr" in block:
        source = block["cidr"]
    else:
        source = "sg:" + block["group"]
    ports = str(block.get("ports", "")).strip()
    if protocol == "all":
        if ports not in ("", "all", "-1"):
            raise ConfigError("protocol all takes no ports", where=f"{where}.ports")
        return str(Rule("all", -1, -1, source))
    if protocol == "icmp":
        match = re.fullmatch(r"(-1|all|\d{1,3})(?:/(-1|\d{1,3}))?", ports or "all")
        if not match:
            raise ConfigError(f"{ports!r}: icmp ports are TYPE or TYPE/CODE", where=f"{where}.ports")
        low = -1 if match.group(1) in ("-1", "all") else int(match.group(1))
        high = int(match.group(2)) if match.group(2) else -1
        return str(Rule("icmp", low, high if low != -1 else -1, source))
    match = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", ports)
    if not match:
        raise ConfigError(f"{ports!r} is not a port or a range like 8000-8080", where=f"{where}.ports")
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if not (0 <= low <= high <= 65535):
        raise ConfigError(f"{ports!r}: ports go from 0 to 65535, low to high", where=f"{where}.ports")
    return str(Rule(protocol, low, high, source))


def rule_block(text: str) -> dict[str, Any]:
    """A canonical rule string as the file writes it."""
    rule = Rule.parse(text)
    block: dict[str, Any] = {"protocol": rule.protocol}
    if rule.protocol == "icmp" and rule.low != -1:
        block["ports"] = f"{rule.low}/{rule.high}" if rule.high != -1 else str(rule.low)
    elif rule.protocol in ("tcp", "udp"):
        block["ports"] = str(rule.low) if rule.low == rule.high else f"{rule.low}-{rule.high}"
    if rule.source.startswith("sg:"):
        block["group"] = rule.source[3:]
    else:
        block["cidr"] = rule.source
    return block


def rules_from_permissions(permissions: list[Mapping[str, Any]], names_by_id: Mapping[str, str]) -> list[str]:
    rules = set()
    for perm in permissions:
        protocol = PROTOCOLS.get(str(perm.get("IpProtocol")), str(perm.get("IpProtocol")))
        protocol = "all" if protocol == "-1" else protocol
        low = perm.get("FromPort", -1) if protocol != "all" else -1
        high = perm.get("ToPort", -1) if protocol != "all" else -1
        for ip_range in perm.get("IpRanges", []):
            rules.add(str(Rule(protocol, low, high, ip_range["CidrIp"])))
        for pair in perm.get("UserIdGroupPairs", []):
            name = pair.get("GroupName") or names_by_id.get(pair.get("GroupId", ""), pair.get("GroupId"))
            rules.add(str(Rule(protocol, low, high, f"sg:{name}")))
    return sorted(rules)


class SecurityGroups(Kind, NamesOthers, Preexisting, Importable):
    name = "security_groups"
    noun = "security group"
    fields = {
        "name": Field("string", "The group's name in the cloud (default: the block's name); may be a reference.",
                      check=text_check(GROUP_TEXT_CHARS, ascii_only=True)),
        "description": Field("string", "Group description (changing it replaces the group).",
                             check=text_check(GROUP_TEXT_CHARS, ascii_only=True)),
        "existing": Field("boolean", "The cloud makes this group; recon manages only the rules it declares.",
                          references=False),
        "ingress": Field("list", "Ingress rules.", items=Field("table", fields=RULE_FIELDS)),
    }
    outputs = {"name": "the group's name", "group_id": "the group's id (sg-…)"}
    traits = Traits(
        computed=frozenset({"group_id"}),
        set_attrs=frozenset({"ingress"}),
        owner_tags=True,
        replace_on=frozenset({"description"}),
    )

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        where = f"security_groups.{name}"
        existing = bool(block.get("existing", False))
        if existing and "description" in block:
            raise ConfigError("an existing group's description is the cloud's; remove description",
                              where=f"{where}.description")
        rules = [rule_from_block(rule, f"{where}.ingress[{i}]") for i, rule in enumerate(block.get("ingress", []))]
        attrs: dict[str, Any] = {"name": block.get("name", name), "ingress": sorted(set(rules))}
        if existing:
            attrs["existing"] = True
        else:
            attrs["description"] = block.get("description", f"managed by recon ({ctx.stack})")
        return attrs

    def finalize(self, name, attrs):
        return {**attrs, "ingress": sorted(set(attrs["ingress"]))}

    def named(self, name, attrs):
        sources = {rule.partition(" from ")[2] for rule in attrs["ingress"]}
        return [NameUse("ingress.group", ("security_groups",), source[3:], required=True)
                for source in sorted(sources) if source.startswith("sg:")]

    def creatable(self, name, attrs):
        return not attrs.get("existing")

    def missing_message(self, cloud_name):
        return (f"security group {cloud_name!r} does not exist; an existing = true group is made by the cloud "
                "(reference the load balancer that makes it, or add depends_on)")

    def removal_reason(self, name, prior):
        if prior.get("existing"):
            return "removed from the file: only the rules recon added are revoked, the group is the cloud's"
        return "removed from the file"

    def live_name(self, name, attrs):
        return attrs.get("name", name)

    def compare_view(self, name, desired, live, prior):
        want = {k: v for k, v in desired.items() if k not in ("name", "existing")}
        have = {k: v for k, v in live.items() if k in want}
        if desired.get("existing"):
            managed = set(desired["ingress"]) | set((prior or {}).get("ingress", []))
            have["ingress"] = sorted(set(live.get("ingress", [])) & managed)
        return want, have

    def output(self, name, attrs, attr):
        return attrs.get(attr, name if attr == "name" else None)

    def import_block(self, ctx, name, cloud_id, options):
        """A group by name or id. ``euca-internal-…`` groups are the cloud's: imported as existing."""
        live = self.read(ctx, {})
        group = live.get(cloud_id) or next((g for g in live.values() if g["group_id"] == cloud_id), None)
        if group is None:
            raise ReconError(f"no security group {cloud_id!r} in the cloud", where=f"security_groups.{name}")
        block: dict[str, Any] = {} if group["name"] == name else {"name": group["name"]}
        if group["name"].startswith("euca-internal-"):
            block["existing"] = True
        else:
            block["description"] = group["description"]
        block["ingress"] = [rule_block(text) for text in group["ingress"]]
        return block, group["name"]

    def read(self, ctx, wanted):
        groups = ctx.cloud.paginate("ec2", "describe_security_groups", "SecurityGroups", where="security_groups")
        names_by_id = {g["GroupId"]: g["GroupName"] for g in groups}
        live: dict[str, dict[str, Any]] = {}
        for group in groups:
            live[group["GroupName"]] = {
                "name": group["GroupName"],
                "group_id": group["GroupId"],
                "description": group.get("Description", ""),
                "ingress": rules_from_permissions(group.get("IpPermissions", []), names_by_id),
                OWNER: owner_from_tags(group.get("Tags")),
            }
        return live

    def _group_ids(self, cloud, names: set[str], where: str) -> dict[str, str]:
        if not names:
            return {}
        groups = cloud.paginate("ec2", "describe_security_groups", "SecurityGroups", where=where,
                                Filters=[{"Name": "group-name", "Values": sorted(names)}])
        return {g["GroupName"]: g["GroupId"] for g in groups}

    def _change_rules(self, cloud, where: str, group_id: str, add: set[str], remove: set[str]) -> None:
        rules = [Rule.parse(text) for text in sorted(add | remove)]
        ids = self._group_ids(cloud, {r.source[3:] for r in rules if r.source.startswith("sg:")}, where)
        if remove:
            cloud.call("ec2", "revoke_security_group_ingress", where=where, GroupId=group_id,
                       ignore_codes=("InvalidPermission.NotFound",),
                       IpPermissions=[Rule.parse(t).permission(ids) for t in sorted(remove)])
        if add:
            cloud.call("ec2", "authorize_security_group_ingress", where=where, GroupId=group_id,
                       ignore_codes=("InvalidPermission.Duplicate",),
                       IpPermissions=[Rule.parse(t).permission(ids) for t in sorted(add)])

    def _live_group(self, ctx, group_name: str, where: str) -> dict[str, Any]:
        """The live group; an existing = true group may appear a little after its load balancer."""
        def look() -> dict[str, Any] | None:
            return self.read(ctx, {}).get(group_name)

        return wait_until(look, what=f"security group {group_name!r} to exist (made by the cloud)",
                          where=where, timeout=EXISTING_GROUP_WAIT, report=ctx.report)

    def create(self, ctx, name, attrs):
        where = f"security_groups.{name}"
        group_name = attrs["name"]
        if attrs.get("existing"):
            live = self._live_group(ctx, group_name, where)
            managed_before = set(live.get("ingress", []))
            self._change_rules(ctx.cloud, where, live["group_id"], set(attrs["ingress"]) - managed_before, set())
            return {**attrs, "group_id": live["group_id"]}
        reply = ctx.cloud.call("ec2", "create_security_group", where=where, GroupName=group_name,
                               Description=attrs["description"], done_if_retried=("InvalidGroup.Duplicate",))
        group_id = reply["GroupId"] if reply else self._group_ids(ctx.cloud, {group_name}, where)[group_name]
        ctx.cloud.call("ec2", "create_tags", where=where, Resources=[group_id],
                   Tags=ownership_tags(ctx.stack, f"security_groups.{name}"))
        self._change_rules(ctx.cloud, where, group_id, set(attrs["ingress"]), set())
        return {**attrs, "group_id": group_id}

    def update(self, ctx, name, before, after, changed):
        where = f"security_groups.{name}"
        live = self._live_group(ctx, after["name"], where)
        self._change_rules(ctx.cloud, where, live["group_id"], set(after["ingress"]) - set(before.get("ingress", [])),
                           set(before.get("ingress", [])) - set(after["ingress"]))
        return {**after, "group_id": live["group_id"]}

    def delete(self, ctx, name, before, prior):
        where = f"security_groups.{name}"
        prior = prior or {}
        group_name = prior.get("name", name)
        if prior.get("existing"):
            live = self.read(ctx, {}).get(group_name)
            if live:
                mine = set(live["ingress"]) & set(prior.get("ingress", []))
                self._change_rules(ctx.cloud, where, live["group_id"], set(), mine)
            return
        ctx.cloud.call("ec2", "delete_security_group", where=where, GroupName=group_name,
                   ignore_codes=("InvalidGroup.NotFound",))


KIND = SecurityGroups()

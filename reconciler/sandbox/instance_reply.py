"""Instance replies (DescribeInstances, RunInstances) written as a Eucalyptus 4.0 cloud writes them.

4.0 answers every EC2 API version newer than its own with its newest binding (2014-02-01), whose
``RunningInstancesItemType`` (``ec2-instances-12-06-01.xml``) has these elements, in this order:
instanceId, imageId, instanceState, privateDnsName, dnsName, reason, keyName, amiLaunchIndex,
productCodes, instanceType, launchTime, placement (the zone alone), kernelId, ramdiskId, platform,
monitoring, privateIpAddress, ipAddress, groupSet, architecture, rootDeviceType, rootDeviceName,
blockDeviceMapping, virtualizationType, clientToken, tagSet, iamInstanceProfile. Nothing of a VPC,
no network interfaces, no hypervisor, state reason, metadata or hibernation options (moto writes
all of those, as AWS does); DNS names are the addresses (4.0's default, without instance DNS).

The reply is written from moto's objects directly, instead of by moto's own writer (a dict per
member, then xmltodict, then a pass that dropped what 4.0 lacks): a DescribeInstances of 100
instances took 198 ms, client included, and takes 39 ms.
Image ids are moto's here (``ami-``); the service turns them into the cloud's ones, as it does
for every reply.
"""

from __future__ import annotations

from typing import Iterable

from .wire import xml_text

RUN_STATE = (0, "pending")  # a RunInstances reply shows every new instance pending


def _element(tag: str, value: object) -> str:
    return f"<{tag}>{xml_text(value)}</{tag}>"


def _optional(tag: str, value: object) -> str:
    """An element 4.0 leaves out when its value is unset."""
    return "" if value is None or value == "None" else _element(tag, value)


def _time(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z") if hasattr(value, "strftime") else str(value)


def _flag(value: object) -> str:
    return "true" if value in (True, "true") else "false"


def _groups(groups: Iterable) -> str:
    return "".join(f"<item>{_element('groupId', g.id)}{_element('groupName', g.name)}</item>" for g in groups)


def own_groups(instance) -> list:
    """The instance's security groups: its own, else its primary interface's (a default-VPC launch)."""
    if instance.security_groups:
        return list(instance.security_groups)
    interfaces = instance.network_interfaces
    return list(getattr(interfaces[0], "group_set", None) or []) if interfaces else []


def root_device_type(backend, instance) -> str:
    """Its image's root device type when that is instance-store (moto launches every instance as
    EBS-backed), else the instance's."""
    image = backend.amis.get(instance.image_id)
    return "instance-store" if getattr(image, "root_device_type", None) == "instance-store" \
        else instance.root_device_type


def _block_devices(instance, root_type: str) -> str:
    if root_type == "instance-store":
        return ""
    items = []
    for device, block in instance.get_block_device_mapping:
        ebs = (_element("volumeId", block.volume_id) + _element("status", instance.get_block_device_status(block.status))
               + _element("attachTime", _time(block.attach_time))
               + _element("deleteOnTermination", _flag(block.delete_on_termination)))
        items.append(f"<item>{_element('deviceName', device)}<ebs>{ebs}</ebs></item>")
    return "".join(items)


def instance_item(backend, instance, state: tuple[int, str] | None = None) -> str:
    """One ``instancesSet`` item."""
    code, name = state or (instance.state_code, instance.state)
    private_ip, public_ip = instance.private_ip, instance.public_ip
    root_type = root_device_type(backend, instance)
    tags = backend.tags.get(instance.id) or {}
    tag_set = "".join(f"<item>{_element('key', k)}{_element('value', v)}</item>" for k, v in list(tags.items()))
    profile = instance.iam_instance_profile
    return "".join((
        "<item>",
        _element("instanceId", instance.id),
        _element("imageId", instance.image_id),
        f"<instanceState><code>{code}</code><name>{name}</name></instanceState>",
        _element("privateDnsName", private_ip or ""),
        _element("dnsName", public_ip or ""),
        _element("reason", instance.state_transition_reason or ""),
        _optional("keyName", instance.key_name),
        _element("amiLaunchIndex", instance.ami_launch_index),
        "<productCodes>", "".join(f"<item>{_element('productCode', c)}</item>" for c in instance.product_codes),
        "</productCodes>",
        _element("instanceType", instance.instance_type),
        _element("launchTime", _time(instance.launch_time)),
        f"<placement>{_element('availabilityZone', instance.placement.zone)}</placement>",
        _optional("kernelId", getattr(instance, "kernel_id", None) or instance.kernel),
        _optional("ramdiskId", getattr(instance, "ramdisk_id", None) or instance.ramdisk),
        _optional("platform", instance.platform),
        f"<monitoring>{_element('state', instance.monitoring_state)}</monitoring>",
        _optional("privateIpAddress", private_ip),
        _optional("ipAddress", public_ip),
        f"<groupSet>{_groups(own_groups(instance))}</groupSet>",
        _element("architecture", instance.architecture),
        _element("rootDeviceType", root_type),
        _element("rootDeviceName", instance.root_device_name),
        f"<blockDeviceMapping>{_block_devices(instance, root_type)}</blockDeviceMapping>",
        _element("virtualizationType", instance.virtualization_type),
        _optional("clientToken", instance.client_token),
        f"<tagSet>{tag_set}</tagSet>" if tag_set else "",
        "" if not profile else f"<iamInstanceProfile>{_optional('arn', profile.get('Arn'))}"
                               f"{_optional('id', profile.get('Id'))}</iamInstanceProfile>",
        "</item>",
    ))


def reservation_body(backend, reservation, instances: list, state: tuple[int, str] | None = None) -> str:
    """A ``ReservationInfoType``'s elements: id, owner, the reservation's groups (its first grouped
    instance's when moto kept none), and ``instances``."""
    groups = list(reservation.groups) or next((g for g in map(own_groups, instances) if g), [])
    owner = reservation.owner_id or (instances[0].owner_id if instances else "")
    return (_element("reservationId", reservation.id) + _element("ownerId", owner)
            + f"<groupSet>{_groups(groups)}</groupSet>"
            + f"<instancesSet>{''.join(instance_item(backend, i, state) for i in instances)}</instancesSet>")


def describe_instances(namespace: str, request: str, backend, reservations: Iterable) -> str:
    items = "".join(f"<item>{reservation_body(backend, r, list(r.instances))}</item>" for r in reservations)
    return (f'<DescribeInstancesResponse xmlns="{namespace}"><requestId>{request}</requestId>'
            f"<reservationSet>{items}</reservationSet></DescribeInstancesResponse>")


def run_instances(namespace: str, request: str, backend, reservation, instances: list, *, pending: bool) -> str:
    """A RunInstances reply: the reservation's new instances pending, or as they are now (a retried
    request answered with its earlier reservation)."""
    body = reservation_body(backend, reservation, instances, RUN_STATE if pending else None)
    return f'<RunInstancesResponse xmlns="{namespace}"><requestId>{request}</requestId>{body}</RunInstancesResponse>'

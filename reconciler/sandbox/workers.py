"""Load balancers' worker VMs, made and kept as Eucalyptus 4.0/4.2 does (DESIGN §11).

From the server source (``loadbalancing-backend``, branches maint-4.0 and maint-4.2):

* ``EventHandlerChainNew.AdmissionControl``: a new load balancer needs the emi property to name an
  image the cloud has and a configured key name to exist ("The configured keyname is not found");
  else CreateLoadBalancer fails (``LoadBalancingBackendService``: ``InternalFailure``, 400,
  "Failed to create the loadbalancer: REASON") and the balancer is rolled back. The emi is looked
  up with DescribeImages: an emi that is no image id at all, such as a fresh cloud's ``NULL``, fails
  that call ("failed to validate the loadbalancer EMI"); an image id the cloud has no image for
  (never registered, or deregistered) finds nothing ("No loadbalancer EMI is found").
* ``LoadBalancerASGroupCreator``: in the cloud's own account (the system administrator's), a
  launch configuration from the emi, instance type and key name properties and the balancer's
  ``euca-internal-ACCOUNT-NAME`` group, and an auto-scaling group with min = max = desired
  capacity, EC2 health checks and the tag ``Name=loadbalancer-resources`` propagated at launch.
  4.0 makes one group ``asg-euca-internal-elb-ACCOUNT-NAME`` over all the zones (capacity zones ×
  ``loadbalancer_num_vm``), its configuration ``lc-euca-internal-elb-ACCOUNT-NAME-XXXXXXXX``; 4.2
  one group per zone, ``euca-internal-elb-ACCOUNT-NAME-ZONE`` (capacity ``vm_per_zone``), its
  configuration ``lc-euca-internal-elb-ACCOUNT-NAME-ZONE-XXXXXXXX``.
* The emi / instance type / key name change listeners: every balancer's group gets a new
  configuration ``lc-euca-internal-elb-ACCOUNT-NAME-XXXXXXXX`` with the new value and the old
  one's others, is pointed at it with the same desired capacity, and the old one is deleted.
  Running VMs stay as they are. 4.0 does nothing when the key name is set to empty.
* Enabling or disabling zones: 4.0 updates the group's zones and capacity (the VMs of a dropped
  zone are terminated); 4.2 adds or deletes per-zone groups.
* Deleting a balancer deletes its groups, terminating their instances, and their configurations.

4.2 runs new balancers' workers in a separate ``(eucalyptus)loadbalancing`` account; the sandbox
runs them in the cloud's admin account for both versions, where the runbook's
``euca-describe-instances`` finds them.
"""

from __future__ import annotations

import re
import uuid

from .autoscaling import autoscaling_backend, group_lock
from .properties import PropertyStore, Refused, java_int, lb_property, version_tuple, vm_per_zone_property
from .services import moto_image_id
from .zones import ZoneMap

TAG_KEY, TAG_VALUE = "Name", "loadbalancer-resources"
_NAME_LIMIT = 255
# what DescribeImages takes as an image id: a prefix, '-', the hex digits (8 on Eucalyptus; the
# sandbox's ids carry moto's 17)
_IMAGE_ID = re.compile(r".+-(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{17})")


class AdmissionRefused(Exception):
    """A load balancer the cloud cannot give workers; the message is AdmissionControl's."""


# the launch configuration field each worker property sets (the property's check names it)
_CONFIG_FIELDS = {"emi": "image_id", "instance_type": "instance_type", "keyname": "key_name"}


class Workers:
    """The worker VMs of every load balancer, in the cloud's account ``account``.

    ``image_exists(image_id)`` and ``keypair_exists(name)`` are the compute side's answers for
    that account; ``properties`` is read when a balancer is made.
    """

    def __init__(self, account: str, zones: ZoneMap, properties: PropertyStore, *, eucalyptus_version: str,
                 image_exists, keypair_exists):
        self.account = account
        self.zones = zones
        self.properties = properties
        self.v42 = version_tuple(eucalyptus_version) >= (4, 2)
        self.image_property = lb_property(eucalyptus_version, "emi")
        self.type_property = lb_property(eucalyptus_version, "instance_type")
        self.key_property = lb_property(eucalyptus_version, "keyname")
        self.count_property = vm_per_zone_property(eucalyptus_version)
        self.image_exists, self.keypair_exists = image_exists, keypair_exists
        self._groups: dict[tuple[str, str], list[str]] = {}  # (owner, balancer) -> its group names

    # -- names -----------------------------------------------------------------------------
    def group_name(self, owner: str, balancer: str, zone: str) -> str:
        name = (f"euca-internal-elb-{owner}-{balancer}-{zone}" if self.v42
                else f"asg-euca-internal-elb-{owner}-{balancer}")
        return name[:_NAME_LIMIT]

    @staticmethod
    def config_name(owner: str, balancer: str, zone: str = "") -> str:
        middle = f"{owner}-{balancer}-{zone}" if zone else f"{owner}-{balancer}"
        return f"lc-euca-internal-elb-{middle}-{uuid.uuid4().hex[:8]}"[:_NAME_LIMIT]

    # -- CreateLoadBalancer ------------------------------------------------------------------
    def admit(self) -> None:
        """AdmissionControl's checks of the properties in force; raises AdmissionRefused."""
        emi = self.properties.value(self.image_property)
        if not _IMAGE_ID.fullmatch(emi):   # DescribeImages refuses it (ResourceIdentifiers.parse)
            raise AdmissionRefused("failed to validate the loadbalancer EMI")
        if not self.image_exists(emi):
            raise AdmissionRefused("No loadbalancer EMI is found")
        key = self.properties.value(self.key_property)
        if key and not self.keypair_exists(key):
            raise AdmissionRefused("The configured keyname is not found")

    def create(self, owner: str, balancer: str, zones: list[str], security_group) -> None:
        """Make the configuration(s) and group(s) of a new balancer in ``zones`` (Eucalyptus
        names); their instances are launched at once. ``security_group`` is moto's group."""
        with group_lock:
            self._groups[(owner, balancer)] = []
            if self.v42:
                for zone in zones:
                    self.add_group(owner, balancer, zone, [zone], security_group)
            elif zones:
                self.add_group(owner, balancer, "", zones, security_group)

    def per_zone(self) -> int:
        """The number of VMs per zone (``Integer.parseInt``, 1 when it cannot parse it)."""
        number = java_int(self.properties.value(self.count_property))
        return 1 if number is None else number

    def add_group(self, owner: str, balancer: str, zone: str, zones: list[str], security_group) -> None:
        """One group and its configuration, from the properties in force: ``zone`` names a 4.2
        group's only zone, and is empty for 4.0's group over all of ``zones``."""
        backend = autoscaling_backend(self.account)
        config = self.config_name(owner, balancer, zone)
        self.make_config(backend, config, image_id=moto_image_id(self.properties.value(self.image_property).lower()),
                         instance_type=self.properties.value(self.type_property),
                         key_name=self.properties.value(self.key_property) or None,
                         security_groups=[security_group.id if self.v42 else security_group.name],
                         user_data=None, instance_profile=None)
        name = self.group_name(owner, balancer, zone)
        capacity = len(zones) * self.per_zone()
        backend.create_auto_scaling_group(
            name=name, availability_zones=[self.zones.to_moto[z] for z in zones],
            desired_capacity=capacity, max_size=capacity, min_size=capacity,
            launch_config_name=config, launch_template={}, vpc_zone_identifier=None,
            default_cooldown=None, health_check_period=None, health_check_type="EC2",
            load_balancers=[], target_group_arns=[], placement_group=None, termination_policies=[],
            tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": TAG_KEY,
                   "Value": TAG_VALUE, "PropagateAtLaunch": True}])
        self._groups[(owner, balancer)].append(name)

    @staticmethod
    def make_config(backend, name: str, *, image_id: str, instance_type: str, key_name: str | None,
                    security_groups: list[str], user_data, instance_profile) -> None:
        backend.create_launch_configuration(
            name=name, image_id=image_id, key_name=key_name, kernel_id="", ramdisk_id="",
            security_groups=security_groups, user_data=user_data, instance_type=instance_type,
            instance_monitoring=True, instance_profile_name=instance_profile, spot_price=None, ebs_optimized=False,
            associate_public_ip_address=False, block_device_mappings=[])

    # -- Enable/DisableAvailabilityZonesForLoadBalancer ---------------------------------------
    def zones_changed(self, owner: str, balancer: str, zones: list[str], security_group) -> None:
        """The workers follow the balancer's zones (Eucalyptus names) once they changed. 4.0
        (``EventHandlerChainEnableZone``, ``...DisableZone``) updates its group: those zones,
        capacity zones × ``loadbalancer_num_vm`` (at least 1 a zone), the VMs of a dropped zone
        terminated. 4.2 gives a new zone its group and deletes a dropped zone's."""
        backend = autoscaling_backend(self.account)
        with group_lock:
            names = self._groups.get((owner, balancer))
            if names is None:  # a balancer given no workers (it has no security group)
                return
            if self.v42:
                wanted = {self.group_name(owner, balancer, zone): zone for zone in zones}
                for name, zone in wanted.items():
                    if name not in names:
                        self.add_group(owner, balancer, zone, [zone], security_group)
                for name in [n for n in names if n not in wanted]:
                    names.remove(name)
                    self.delete_group(backend, name)
                return
            group = backend.autoscaling_groups.get(names[0]) if names else None
            if group is None:
                return
            moto_zones = [self.zones.to_moto[z] for z in zones]
            dropped = [s.instance.id for s in group.instance_states if s.instance.placement.zone not in moto_zones]
            group.instance_states = [s for s in group.instance_states if s.instance.id not in dropped]
            if dropped:
                backend.ec2_backend.terminate_instances(dropped)
            capacity = len(zones) * max(self.per_zone(), 1)
            backend.update_auto_scaling_group(
                group.name, availability_zones=moto_zones, desired_capacity=capacity, max_size=capacity,
                min_size=capacity, launch_config_name=None, launch_template={}, vpc_zone_identifier=None,
                health_check_period=None, health_check_type=None)

    # -- DeleteLoadBalancer ------------------------------------------------------------------
    def delete(self, owner: str, balancer: str) -> None:
        """Delete the balancer's groups (terminating their instances) and configurations."""
        backend = autoscaling_backend(self.account)
        with group_lock:
            for name in self._groups.pop((owner, balancer), []):
                self.delete_group(backend, name)

    @staticmethod
    def delete_group(backend, name: str) -> None:
        group = backend.autoscaling_groups.get(name)
        if group is not None:
            config = group.launch_configuration_name
            backend.delete_auto_scaling_group(name)
            backend.delete_launch_configuration(config)

    # -- the property change listeners -------------------------------------------------------
    def property_changed(self, check: str, value: str) -> None:
        """``PropertyStore``'s ``changed``: a new emi, instance type or key name gives every
        balancer group a new launch configuration (4.0 leaves them when the key name is emptied);
        other properties do not concern the workers."""
        field = _CONFIG_FIELDS.get(check)
        if field is None or (field == "key_name" and not value and not self.v42):
            return
        self.swap(field, moto_image_id(value.lower()) if field == "image_id" else value or None)

    def swap(self, field: str, value: str | None) -> None:
        """Point every balancer group at a new launch configuration: the old one's, with ``field``
        set to ``value``; then delete the old one. The groups' instances stay as they are."""
        backend = autoscaling_backend(self.account)
        with group_lock:
            for (owner, balancer), names in self._groups.items():
                for name in names:
                    group = backend.autoscaling_groups.get(name)
                    if group is None or group.launch_config is None:
                        continue
                    old = group.launch_config
                    new = self.config_name(owner, balancer)
                    settings = {"image_id": old.image_id, "instance_type": old.instance_type,
                                "key_name": old.key_name, field: value}
                    try:
                        self.make_config(backend, new, **settings, security_groups=list(old.security_groups),
                                         user_data=old.user_data, instance_profile=old.iam_instance_profile)
                        # the capacity stays; what the group launches next comes from ``new``
                        backend.update_auto_scaling_group(
                            name, availability_zones=[], desired_capacity=None, max_size=None, min_size=None,
                            launch_config_name=new, launch_template={}, vpc_zone_identifier=None,
                            health_check_period=None, health_check_type=None)
                    except Exception as err:  # the listener's own wrapping of any failure
                        raise Refused("Unable to update the autoscaling group", str(err)) from None
                    backend.delete_launch_configuration(old.name)

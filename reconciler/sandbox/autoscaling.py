"""moto's Auto Scaling as Eucalyptus' AutoScaling service (``/services/AutoScaling``, DESIGN §11).

Two process-wide adjustments of moto make its groups behave as a cloud's do (``patch_autoscaling``):

* a group launches each new instance in its zone with the fewest running instances (the first
  such zone in the group's order), one reservation per instance, with the launch configuration's
  key name, and remembers which launch configuration it was launched from (moto puts all new
  instances in one random zone, drops the key name, shows every instance with the group's
  current launch configuration, and launches from a deregistered image); a launch that fails
  leaves the group short and is logged, as a failed scaling activity, and the call that
  started it succeeds;
* the instance is tagged ``euca:node`` with the address of the node running it, as every
  Eucalyptus instance is (4.0 ``VmRuntimeState``).

moto replaces an instance when a call changes the group (capacity, detach, terminate in the
group) or EC2 terminates it. A cloud's group also replaces instances that stopped, and retries
launches that failed (EC2 health checks, scaling activities): ``heal`` does that,
deterministically, and the sandbox calls it before it serves a describe call, so that a client
sees a replacement by its next look, never by a timer. Terminating an instance no group holds (a
retried call whose first reply was lost) is a ValidationError, as on Eucalyptus.
"""

from __future__ import annotations

import re
import sys
import threading

from .services import QueryService, euca_instance, moto_account, moto_image_id
from .wire import QueryRequest, elb_error
from .zones import MOTO_REGION

NODE_TAG = "euca:node"
_ARN_REGION = re.compile(r"arn:aws:autoscaling:[a-z0-9-]+:")
_LIVE_STATES = ("pending", "running")

_patch_lock = threading.Lock()
_patched = False


def autoscaling_backend(account: str):
    from moto.autoscaling.models import autoscaling_backends

    return autoscaling_backends[account][MOTO_REGION]


def node_address(zone: str) -> str:
    """The (made-up) address of the node controller running instances in moto zone ``zone``."""
    return f"10.111.{ord(zone[-1]) - ord('a') + 1}.1"


def patch_autoscaling() -> None:
    """Balanced launches with the key name, ``euca:node`` tags and per-instance launch
    configurations (idempotent; process-wide, as ``services.patch_moto``)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        from moto.autoscaling.models import ASG_NAME_TAG, FakeAutoScalingGroup, InstanceState
        from moto.ec2.exceptions import InvalidAMIIdError

        def replace_autoscaling_group_instances(self, count_needed: int, propagated_tags: dict[str, str]) -> None:
            tags = {**propagated_tags, ASG_NAME_TAG: self.name, **self.instance_tags}
            config = self.launch_config
            for _ in range(count_needed):
                zone = min(self.availability_zones, key=lambda z: sum(
                    1 for state in self.active_instances() if state.instance.placement.zone == z))
                try:
                    if self.image_id not in self.ec2_backend.amis:  # moto would launch a deregistered image
                        raise InvalidAMIIdError(self.image_id)
                    reservation = self.ec2_backend.run_instances(
                        self.image_id, 1, self.user_data, self.security_groups,
                        instance_type=self.instance_type, key_name=config.key_name if config else None,
                        tags={"instance": {**tags, NODE_TAG: node_address(zone)}}, placement=zone,
                        launch_config=config, is_instance_type_default=False)
                except Exception as err:  # the scaling activity fails, not the call that started it
                    print(f"recon sandbox: auto-scaling group {self.name} cannot launch: {err}",
                          file=sys.stderr, flush=True)
                    return
                for instance in reservation.instances:
                    euca_instance(self.ec2_backend, instance)
                    instance.autoscaling_group = self
                    state = InstanceState(instance, protected_from_scale_in=self.new_instances_protected_from_scale_in)
                    state.launched_from = self.launch_configuration_name if config else None
                    self.instance_states.append(state)

        FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances

        current = InstanceState.launch_configuration_name

        def launch_configuration_name(self) -> str | None:
            return getattr(self, "launched_from", None) or current.fget(self)

        InstanceState.launch_configuration_name = property(launch_configuration_name)
        _patched = True


group_lock = threading.RLock()  # held by whatever changes groups: moto's objects are not thread-safe


def heal(account: str) -> None:
    """Bring every group of ``account`` back to its desired capacity: instances no longer pending or
    running leave it, new ones are launched from its current launch configuration (what a
    cloud's EC2 health checks and scaling activities do in time)."""
    with group_lock:
        for group in list(autoscaling_backend(account).autoscaling_groups.values()):
            group.instance_states = [s for s in group.instance_states if s.instance.state in _LIVE_STATES]
            if len(group.instance_states) < (group.desired_capacity or 0):
                group.set_desired_capacity(group.desired_capacity)


class AutoScalingService(QueryService):
    """moto Auto Scaling with Eucalyptus zone names and image ids (``ec2`` writes them)."""

    name = "AutoScaling"

    def __init__(self, prefix: str, app, zones, *, ec2):
        super().__init__(prefix, app, zones)
        self.ec2 = ec2

    def error(self, code: str, message: str, status: int = 400):
        return elb_error(code, message, status)

    def handle(self, params: QueryRequest):
        bad = self.unknown_zone(params)
        if bad is not None:
            return self.error("ValidationError", f"Unknown availability zone: {bad}")
        with group_lock:
            if params.action == "TerminateInstanceInAutoScalingGroup" and not self._in_a_group(params):
                # 4.0 AutoScalingBackendService; moto fails with an internal error
                return self.error("ValidationError", f"Auto scaling instance not found: {params.get('InstanceId')}")
            return self.forward(params)

    @staticmethod
    def _in_a_group(params: QueryRequest) -> bool:
        """Whether a group of the caller's account holds the instance the request names."""
        instance = params.get("InstanceId")
        groups = autoscaling_backend(moto_account(params.access_key)).autoscaling_groups.values()
        return any(state.instance.id == instance for group in groups for state in group.instance_states)

    def translate_request(self, params: QueryRequest) -> None:
        super().translate_request(params)
        params.map(lambda _k, v: moto_image_id(v))

    def translate_response(self, answer):
        answer = super().translate_response(answer)
        if answer.is_text():  # Eucalyptus' ARNs name no region (4.0 AutoScalingGroup, LaunchConfiguration)
            answer.set_text(_ARN_REGION.sub("arn:aws:autoscaling::", self.ec2.euca_image_ids(answer.text())))
        return answer

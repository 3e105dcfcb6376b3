"""The sandbox's WSGI applications: moto's EC2, S3 and ELB behind Eucalyptus' URL layout and
behaviours, and the dispatcher that routes ``/services/...`` paths to them (DESIGN §6, §7).

Every moto-backed service first gets the request the way moto expects it: the
``/services/NAME`` prefix stripped and the SigV4 credential scope's region pinned to moto's
``us-east-1`` (Eucalyptus has one region, whatever a client signs with). EC2 and ELB, which are
query APIs, then have their parameters rewritten (zone names, image ids) and some actions handled
or checked here before moto sees them; their responses are rewritten back.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import threading
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from urllib.parse import quote

from werkzeug.wrappers import Response

from . import instance_reply
from .bundles import BundleError, split_location, verify_bundle
from .limits import ec2_refusal, unstorable
from .wire import (
    Captured,
    QueryRequest,
    capture,
    ec2_error,
    elb_error,
    query_error,
    read_body,
    request_id,
    set_body,
    xml_response,
    xml_text,
)
from .zones import MOTO_REGION, ZoneMap

REGION = "eucalyptus"

_SCOPE_REGION = re.compile(r"(Credential=[^/,\s]+/\d{8}/)([^/,\s]+)(/)")
_UA_REGION = re.compile(r"region/[A-Za-z0-9-]+")
_EUCA_IMAGE_ID = re.compile(r"^e[mkr]i-([0-9a-f]{8,17})$")
_MOTO_IMAGE_ID = re.compile(r"\bami-([0-9a-f]{8,17})\b")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9()./_-]{3,128}")


# ------------------------------------------------------------------------------------------
# moto access


def moto_account(access_key: str | None) -> str:
    """The moto account a request with this access key acts in (moto's own rule)."""
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key or "")


def bind_account(access_key: str, secret_key: str, account: str) -> None:
    """Make requests signed with ``access_key`` act in ``account`` (moto's rule finds a key among
    the account's IAM access keys; an unknown key acts in moto's default account)."""
    from moto.iam.models import AccessKey, iam_backends

    key = AccessKey(None, prefix="AKIA", account_id=account)
    key.access_key_id, key.secret_access_key = access_key, secret_key
    iam_backends[account]["aws"].access_keys[access_key] = key


def ec2_backend(account: str):
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][MOTO_REGION]


def elb_backend(account: str):
    from moto.elb.models import elb_backends

    return elb_backends[account][MOTO_REGION]


def s3_backend(account: str):
    from moto.s3.models import s3_backends

    return s3_backends[account]["aws"]


_patch_lock = threading.Lock()
_patched = False


def patch_moto() -> None:
    """Process-wide adjustments of moto for a Eucalyptus-like cloud (idempotent).

    * no Amazon public AMIs (a fresh Eucalyptus cloud has no images), and moto's RunInstances
      checks that its image exists (``EC2Service.run_instances`` also refuses a deregistered one);
    * DescribeImages understands the filters Eucalyptus tools use that moto lacks
      (manifest-location, image-type, root-device-type, ramdisk-id, description);
    * DescribeInstances' availability-zone filter compares the zone name (moto compares the
      Placement object, so it never matches), and its reply holds every reservation (no pages),
      written as 4.0 writes it (``instance_reply``);
    * a load balancer's SourceSecurityGroup is its (first) security group, not "default";
    * an instance's tags are found by its id, and a response class's methods listed once (speed);
    * the attribute names a reply's members are read from, remembered (speed: ``_memoize_value_picker``).

    These are process-wide: a sandbox is meant to have its process to itself (``start_child``).
    """
    global _patched
    import os

    with _patch_lock:
        if _patched:
            return
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        from moto import settings
        from moto.ec2.models.amis import Ami

        settings.ENABLE_AMI_VALIDATION = True
        original = Ami.get_filter_value
        extra = {
            "manifest-location": "image_location",
            "image-type": "image_type",
            "root-device-type": "root_device_type",
            "ramdisk-id": "ramdisk_id",
            "description": "description",
        }

        def get_filter_value(self, filter_name, method_name=None):
            if filter_name in extra:
                return getattr(self, extra[filter_name], None)
            return original(self, filter_name, method_name)

        Ami.get_filter_value = get_filter_value

        # moto 5.x maps the instance filter availability-zone to the Placement object, so it
        # never matches a zone name; the zone is placement.zone.
        from moto.ec2 import utils as ec2_utils

        if ec2_utils.filter_dict_attribute_mapping.get("availability-zone") == "placement":
            ec2_utils.filter_dict_attribute_mapping["availability-zone"] = "placement.zone"

        # moto 5.x always answers SourceSecurityGroup "default"; on Eucalyptus it is the group
        # the balancer's workers run in (euca-internal-ACCOUNT-NAME).
        from moto.elb.models import LoadBalancer

        def source_security_group(self) -> dict[str, str]:
            name = "default"
            for group_id in self.security_groups or []:
                group = ec2_backend(self.account_id).get_security_group_from_id(group_id)
                if group is not None:
                    name = group.name
                    break
            return {"OwnerAlias": self.account_id, "GroupName": name}

        LoadBalancer.source_security_group = property(source_security_group)

        # moto 5.x finds one resource's tags by scanning every tag of the account with a regex
        # per tag, so describing or launching N tagged instances costs O(N^2): minutes at a few
        # thousand instances (bench/plan_scale.py). Look the resource up by its id instead --
        # the same answer, since an id holds no wildcard.
        from moto.ec2.models.core import TaggedEC2Resource
        from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

        scan_tags = TaggedEC2Resource.get_tags

        def get_tags(self) -> list[dict[str, str]]:
            resource_id = self.id
            if not resource_id or any(c in resource_id for c in "*?["):
                return scan_tags(self)
            tags = self.ec2_backend.tags.get(resource_id) or {}
            kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
            return [{"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
                    for key, value in list(tags.items())]

        TaggedEC2Resource.get_tags = get_tags

        # moto lists a response class's methods with inspect on every request (a tenth of a sandbox's
        # CPU); a class's methods do not change while it serves, so list them once per class.
        from moto.core import responses as moto_responses

        moto_responses.method_names_from_class = functools.cache(moto_responses.method_names_from_class)

        # get_instance (every RunInstances, AttachVolume, ...) copies every reservation to find
        # one instance; walk them in place instead (same instance objects, no copies).
        from moto.ec2.exceptions import InvalidInstanceIdError
        from moto.ec2.models.instances import InstanceBackend

        def get_instance(self, instance_id: str):
            for reservation in list(self.reservations.values()):
                for instance in reservation.instances:
                    if instance.id == instance_id:
                        return instance
            raise InvalidInstanceIdError(instance_id)

        InstanceBackend.get_instance = get_instance

        # Eucalyptus 4.0's DescribeInstances has no MaxResults or NextToken, and 4.2's
        # ComputeService.describeInstances ignores both: every reservation comes in one reply, never
        # a nextToken (moto pages by 100 reservations, as AWS does).
        # The reply is written as 4.0 writes it (``instance_reply``), not by moto's serializer.
        from moto.ec2.responses.instances import InstanceResponse

        def describe_instances(self):
            self.error_on_dryrun()
            filters = self._filters_from_querystring()
            ids = self._get_param("InstanceIds", [])
            reservations = (self.ec2_backend.get_reservations_by_instance_ids(ids, filters=filters) if ids
                            else self.ec2_backend.describe_instances(filters=filters))
            body = instance_reply.describe_instances(ec2_namespace(self._get_param("Version")), request_id(),
                                                     self.ec2_backend, reservations)
            return body, {"Content-Type": "text/xml;charset=UTF-8"}

        InstanceResponse.describe_instances = describe_instances

        _memoize_value_picker()

        from .autoscaling import patch_autoscaling

        patch_autoscaling()
        _patched = True


#: The most (object class, member, shape) lookups the value picker remembers before starting over.
PICKER_MEMO_LIMIT = 100_000


def _memoize_value_picker() -> None:
    """moto 5.1+ writes a reply by asking, for every member of every object (80-odd per instance), which
    attribute names to try: alias objects are made and asked each time, and the member's path is compared
    with each of the service's two dozen reply transformers. The names depend only on the object's class,
    the member and its shape, the transformer only on the path: remember both. The replies are the same
    bytes (``tests/test_sandbox_replies.py`` compares them) in about 60 % of the time. (Instance replies
    do not go through moto's writer at all: ``instance_reply``.)"""
    from moto.core import responses as moto_responses
    from moto.core.utils import MISSING, get_value

    picker = getattr(moto_responses, "XFormedAttributePicker", None)
    if picker is None:   # a moto before its reply serializer
        return
    names: dict[tuple, tuple[str, ...]] = {}
    transforms: dict[tuple, Callable | None] = {}

    class RememberingPicker(picker):
        def __call__(self, context):
            obj = context.obj
            key = (type(obj), context.key, context.shape)
            tried = names.get(key)
            if tried is None:
                if len(names) > PICKER_MEMO_LIMIT:
                    names.clear()
                tried = names[key] = tuple(self.get_possible_keys(context))
            for name in tried:
                value = get_value(obj, name, MISSING)
                if value is not MISSING:
                    break
            else:
                value = None
            if not self.response_transformers:
                return value
            path = f"{context.key_path}.{context.key}"
            which = (id(self.response_transformers), len(self.response_transformers), path)
            transform = transforms.get(which, MISSING)
            if transform is MISSING:
                if len(transforms) > PICKER_MEMO_LIMIT:
                    transforms.clear()
                transform = transforms[which] = next(
                    (f for suffix, f in self.response_transformers.items() if path.endswith(suffix)), None)
            return value if transform is None else transform(value)

    RememberingPicker.__name__ = picker.__name__
    moto_responses.XFormedAttributePicker = RememberingPicker


def moto_image_id(value: str) -> str:
    """A Eucalyptus image id (``emi-``/``eki-``/``eri-``) as moto's ``ami-`` one; other text as it is."""
    return _EUCA_IMAGE_ID.sub(r"ami-\1", value) if value.startswith(("emi-", "eki-", "eri-")) else value


def ec2_namespace(version: str | None) -> str:
    """The XML namespace of an EC2 reply to a request of API ``version``."""
    return f"http://ec2.amazonaws.com/doc/{version or '2016-11-15'}/"


def euca_instance(backend, instance, *, kernel: str | None = None, ramdisk: str | None = None) -> None:
    """Give a new moto instance what a Eucalyptus one has: the kernel and ramdisk asked for, else its
    image's, and its image's root device type (moto keeps none of them)."""
    image = backend.amis.get(instance.image_id)
    instance.kernel_id = moto_image_id(kernel) if kernel else getattr(image, "kernel_id", None)
    instance.ramdisk_id = moto_image_id(ramdisk) if ramdisk else getattr(image, "ramdisk_id", None)
    instance.root_device_type = getattr(image, "root_device_type", None) or instance.root_device_type


def moto_app(service: str):
    from moto.moto_server.werkzeug_app import create_backend_app

    return create_backend_app(service)


# ------------------------------------------------------------------------------------------
# request plumbing shared by all moto-backed services


def pin_region(environ: dict) -> None:
    """Make moto see ``us-east-1`` whatever region the client signed for."""
    auth = environ.get("HTTP_AUTHORIZATION")
    if auth:
        environ["HTTP_AUTHORIZATION"] = _SCOPE_REGION.sub(rf"\g<1>{MOTO_REGION}\g<3>", auth)
    agent = environ.get("HTTP_USER_AGENT")
    if agent:
        environ["HTTP_USER_AGENT"] = _UA_REGION.sub(f"region/{MOTO_REGION}", agent)


def strip_prefix(environ: dict, prefix: str) -> None:
    """Serve ``prefix/rest`` as ``/rest`` (PATH_INFO and the raw URIs moto reads)."""
    path = environ.get("PATH_INFO", "")
    rest = path[len(prefix):]
    environ["PATH_INFO"] = rest if rest.startswith("/") else "/" + rest
    for key in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(key)
        if raw is None:
            continue
        if raw.lower().startswith(prefix.lower()):
            raw = raw[len(prefix):]
            environ[key] = raw if raw.startswith("/") else "/" + raw


def base_url(environ: dict) -> str:
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _log_exception(what: str) -> None:
    print(f"recon sandbox: error in {what}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)


def _nothing(account: str) -> None:
    pass


class QueryService:
    """A moto query API (EC2, ELB, Auto Scaling) with parameter and response rewriting.

    ``before_describe(account)`` runs before any ``Describe*`` action made in ``account`` is
    served (the sandbox heals auto-scaling groups there, see ``autoscaling.heal``).
    """

    name = "service"
    before_describe: Callable[[str], None] = staticmethod(_nothing)

    def __init__(self, prefix: str, app, zones: ZoneMap):
        self.prefix = prefix
        self.app = app
        self.zones = zones

    def error(self, code: str, message: str, status: int = 400) -> Response:
        raise NotImplementedError

    def __call__(self, environ: dict, start_response):
        try:
            strip_prefix(environ, self.prefix)
            pin_region(environ)
            params = QueryRequest.from_environ(environ)
            refused = unstorable(params)
            if not refused and params.action.startswith("Describe"):
                self.before_describe(moto_account(params.access_key))
            answer = self.error(*refused) if refused else self.handle(params)
            if isinstance(answer, Captured):
                return answer.send(start_response)
            return answer(environ, start_response)
        except Exception as err:  # a moto crash must not look like a network failure
            _log_exception(f"{self.name} {environ.get('PATH_INFO')}")
            return self.error("InternalError", f"sandbox {self.name} failed: {err}", 500)(environ, start_response)

    def handle(self, params: QueryRequest) -> Response | Captured:
        return self.forward(params)

    def translate_request(self, params: QueryRequest) -> None:
        params.map(self.zones.request_translator(params.items()))

    def translate_response(self, answer: Captured) -> Captured:
        if answer.is_text():
            answer.set_text(self.zones.response_text(answer.text()))
        return answer

    def forward(self, params: QueryRequest) -> Captured:
        """Hand the request to moto (parameters translated) and translate its answer."""
        self.translate_request(params)
        return self.translate_response(capture(self.app, params.apply()))

    def unknown_zone(self, params: QueryRequest) -> str | None:
        unknown = self.zones.unknown_zones(params.items())
        return unknown[0] if unknown else None


# ------------------------------------------------------------------------------------------
# EC2


@dataclass
class _TokenEntry:
    fingerprint: str
    instance_ids: list[str]


_SIGNING_PARAMS = {"AWSAccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "Timestamp",
                   "Expires", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                   "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"}


class EC2Service(QueryService):
    """moto EC2 as a Eucalyptus compute service.

    Beyond the zone and region handling: DescribeAvailabilityZones lists only the configured
    zones and DescribeRegions the one ``eucalyptus`` region; image ids read ``emi-``/``eki-``/
    ``eri-``; RegisterImage checks what 4.0's ``ImageManager`` checks (name, duplicate name,
    virtualization type, the kernel and ramdisk of a paravirtual machine image) and, with an
    ImageLocation, the bundle, then records location, type, architecture, kernel and ramdisk;
    RunInstances is idempotent on ClientToken and boots only a registered machine image; image
    and instance replies are what 4.0 writes (``instance_reply``, ``classic_image_reply``).
    """

    name = "compute"

    def __init__(self, prefix: str, app, zones: ZoneMap, *, cloud_key=None, user_cert=None, user_key=None):
        super().__init__(prefix, app, zones)
        self.cloud_key, self.user_cert, self.user_key = cloud_key, user_cert, user_key
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], _TokenEntry] = {}
        self._image_prefix: dict[str, str] = {}  # moto hex id -> "eki" / "eri"

    def error(self, code: str, message: str, status: int = 400) -> Response:
        return ec2_error(code, message, status)

    # -- translation ---------------------------------------------------------------------
    def translate_request(self, params: QueryRequest) -> None:
        super().translate_request(params)
        params.map(lambda _k, v: moto_image_id(v))

    def translate_response(self, answer: Captured) -> Captured:
        answer = super().translate_response(answer)
        if answer.is_text():
            answer.set_text(self.euca_image_ids(answer.text()))
        return answer

    def euca_image_ids(self, text: str) -> str:
        """``text`` with moto's ``ami-`` ids written as the cloud's ``emi-``/``eki-``/``eri-`` ones."""
        return _MOTO_IMAGE_ID.sub(lambda m: f"{self._image_prefix.get(m.group(1), 'emi')}-{m.group(1)}", text)

    def namespace(self, params: QueryRequest) -> str:
        return ec2_namespace(params.version)

    # -- actions -------------------------------------------------------------------------
    def handle(self, params: QueryRequest) -> Response | Captured:
        action = params.action
        if action == "DescribeAvailabilityZones":
            return self.describe_availability_zones(params)
        if action == "DescribeRegions":
            return self.describe_regions(params)
        bad = self.unknown_zone(params)
        if bad is not None:
            return self.error("InvalidParameterValue", f"Invalid availability zone: [{bad}]")
        account = moto_account(params.access_key)
        refused = ec2_refusal(params, lambda resource: dict(ec2_backend(account).tags.get(
            _EUCA_IMAGE_ID.sub(r"ami-\1", resource), {})))
        if refused:
            return self.error(*refused)
        if action == "RegisterImage":
            return self.register_image(params)
        if action == "RunInstances":
            return self.run_instances(params)
        answer = self.forward(params)
        if action == "DescribeImages":
            return self.classic_image_reply(answer)
        return answer

    def describe_availability_zones(self, params: QueryRequest) -> Response:
        wanted = [z for z in params.members("ZoneName") if z and z != "verbose"]
        for zone in wanted:
            if zone not in self.zones.to_moto:
                return self.error("InvalidParameterValue", f"The zone '{zone}' does not exist.")
        filters: dict[str, list[str]] = {}
        for index in sorted({k.split(".")[1] for k, _ in params.items() if re.match(r"^Filter\.\d+\.Name$", k)}):
            name = params.get(f"Filter.{index}.Name") or ""
            filters[name] = params.members(f"Filter.{index}.Value")
        items = []
        for zone in self.zones.zones:
            facts = {"zone-name": zone, "state": "available", "region-name": REGION}
            if wanted and zone not in wanted:
                continue
            if any(name in facts and facts[name] not in values for name, values in filters.items()):
                continue
            items.append(
                f"<item><zoneName>{xml_text(zone)}</zoneName><zoneState>available</zoneState>"
                f"<regionName>{REGION}</regionName><messageSet/></item>"
            )
        body = (
            f'<DescribeAvailabilityZonesResponse xmlns="{self.namespace(params)}">'
            f"<requestId>{request_id()}</requestId>"
            f"<availabilityZoneInfo>{''.join(items)}</availabilityZoneInfo>"
            "</DescribeAvailabilityZonesResponse>"
        )
        return xml_response(body)

    def describe_regions(self, params: QueryRequest) -> Response:
        wanted = [r for r in params.members("RegionName") if r]
        items = ""
        if not wanted or REGION in wanted:
            endpoint = base_url(params.environ) + self.prefix
            items = (f"<item><regionName>{REGION}</regionName>"
                     f"<regionEndpoint>{xml_text(endpoint)}</regionEndpoint></item>")
        body = (
            f'<DescribeRegionsResponse xmlns="{self.namespace(params)}">'
            f"<requestId>{request_id()}</requestId><regionInfo>{items}</regionInfo>"
            "</DescribeRegionsResponse>"
        )
        return xml_response(body)

    # RegisterImage ----------------------------------------------------------------------
    def register_image(self, params: QueryRequest) -> Response | Captured:
        """moto's RegisterImage keeps only name and description: check the request as 4.0's
        ``ImageManager.register`` does and the bundle an ImageLocation names, then record
        location, type and the attributes moto drops."""
        location = params.get("ImageLocation") or ""
        account = moto_account(params.access_key)
        refusal = self.check_image_name(account, params.get("Name"), params.get("Description"))
        if refusal is not None:
            return refusal
        virtualization = (params.get("VirtualizationType") or "paravirtual").lower()
        if virtualization not in ("paravirtual", "hvm"):  # a plain EucalyptusCloudException
            return self.error("RegisterImageType", "Unknown virtualization-type", 406)
        info = None
        if location:
            try:
                bucket, key = split_location(location)
                info = self.check_bundle(account, bucket, key)
            except BundleError as err:
                return self.error("InvalidManifest", f"{location}: {err}")
            location = f"{bucket}/{key}"
        kernel = params.get("KernelId") or (info.kernel_id if info else None)
        ramdisk = params.get("RamdiskId") or (info.ramdisk_id if info else None)
        if info is not None and info.image_type == "machine" and virtualization == "paravirtual":
            if not kernel:
                return self.error("MissingParameter", "Kernel ID must be specified")
            if not ramdisk:
                return self.error("MissingParameter", "Ramdisk ID must be specified")
        answer = self.forward(params)
        if answer.code != 200:
            return answer
        match = re.search(r"<imageId>e[mkr]i-([0-9a-f]+)</imageId>", answer.text())
        if not match:
            return answer
        hex_id = match.group(1)
        image = ec2_backend(account).amis.get(f"ami-{hex_id}")
        if image is None:
            return answer
        image_id = self.record_image(
            image, info.image_type if info else "machine", kernel=kernel, ramdisk=ramdisk,
            location=location if info is not None else None,
            architecture=params.get("Architecture") or (info and info.architecture) or "x86_64",
            root_device_name=params.get("RootDeviceName") or "/dev/sda1",
            virtualization=virtualization)
        answer.set_text(answer.text().replace(f"emi-{hex_id}", image_id))
        return answer

    def check_image_name(self, account: str, name: str | None, description: str | None) -> Response | None:
        """``verifyImageNameAndDescription``: a well-formed name the account's images do not
        use yet, a description under 256 characters."""
        if name is not None:
            if not _IMAGE_NAME.fullmatch(name):
                return self.error("InvalidAMIName.Malformed",
                                  "AMI names must be between 3 and 128 characters long, and may contain letters, "
                                  "numbers, '(', ')', '.', '-', '/' and '_'")
            for image in list(ec2_backend(account).amis.values()):
                if image.name == name and image.state in ("available", "pending"):
                    return self.error("InvalidAMIName.Duplicate",
                                      f"AMI name {name} is already in use by EMI {self.image_id(image)}")
        if description is not None and len(description) > 255:
            return self.error("InvalidParameter", "AMI descriptions must be less than 256 characters long")
        return None

    def image_id(self, image) -> str:
        """A moto image's id as the cloud shows it: emi-, eki- or eri-."""
        hex_id = image.id.split("-", 1)[1]
        return f"{self._image_prefix.get(hex_id, 'emi')}-{hex_id}"

    def has_image(self, account: str, image_id: str) -> bool:
        """Whether the account has the image ``image_id`` (compared without regard to case, as 4.0's
        load-balancer emi check does)."""
        match = _EUCA_IMAGE_ID.match(image_id.lower())
        image = ec2_backend(account).amis.get(f"ami-{match.group(1)}") if match else None
        return image is not None and self.image_id(image) == image_id.lower()

    def is_machine_image(self, account: str, image_id: str) -> bool:
        """Whether RunInstances can boot ``image_id``: a machine image the account has (4.0
        ``Emis.BootsetFromId``: neither a kernel or ramdisk image nor a deregistered one)."""
        return image_id.lower().startswith("emi-") and self.has_image(account, image_id)

    @staticmethod
    def has_key_pair(account: str, name: str) -> bool:
        return name in ec2_backend(account).key_pairs

    def record_image(self, image, image_type: str, *, kernel: str | None, ramdisk: str | None,
                     location: str | None, architecture: str = "x86_64", root_device_name: str = "/dev/sda1",
                     virtualization: str | None = None) -> str:
        """Give a moto image what a Eucalyptus one has (type, kernel, ramdisk, bundle location …);
        returns its emi-/eki-/eri- id. An image with a location is an instance-store one."""
        image.image_type = image_type
        image.architecture = architecture
        image.kernel_id = _EUCA_IMAGE_ID.sub(r"ami-\1", kernel) if kernel else None
        image.ramdisk_id = _EUCA_IMAGE_ID.sub(r"ami-\1", ramdisk) if ramdisk else None
        image.root_device_name = root_device_name
        if location is not None:
            image.image_location = location
            image.root_device_type = "instance-store"
            image.virtualization_type = virtualization or "paravirtual"
        else:  # an EBS image is always hvm (BlockStorageImageInfo)
            image.root_device_type = "ebs"
            image.virtualization_type = "hvm"
        hex_id = image.id.split("-", 1)[1]
        prefix = {"kernel": "eki", "ramdisk": "eri"}.get(image_type, "emi")
        if prefix != "emi":
            with self._lock:
                self._image_prefix[hex_id] = prefix
        return f"{prefix}-{hex_id}"

    def seed_image(self, account: str, name: str, image_type: str, location: str, *, description: str = "",
                   kernel: str | None = None, ramdisk: str | None = None) -> str:
        """Register an image as if its bundle had been uploaded already (see ``seed.py``)."""
        image = ec2_backend(account).register_image(name=name, description=description)
        return self.record_image(image, image_type, kernel=kernel, ramdisk=ramdisk, location=location)

    def check_bundle(self, account: str, bucket: str, key: str):
        """Verify the bundle as the cloud reads it: every object must be readable by the cloud."""
        from .bundles import require_cloud_read

        if self.cloud_key is None or self.user_cert is None:
            raise BundleError("the sandbox has no cloud key to check bundles with")
        backend = s3_backend(account)

        def fetch(name: str) -> bytes | None:
            try:
                obj = backend.get_object(bucket, name)
            except Exception:  # moto raises MissingBucket for an unknown bucket
                return None
            if obj is None:
                return None
            require_cloud_read(obj.acl, bucket, name, manifest_key=key)
            return obj.value

        return verify_bundle(key, fetch, cloud_key=self.cloud_key, user_cert=self.user_cert,
                             user_key=self.user_key)

    # RunInstances -----------------------------------------------------------------------
    def run_instances(self, params: QueryRequest) -> Response | Captured:
        """RunInstances, idempotent on ClientToken, whose instances get the kernel and ramdisk asked
        for, else their image's, as on Eucalyptus (moto keeps neither)."""
        account = moto_account(params.access_key)
        kernel, ramdisk = params.get("KernelId"), params.get("RamdiskId")

        def launch() -> Response | Captured:
            image_id = params.get("ImageId") or ""
            if not self.is_machine_image(account, image_id):   # VmControl: NoSuchImageIdException
                return self.error("InvalidAMIID.NotFound", f"Failed to lookup image named: {image_id}")
            answer = self.forward(params)
            if answer.code != 200:
                return answer
            backend = ec2_backend(account)
            ids = re.findall(r"<instanceId>(i-[0-9a-f]+)</instanceId>", answer.text())
            for instance_id in ids:
                euca_instance(backend, backend.get_instance(instance_id), kernel=kernel, ramdisk=ramdisk)
            return self.run_reply(params, account, ids, pending=True)

        return self.run_instances_idempotent(params, launch) if params.get("ClientToken") else launch()

    def run_reply(self, params: QueryRequest, account: str, instance_ids: list[str], *,
                  pending: bool) -> Response | Captured:
        """The RunInstances reply for the reservation holding ``instance_ids``, as 4.0 writes it
        (``instance_reply``): its new instances pending, or (a retried request) as they are now."""
        backend = ec2_backend(account)
        wanted = set(instance_ids)
        for reservation in list(backend.reservations.values()):
            instances = [i for i in reservation.instances if i.id in wanted]
            if instances:
                text = instance_reply.run_instances(self.namespace(params), request_id(), backend, reservation,
                                                    instances, pending=pending)
                return self.translate_response(Captured("200 OK", [("Content-Type", "text/xml;charset=UTF-8")],
                                                        text.encode("utf-8")))
        return self.error("InternalError", "the reservation for this client token is gone", 500)

    def classic_image_reply(self, answer: Captured) -> Captured:
        """An image reply as a Eucalyptus 4.0 cloud gives it: no ``bootMode``, and an instance-store
        image has no EBS mappings. (Instance replies are written as 4.0 writes them: ``instance_reply``.)"""
        if answer.code != 200 or not answer.is_text():
            return answer
        root = ET.fromstring(answer.body)
        ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
        q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
        for image in root.findall(f"{q('imagesSet')}/{q('item')}"):
            for child in image.findall(q("bootMode")):
                image.remove(child)
            mappings = image.find(q("blockDeviceMapping"))
            if image.findtext(q("rootDeviceType")) == "instance-store" and mappings is not None:
                for mapping in mappings.findall(q("item")):
                    if mapping.find(q("ebs")) is not None:
                        mappings.remove(mapping)
        answer.body = ET.tostring(root, encoding="utf-8", default_namespace=ns or None)
        return answer

    def run_instances_idempotent(self, params: QueryRequest, launch: Callable[[], Response | Captured]
                                 ) -> Response | Captured:
        """A request whose ClientToken was seen gets the earlier reservation back (before any other
        check, as 4.0's ``VmControl.runInstances``); a new one is ``launch``-ed."""
        token = params.get("ClientToken") or ""
        account = moto_account(params.access_key)
        significant = sorted((k, v) for k, v in params.items() if k not in _SIGNING_PARAMS)
        fingerprint = hashlib.sha256(repr(significant).encode()).hexdigest()
        with self._lock:
            entry = self._tokens.get((account, token))
            if entry is not None:
                if entry.fingerprint != fingerprint:
                    return self.error(
                        "IdempotentParameterMismatch",
                        f"Arguments on this idempotent request are inconsistent with arguments used in "
                        f"previous request(s) with client token {token}",
                    )
                return self.replay_run_instances(params, entry)
            answer = launch()
            if isinstance(answer, Captured) and answer.code == 200:
                ids = re.findall(r"<instanceId>(i-[0-9a-f]+)</instanceId>", answer.text())
                if ids:
                    self._tokens[(account, token)] = _TokenEntry(fingerprint, ids)
            return answer

    def replay_run_instances(self, params: QueryRequest, entry: _TokenEntry) -> Response | Captured:
        """The RunInstances answer for an earlier reservation: its instances as they are now."""
        return self.run_reply(params, moto_account(params.access_key), entry.instance_ids, pending=False)


# ------------------------------------------------------------------------------------------
# ELB


# Actions whose LoadBalancerName must name an existing balancer; moto 5.x crashes (500) on
# several of them when it does not.
_ELB_NEEDS_BALANCER = {
    "ApplySecurityGroupsToLoadBalancer", "AttachLoadBalancerToSubnets", "ConfigureHealthCheck",
    "CreateAppCookieStickinessPolicy", "CreateLBCookieStickinessPolicy", "CreateLoadBalancerListeners",
    "CreateLoadBalancerPolicy", "DeleteLoadBalancerListeners", "DeleteLoadBalancerPolicy",
    "DeregisterInstancesFromLoadBalancer", "DescribeInstanceHealth", "DescribeLoadBalancerAttributes",
    "DescribeLoadBalancerPolicies", "DetachLoadBalancerFromSubnets", "DisableAvailabilityZonesForLoadBalancer",
    "EnableAvailabilityZonesForLoadBalancer", "ModifyLoadBalancerAttributes",
    "RegisterInstancesWithLoadBalancer", "SetLoadBalancerListenerSSLCertificate",
    "SetLoadBalancerPoliciesForBackendServer", "SetLoadBalancerPoliciesOfListener",
}


_ELB_ZONE_CHANGES = {"EnableAvailabilityZonesForLoadBalancer", "DisableAvailabilityZonesForLoadBalancer"}
_MOTO_ELB_DOMAIN = ".elb.amazonaws.com"
_ELB_VPC_FIELDS = re.compile(r"<VPCId>[^<]*</VPCId>|<Subnets>.*?</Subnets>|<Subnets/>", re.S)


def balancer_dns_name(balancer: str, account: str, suffix: str) -> str:
    """4.0's ``LoadBalancerDnsRecord``: ``NAME-ACCOUNT`` (dots made underscores, cut so that the
    whole name fits in 253 characters) ``.SUBDOMAIN.DNSDOMAIN``."""
    prefix = f"{balancer}-{account}".replace(".", "_")
    return f"{prefix[:253 - len(suffix) - 1]}.{suffix}"


def internal_group_name(account: str, balancer: str) -> str:
    """The security group Eucalyptus 4.0 makes for a load balancer's worker VMs."""
    return f"euca-internal-{account}-{balancer}"


class ELBService(QueryService):
    """moto classic ELB as Eucalyptus' LoadBalancing service.

    Unknown balancers get a clean ``LoadBalancerNotFound`` (moto answers some actions with a
    500); unknown zones a ``ValidationError``; registering an instance twice lists it once; a balancer created without security groups gets
    the ``euca-internal-ACCOUNT-NAME`` group a Eucalyptus 4.0 cloud makes, removed with it. A
    balancer's DNS name is Eucalyptus' (``balancer_dns_name``; ``dns_suffix()`` gives the DNS
    subdomain property and the cloud's DNS domain, read when the balancer is made), and
    DescribeLoadBalancers names no VPC or subnets. ``workers`` (``workers.Workers``) gives a new
    balancer its worker VMs, has them follow its zones and deletes them with it; a balancer it
    cannot give workers is refused, as the cloud refuses it (see ``admit``).
    """

    name = "LoadBalancing"

    def __init__(self, prefix: str, app, zones: ZoneMap, *, dns_suffix: Callable[[], str] = lambda: "lb.localhost",
                 workers=None):
        super().__init__(prefix, app, zones)
        self.dns_suffix = dns_suffix
        self.workers = workers

    def error(self, code: str, message: str, status: int = 400) -> Response:
        return elb_error(code, message, status)

    def handle(self, params: QueryRequest) -> Response | Captured:
        action = params.action
        bad = self.unknown_zone(params)
        if bad is not None:
            return self.error("ValidationError", f"Unknown availability zone: {bad}")
        account = moto_account(params.access_key)
        if action in _ELB_NEEDS_BALANCER:
            name = params.get("LoadBalancerName") or ""
            if name not in elb_backend(account).load_balancers:
                return self.error("LoadBalancerNotFound", f"There is no ACTIVE Load Balancer named '{name}'")
        if action == "CreateLoadBalancer":
            return self.create_load_balancer(params, account)
        if action == "DeleteLoadBalancer":
            return self.delete_load_balancer(params, account)
        answer = self.forward(params)
        if action == "RegisterInstancesWithLoadBalancer":
            self.dedupe_instances(params.get("LoadBalancerName") or "", account)
        if action in _ELB_ZONE_CHANGES and answer.code == 200 and self.workers is not None:
            self.workers_follow_zones(params.get("LoadBalancerName") or "", account)
        if action == "DescribeLoadBalancers" and answer.code == 200:
            answer.set_text(_ELB_VPC_FIELDS.sub("", answer.text()))
        return answer

    @staticmethod
    def worker_group(balancer, account: str):
        """The security group the balancer's workers run in: its first one (moto's object)."""
        return ec2_backend(account).get_security_group_from_id(balancer.security_groups[0])

    def workers_follow_zones(self, name: str, account: str) -> None:
        balancer = elb_backend(account).load_balancers.get(name)
        if balancer is not None and balancer.security_groups:
            zones = [self.zones.to_euca[z] for z in balancer.availability_zones]
            self.workers.zones_changed(account, name, zones, self.worker_group(balancer, account))

    @staticmethod
    def dedupe_instances(name: str, account: str) -> None:
        """Registering an instance twice is a no-op on ELB; moto would list it twice."""
        balancer = elb_backend(account).load_balancers.get(name)
        if balancer is not None:
            balancer.instance_sparse_ids = list(dict.fromkeys(balancer.instance_sparse_ids))

    def create_load_balancer(self, params: QueryRequest, account: str) -> Response | Captured:
        name = params.get("LoadBalancerName") or ""
        is_new = bool(name) and name not in elb_backend(account).load_balancers
        zones = params.members("AvailabilityZones.member")
        refused = self.admit() if is_new else None
        if refused is not None:
            return refused
        created = None
        if is_new and not params.members("SecurityGroups.member") and not params.members("Subnets.member"):
            ec2 = ec2_backend(account)
            group_name = internal_group_name(account, name)
            group = ec2.get_security_group_by_name_or_id(group_name, ec2.default_vpc.id)
            if group is None:
                group = created = ec2.create_security_group(
                    group_name, f"group for loadbalancer {name}", vpc_id=ec2.default_vpc.id)
            params.add("SecurityGroups.member.1", group.id)
        answer = self.forward(params)
        if answer.code != 200:
            if created is not None:
                ec2_backend(account).delete_security_group(group_id=created.id)
            return answer
        balancer = elb_backend(account).load_balancers.get(name)
        if balancer is not None:
            if balancer.dns_name.endswith(_MOTO_ELB_DOMAIN):  # just made: name it as the cloud does
                balancer.dns_name = balancer_dns_name(name, account, self.dns_suffix())
            answer.set_text(re.sub(r"<DNSName>[^<]*</DNSName>", f"<DNSName>{xml_text(balancer.dns_name)}</DNSName>",
                                   answer.text()))
            if is_new and self.workers is not None and balancer.security_groups:
                self.workers.create(account, name, zones, self.worker_group(balancer, account))
        return answer

    def admit(self) -> Response | None:
        """The refusal of a new balancer the cloud cannot give worker VMs (``workers.Workers.admit``),
        in the words of 4.0's and 4.2's ``LoadBalancingBackendService.createLoadbalancer``: the
        event chain failed, the balancer is rolled back, nothing is left of it."""
        if self.workers is None:
            return None
        from .workers import AdmissionRefused

        try:
            self.workers.admit()
        except AdmissionRefused as err:
            return elb_error("InternalFailure", f"Failed to create the loadbalancer: {err}", role="Receiver")
        return None

    def delete_load_balancer(self, params: QueryRequest, account: str) -> Response | Captured:
        name = params.get("LoadBalancerName") or ""
        balancer = elb_backend(account).load_balancers.get(name)
        answer = self.forward(params)
        if answer.code == 200 and balancer is not None:
            if self.workers is not None:
                self.workers.delete(account, name)
            ec2 = ec2_backend(account)
            group = ec2.get_security_group_by_name_or_id(internal_group_name(account, name), ec2.default_vpc.id)
            if group is not None and group.id in (balancer.security_groups or []):
                try:
                    ec2.delete_security_group(group_id=group.id)
                except Exception:  # still in use elsewhere: leave it, as the cloud would
                    pass
        return answer


# ------------------------------------------------------------------------------------------
# S3


class S3Service:
    """moto S3, path-style, under ``/services/objectstorage``. Responses stream through untouched."""

    name = "objectstorage"

    def __init__(self, prefix: str, app):
        self.prefix = prefix
        self.app = app
        # moto checks a PUT's If-Match / If-None-Match, then writes: two at once could both pass.
        self._conditional = threading.Lock()

    def __call__(self, environ: dict, start_response):
        try:
            strip_prefix(environ, self.prefix)
            pin_region(environ)
            self.drop_location_constraint(environ)
            if environ.get("REQUEST_METHOD") == "PUT" and ("HTTP_IF_MATCH" in environ or
                                                           "HTTP_IF_NONE_MATCH" in environ):
                with self._conditional:   # the condition and the write it guards are one step, as on S3
                    return self.app(environ, start_response)
            return self.app(environ, start_response)
        except Exception as err:
            _log_exception(f"objectstorage {environ.get('PATH_INFO')}")
            return s3_error("InternalError", f"sandbox objectstorage failed: {err}", 500)(environ, start_response)

    @staticmethod
    def drop_location_constraint(environ: dict) -> None:
        """Eucalyptus has one region: a CreateBucket LocationConstraint means nothing to it."""
        if environ.get("REQUEST_METHOD") != "PUT" or environ.get("QUERY_STRING"):
            return
        path = environ.get("PATH_INFO", "").strip("/")
        if not path or "/" in path:
            return
        if int(environ.get("CONTENT_LENGTH") or 0) or environ.get("HTTP_TRANSFER_ENCODING"):
            body = read_body(environ)
            if b"CreateBucketConfiguration" in body:
                set_body(environ, b"")
                environ.pop("HTTP_CONTENT_MD5", None)


def s3_error(code: str, message: str, status: int) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{xml_text(code)}</Code>'
            f"<Message>{xml_text(message)}</Message><RequestId>{request_id()}</RequestId></Error>")
    return xml_response(body, status)


# ------------------------------------------------------------------------------------------
# dispatcher


class Dispatcher:
    """Routes ``/services/NAME[/...]`` to the application serving NAME (case-insensitively)."""

    def __init__(self, routes: Sequence[tuple[str, Callable]]):
        self.routes = [(prefix.rstrip("/"), app) for prefix, app in routes]

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        lowered = path.lower()
        for prefix, app in self.routes:
            p = prefix.lower()
            if lowered == p or lowered.startswith(p + "/"):
                environ["PATH_INFO"] = prefix + path[len(prefix):]
                return app(environ, start_response)
        known = ", ".join(prefix for prefix, _ in self.routes)
        return query_error("NotFound", f"no service at {quote(path)}; this cloud serves {known}", 404)(
            environ, start_response)

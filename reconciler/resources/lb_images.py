"""Load-balancer image revisions (``euca-install-load-balancer``, the runbook's first half).

A block names a base image (the ``.tgz`` the Eucalyptus package ships, or a bare ``.img``)
and the HAProxy and sysctl settings to write into it. A plan renders the revision without
root (``debugfs`` on a copy), checks the template with ``haproxy -c`` on the image's own
files, reads the servo release the image carries, and renders and checks, for each load
balancer of the file, the configuration that servo writes (``effective_configs``);
``lb_review`` turns that into the plan's notes. The digest is the resource's identity in the
cloud: installed images carry it as the tag ``recon:revision``.

Install = build the customized image, bundle it (deterministic parts, so an interrupted
upload resumes), upload the parts and then the manifest to bucket ``loadbalancer-vN``,
register ``eucalyptus-load-balancer-image-vN`` (hvm, x86_64, "Installed on YYYY-MM-DD at
HH:MM:SS TZ") and tag it; N is the version the plan named, one above the highest the account
can see. Each step is checkpointed in state before its call, so a killed install resumes in
its bucket, and a plan that no longer wants it deletes what it made; registering looks for
the image an earlier attempt registered (name and location) first. A revision whose digest
differs from the installed one is a new version, created before the old one is retired; the
old image's bundle is deleted and the image deregistered once nothing uses it — and never
while a load-balancer emi property names it, a load balancer's worker VM runs it or a worker
group's launch configuration names it (:mod:`.lb_workers`; the plan keeps it until then, see
:mod:`.lb_review`).

This module is the kind: plan-time rendering (with its cache beside the file), the install's
steps and checkpoints, retiring and adopting. The cloud side of those steps (what is installed,
the buckets, signing, uploading and registering) is in :mod:`.lb_install`; the plan's notes
are in :mod:`.lb_review`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .. import __version__, scratch
from ..errors import CloudError, ConfigError, ReconError
from ..imagebuild.source import MAX_IMAGE_BYTES, SHA256_RE, check_source_file
from ..schema import Field
from ..atomic import write_atomic
from .abilities import Adoptable, Prepares, Resumable
from .base import CloudContext, Kind, LoadContext, Traits
from .image_pipeline import (
    REVISION_TAG, Install, Registration, claimable, delete_bundle, deregister, own_image, signing_keys,
)
from .lb_install import DESCRIPTION, IMAGE_PREFIX, enabled_images, installed_images, registered, version_for, version_of
from .lb_workers import holding
from .tags import ownership_tags

if TYPE_CHECKING:   # building and checking an image is imported where it is done, not by `recon validate`
    from ..imagebuild.build import ImageSpec, Revision
    from ..imagebuild.servo import Listener

CACHE_DIR = ".recon-cache/lb_images"   # beside the desired file; ignored by git
CACHE_FORMAT = 2
#: The version a plan says a revision installs as (put in the change's attributes by lb_review).
PLANNED_VERSION = "planned_version"
_ALLOCATING = threading.Lock()

SETTINGS = Field("map", "HAProxy keyword = value (a list for options / log).", items=Field("setting"),
                 references=False)


def _cache_file(base_dir: Path, what: str, key: Any) -> Path:
    digest = hashlib.sha256(json.dumps([CACHE_FORMAT, __version__, what, key], sort_keys=True,
                                       default=str).encode()).hexdigest()
    return base_dir / CACHE_DIR / f"{what}-{digest}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_cache(path: Path, data: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data), mode=0o644)
    except OSError:  # a read-only checkout plans all the same, only slower
        pass


def _servo_listener(listener: Mapping[str, Any]) -> Listener:
    from ..imagebuild.servo import Listener

    certificate = listener.get("ssl_certificate_id")
    return Listener(protocol=listener["protocol"].lower(), port=listener["lb_port"],
                    instance_port=listener["instance_port"],
                    instance_protocol=(listener.get("instance_protocol") or listener["protocol"]).lower(),
                    certificate=None if certificate is None else str(certificate))


def _version_problem(version: str) -> str | None:
    from ..imagebuild.servo import VERSION_RE   # the image modules load where an image is at hand

    return None if VERSION_RE.match(version) else "must be a version such as 1.2 or 1.2.0"


def _literal_ids(instances: Any) -> list[str]:
    """Instance ids written in the file (a reference is known only once the cloud is read)."""
    if not isinstance(instances, list):
        return []
    return [item for item in instances if isinstance(item, str) and "${" not in item]


class LbImages(Kind, Prepares, Resumable, Adoptable):
    name = "lb_images"
    fields = {
        "source": Field("string", "The base image: the package's .tgz or a bare .img, relative to this file.",
                        required=True, references=False),
        "source_sha256": Field("string", "Expected sha256 of the source file.", references=False,
                               check=lambda v: None if SHA256_RE.match(v) else "must be 64 lower-case hex digits"),
        "haproxy": Field("table", "HAProxy settings for the servo's template.", references=False, fields={
            "global": SETTINGS, "defaults": SETTINGS}),
        "sysctl": Field("map", "Kernel settings written to /etc/sysctl.d.", items=Field("scalar"),
                        references=False),
        "max_image_mib": Field("integer", f"Largest raw image recon unpacks from source, in MiB "
                               f"(default {MAX_IMAGE_BYTES >> 20}).", minimum=1, maximum=1 << 20, references=False),
        "servo_version": Field("string", "The servo release the image carries (e.g. 1.2.0), where the image's "
                               "package metadata does not say.", references=False,
                               check=_version_problem),
    }
    outputs = {"image_id": "the registered image (emi-…)", "version": "the N of loadbalancer-vN",
               "digest": "the revision's content digest", "location": "bucket/manifest"}
    traits = Traits(
        computed=frozenset({"image_id", "version", "location"}),
        create_before_destroy=True,
    )

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        where = f"lb_images.{name}"
        check_source_file(ctx.base_dir, block["source"], "base image", f"{where}.source")
        from ..imagebuild.haproxy import render_template
        from ..imagebuild.sysctl import render_sysctl

        haproxy = block.get("haproxy", {})
        # the settings alone can be checked now; the template they go into is read at plan time
        render_template("global\ndefaults\n", global_settings=haproxy.get("global", {}),
                        defaults_settings=haproxy.get("defaults", {}), where=f"{where}.haproxy")
        if block.get("sysctl"):
            render_sysctl(block["sysctl"], where=f"{where}.sysctl")
        return {"source": block["source"],
                **{key: block[key] for key in ("source_sha256", "servo_version", "max_image_mib") if key in block},
                "haproxy": {k: dict(v) for k, v in haproxy.items()}, "sysctl": dict(block.get("sysctl", {}))}

    def spec(self, name: str, attrs: Mapping[str, Any], base_dir: Path) -> ImageSpec:
        from ..imagebuild.build import ImageSpec

        return ImageSpec(address=f"lb_images.{name}", source=base_dir / attrs["source"],
                         source_sha256=attrs.get("source_sha256"),
                         haproxy_global=attrs["haproxy"].get("global", {}),
                         haproxy_defaults=attrs["haproxy"].get("defaults", {}), sysctl=attrs["sysctl"],
                         servo_version=attrs.get("servo_version"),
                         max_size=attrs.get("max_image_mib", MAX_IMAGE_BYTES >> 20) << 20)

    def prepare(self, name, attrs, base_dir, report=None):
        """Render the revision (reading the base image), or take it from the cache beside the file.

        The cache key is the source file's path, size and modification time, the settings and
        recon's version, so a plan of an unchanged block does not unpack a 1 GiB image again;
        apply always builds from the source and checks the digest it gets against the plan's.
        ``report`` hears what a first plan is doing meanwhile.
        """
        prepared = _read_cache(self._revision_cache(attrs, base_dir))
        if prepared is None:
            from ..imagebuild.build import preview_revision

            address = f"lb_images.{name}"
            revision = preview_revision(self.spec(name, attrs, base_dir),
                                        progress=lambda message: report(address, message) if report else None)
            prepared = self.remember(attrs, base_dir, revision)
        return {**attrs, **prepared}

    @staticmethod
    def _revision_cache(attrs: Mapping[str, Any], base_dir: Path) -> Path:
        source = base_dir / attrs["source"]
        info = source.stat()
        return _cache_file(base_dir, "revision", [str(source.resolve()), info.st_size, info.st_mtime_ns,
                                                  {k: v for k, v in attrs.items() if k != "source"}])

    def remember(self, attrs: Mapping[str, Any], base_dir: Path, revision: Revision) -> dict[str, Any]:
        """What a plan needs of a rendered (or built) revision; kept in the cache for the next plan."""
        from ..imagebuild.servo import TEMPLATE_PATH

        others = {f.path: f.content.decode(errors="replace") for f in revision.files if f.path != TEMPLATE_PATH}
        prepared = {"digest": revision.digest, "base_sha256": revision.base_sha256,
                    "haproxy_check": revision.haproxy_check.status, "template_diff": revision.template_diff,
                    "template": revision.rendered_template, "other_files": others,
                    "servo": {"version": revision.servo.version, "source": revision.servo.source}
                    if revision.servo else None,
                    "image_files": {path: base64.b64encode(data).decode()
                                    for path, data in revision.image_files.items()}}
        _write_cache(self._revision_cache(attrs, base_dir), prepared)
        return prepared

    def effective_configs(self, name: str, attrs: Mapping[str, Any], load_balancers: Mapping[str, Mapping[str, Any]],
                          base_dir: Path) -> dict[str, dict[str, Any]]:
        """For each load balancer of the file, the configuration the servo of this revision writes, checked.

        ``attrs`` are the prepared ones. None of it where the servo release is unknown; a config
        error where ``haproxy -c`` refuses one. Checks are cached by the configuration's digest.
        """
        if not attrs.get("servo"):
            return {}
        from ..imagebuild.check import check, stand_in_certificate
        from ..imagebuild.servo import ServoRelease, effective_config, idle_timeout

        release = ServoRelease(**attrs["servo"])
        files = {path: base64.b64decode(data) for path, data in attrs.get("image_files", {}).items()}
        out = {}
        for lb_name, lb in sorted(load_balancers.items()):
            idle = (lb.get("attributes") or {}).get("idle_timeout")
            made = effective_config(attrs["template"], release, load_balancer=lb_name,
                                    listeners=[_servo_listener(item) for item in lb.get("listeners", [])],
                                    idle=idle, servers=_literal_ids(lb.get("instances")))
            run_time = {path: (stand_in_certificate(), what) for path, what in made.run_time_files}
            cached = _cache_file(base_dir, "effective", [made.text, {p: hashlib.sha256(d).hexdigest()
                                                                      for p, d in files.items()}])
            result = _read_cache(cached)
            if result is None:
                checked = check(made.text, files=files, run_time=run_time, effective=True)
                result = {"check": checked.status, "output": checked.output,
                          "adaptations": list(checked.adaptations)}
                if checked.passed:
                    _write_cache(cached, result)
            if result["check"] == "failed":
                raise ConfigError(f"haproxy -c refuses the configuration servo {release.version} would write for "
                                  f"load_balancers.{lb_name}:\n{result['output']}", where=f"lb_images.{name}",
                                  hint="; ".join(result["adaptations"]))
            out[lb_name] = {"config": made.text, "skipped": list(made.skipped), "idle_timeout": idle_timeout(idle),
                            **result}
        return out

    def display_view(self, name, attrs):
        return {k: attrs[k] for k in ("source", "base_sha256", "digest") if k in attrs}

    def live_name(self, name, attrs):
        return attrs.get("digest", name)

    def compare_view(self, name, desired, live, prior):
        return {"digest": desired.get("digest")}, {"digest": live.get("digest")}

    def state_attrs(self, name, attrs, live, prior):
        keep = ("source", "source_sha256", "base_sha256", "digest", "image_id", "version", "location", "template",
                "servo")
        return {k: v for k, v in {**live, **attrs}.items() if k in keep}

    def read(self, ctx, wanted):
        """recon's revisions by digest; the other installed versions by image id (plans count them)."""
        return {item["digest"] or item["image_id"]: item for item in installed_images(ctx.cloud, "lb_images")}

    # --- install ---------------------------------------------------------------------------
    def resume_reason(self, name, progress):
        return (f"resumes the install an interrupted apply began in {progress.get('bucket')} "
                f"(next step: {progress.get('step')})")

    def create(self, ctx: CloudContext, name, attrs):
        """Install the revision in steps, each checkpointed in state before its cloud calls:
        bucket (and its ``recon-revision`` marker), parts, manifest, register, tag. A create that
        finds a checkpoint of this revision resumes it in the same bucket; each step finds what an
        earlier attempt did (parts by ETag, the image by name and location)."""
        from ..bundle.manifest import manifest_name  # cryptography: loaded where an image is bundled
        from ..imagebuild.build import build_revision

        where = f"lb_images.{name}"
        signing = signing_keys(ctx.env, where)
        cloud = ctx.cloud
        with scratch.directory("lb-image-") as work:
            revision = build_revision(self.spec(name, attrs, ctx.base_dir), Path(work),
                                      progress=lambda message: ctx.report(where, message))
            if revision.digest != attrs["digest"]:
                raise ReconError("the base image or settings changed since the plan (digest differs); plan again",
                                 where=where)
            existing = registered(cloud, revision.digest, where)
            if existing:       # installed by an apply that died before recording it
                return existing
            install = Install(ctx, where, revision.digest)
            planned = attrs.get(PLANNED_VERSION)
            with _ALLOCATING:     # revisions installed at once by one apply get distinct buckets
                version = install.progress.get("version")
                if version is None or not claimable(cloud, f"loadbalancer-v{version}", revision.digest, where):
                    version = version_for(cloud, revision.digest, where, planned)
                bucket = f"loadbalancer-v{version}"
                location = f"{bucket}/{manifest_name(IMAGE_PREFIX)}"
                install.bucket(bucket, location, mark=True, version=version)
            if planned and version != planned:
                ctx.report(where, f"v{planned}, which the plan named, is taken now: installing as v{version}")
            # as euca-install-load-balancer registers it: hvm (no kernel needed), described in local time
            registration = Registration(name=f"{IMAGE_PREFIX}-v{version}", description=time.strftime(DESCRIPTION))
            assert revision.image is not None
            install.upload(revision.image, IMAGE_PREFIX, signing, registration)
        image_id = install.register(registration)
        return {"image_id": image_id, "version": version, "location": location, "digest": revision.digest}

    def update(self, ctx, name, before, after, changed):  # a new digest is a new version: never in place
        return self.create(ctx, name, after)

    # --- retire ----------------------------------------------------------------------------
    def delete(self, ctx: CloudContext, name, before, prior):
        """Retire a version, or clean what an interrupted install left: the bundle first, the image
        last, so that a crash part-way leaves the image for the next plan to find and retire again."""
        where = f"lb_images.{name}"
        prior = prior or {}
        cloud = ctx.cloud
        location = prior.get("location") or before.get("location") or ""
        bucket = location.split("/", 1)[0]
        image_id = prior.get("image_id") or before.get("image_id")
        if prior.get("step"):     # what an install interrupted before it was recorded made
            if not claimable(cloud, bucket, prior.get("digest", ""), where):
                bucket = ""       # taken by another install since: not this one's to delete
            if not image_id:
                image_id = own_image(cloud, f"{IMAGE_PREFIX}-v{version_of(location)}", location, where)
        if image_id and image_id in enabled_images(cloud, where):
            raise CloudError(f"not retiring {image_id}: the load-balancer emi property still names it", where=where,
                             hint="point the property at another revision (e.g. ${lb_images.NEW.image_id}) first")
        users = holding(cloud, image_id, where) if image_id else []
        if users:
            raise CloudError(f"not retiring {image_id}: {'; '.join(users)} still uses it", where=where,
                             hint='replace the workers first (workers = "roll" on their load balancer)')
        if bucket and version_of(bucket + "/"):
            delete_bundle(cloud, bucket, where)
        if image_id:
            deregister(cloud, image_id, where)

    # --- adopt -----------------------------------------------------------------------------
    def adopt(self, ctx: CloudContext, name: str, cloud_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """``recon import lb_images.NAME emi-…|vN``: the block in the file describes a version installed
        before (by hand, or by euca-install-load-balancer); tag that image as this revision."""
        where = f"lb_images.{name}"
        images = installed_images(ctx.cloud, where, own=True)
        match = [i for i in images if cloud_id in (i["image_id"], f"v{i['version']}", str(i["version"]))]
        if not match:
            raise ReconError(f"no installed load-balancer image {cloud_id!r}", where=where,
                             hint="`recon images` lists them")
        image = match[0]
        ctx.cloud.call("ec2", "create_tags", where=where, Resources=[image["image_id"]],
                       Tags=[*ownership_tags(ctx.stack, where), {"Key": REVISION_TAG, "Value": attrs["digest"]}])
        return {**image, "digest": attrs["digest"]}

    # --- edges: import, commands -------------------------------------------------------------
    import_ids = "emi-… or vN"

    def prepare_stack(self, name, attrs, prepared, base_dir):
        """The configuration this revision's servo writes for each load balancer of the file (``effective``)."""
        balancers = {address.name: lb for address, lb in prepared.items() if address.kind == "load_balancers"}
        return {**attrs, "effective": self.effective_configs(name, attrs, balancers, base_dir)}

    def review(self, plan, live):
        """The version each revision installs as, and its notes (see lb_review)."""
        from .lb_review import review

        review(plan, live)

    def commands(self, app):
        """``recon images`` and ``recon image build|effective`` (see lb_commands)."""
        from .lb_commands import add_commands

        add_commands(app)


KIND = LbImages()

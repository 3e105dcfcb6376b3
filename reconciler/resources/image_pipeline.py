"""One image pipeline: bundle → upload → register → tag, and retire (DESIGN §6, §11).

Both image kinds install through it: :mod:`.lb_images` (a machine image with a servo
customization, ``loadbalancer-vN`` buckets and the emi property) and :mod:`.images` blocks with
a ``source`` (machine, kernel or ramdisk images from files). A kind decides what to bundle, into
which bucket, under what name; this module does the steps, each checkpointed in state before its
cloud calls (:class:`Install`), so that a killed install resumes where it stopped:

- the bucket (created, and marked with the revision's digest where the kind allocates buckets);
- the parts, uploaded with ``aws-exec-read`` (those the bucket holds already, by ETag, are not sent
  again: the bundler makes identical parts for the same content);
- the manifest, last;
- RegisterImage, which first looks for the image an earlier attempt registered from the same
  location under the same name (its reply lost, or recon killed before recording it);
- the tags: the stack's ownership tags and ``recon:revision`` = the digest.

Retiring deletes the bundle's objects (and its bucket, once empty) before deregistering the
image, so a crash part-way leaves the image for the next plan to find and retire again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import CloudError, ConfigError
from .base import CloudContext
from .tags import ownership_tags

if TYPE_CHECKING:  # the bundle modules load cryptography: imported where an image is bundled
    from ..bundle.manifest import MachineConfiguration
    from ..bundle.upload import PartUploader

REVISION_TAG = "recon:revision"
#: The object in a bucket a kind allocates per revision that says which revision recon installs there.
MARKER = "recon-revision"
GONE_IMAGE = ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable")


@dataclass(frozen=True)
class Registration:
    """What RegisterImage is told of a bundle, and what its manifest's machine configuration says."""

    name: str
    image_type: str = "machine"          # machine | kernel | ramdisk
    architecture: str = "x86_64"
    virtualization: str = "hvm"
    description: str | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None

    @property
    def machine(self) -> MachineConfiguration:
        from ..bundle.manifest import MachineConfiguration

        return MachineConfiguration(architecture=self.architecture, kernel_id=self.kernel_id,
                                    ramdisk_id=self.ramdisk_id)

    def params(self) -> dict[str, str]:
        params = {"Name": self.name, "Architecture": self.architecture}
        if self.image_type == "machine":
            params["VirtualizationType"] = self.virtualization
        optional = {"Description": self.description, "KernelId": self.kernel_id, "RamdiskId": self.ramdisk_id}
        return {**params, **{key: value for key, value in optional.items() if value}}


def signing_keys(env: Mapping[str, str], where: str) -> dict[str, Any]:
    """The certificates and key a bundle is made with, from a sourced eucarc."""
    paths = {}
    for variable in ("EC2_CERT", "EC2_PRIVATE_KEY", "EUCALYPTUS_CERT"):
        if not env.get(variable):
            raise ConfigError(f"bundling an image needs {variable} (the user certificate, its key and "
                              "the cloud certificate)", where=where, hint="source the cloud's eucarc")
        paths[variable] = Path(env[variable])
    account = env.get("EC2_USER_ID") or env.get("EC2_ACCOUNT_NUMBER")
    if not account:
        raise ConfigError("bundling an image needs EC2_USER_ID (the account number)", where=where,
                          hint="source the cloud's eucarc")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        user_cert = x509.load_pem_x509_certificate(paths["EC2_CERT"].read_bytes())
        cloud_cert = x509.load_pem_x509_certificate(paths["EUCALYPTUS_CERT"].read_bytes())
        # OpenSSL's full RSA key check costs 50 ms a load; the check that matters here is cheap and
        # below: that this is the key of the user's certificate, which the cloud checks the manifest with
        user_key = serialization.load_pem_private_key(paths["EC2_PRIVATE_KEY"].read_bytes(), password=None,
                                                      unsafe_skip_rsa_key_validation=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the bundling certificates or key: {type(exc).__name__}", where=where)
    if not _same_public_key(user_key, user_cert):
        raise ConfigError("EC2_PRIVATE_KEY is not the key of the certificate EC2_CERT: the cloud would refuse "
                          "the bundle's signature", where=where, hint="source the cloud's eucarc")
    return {"account_id": account, "user_cert": user_cert, "cloud_cert": cloud_cert, "user_key": user_key}


def _same_public_key(key, cert) -> bool:
    from cryptography.hazmat.primitives import serialization

    def spki(public) -> bytes:
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    return spki(key.public_key()) == spki(cert.public_key())


def own_image(cloud, name: str, location: str, where: str) -> str | None:
    """The id of the account's image called ``name`` registered from ``location``, if there is one."""
    reply = cloud.call("ec2", "describe_images", where=where, Owners=["self"],
                       Filters=[{"Name": "name", "Values": [name]}])
    for image in reply.get("Images", []):
        if image.get("Name") == name and image.get("ImageLocation") == location:
            return image["ImageId"]
    return None


def register(cloud, location: str, registration: Registration, where: str) -> str:
    """Register the bundle at ``location`` once: an image an earlier attempt registered from it under
    the name (its reply lost, or recon killed before tagging it) is that image, not a reason for a
    second one. The cloud refuses a name already in use (InvalidAMIName.Duplicate)."""
    name = registration.name
    found = own_image(cloud, name, location, where)
    if found:
        return found
    reply = cloud.call("ec2", "register_image", where=where, ImageLocation=location, **registration.params(),
                       done_if_retried=("InvalidAMIName.Duplicate",))
    if reply is not None:
        return reply["ImageId"]
    found = own_image(cloud, name, location, where)   # the lost attempt's
    if found is None:
        raise CloudError(f"RegisterImage: the name {name} is in use by an image not registered from {location}",
                         where=where, hint="deregister that image, or rename this one")
    return found


def marked(cloud, bucket: str, digest: str, where: str) -> bool:
    """Whether ``bucket``'s :data:`MARKER` names this revision."""
    marker = cloud.call("s3", "get_object", where=where, Bucket=bucket, Key=MARKER, ignore_codes=("NoSuchKey",))
    return marker is not None and marker["Body"].read().decode(errors="replace") == digest


def claimable(cloud, bucket: str, digest: str, where: str) -> bool:
    """Whether the bucket a checkpoint names is still this revision's to use: missing, empty (made
    right before the crash), or marked with this digest."""
    reply = cloud.call("s3", "list_objects_v2", where=where, Bucket=bucket, MaxKeys=1,
                       ignore_codes=("NoSuchBucket",))
    if reply is None or not reply.get("Contents"):
        return True
    return marked(cloud, bucket, digest, where)


def upload_parts(ctx: CloudContext, image: Path, prefix: str, bucket: str, signing: Mapping[str, Any],
                 content_id: str, registration: Registration, where: str) -> tuple[PartUploader, bytes]:
    """Upload the parts the bucket lacks; the uploader and the signed manifest, to be put last.

    The bundle key is derived from ``content_id`` (the revision's digest), so the same content
    makes the same parts and a resumed upload skips the ones stored already."""
    from ..bundle.manifest import manifest_xml
    from ..bundle.upload import PartUploader
    from ..bundle.writer import BundleKey, bundle_image

    cloud = ctx.cloud
    stored = {o["Key"]: o.get("ETag", "").strip('"')
              for o in cloud.paginate("s3", "list_objects_v2", "Contents", where=where, Bucket=bucket) or []}
    ctx.report(where, f"bundling and uploading to {bucket} ({image.stat().st_size >> 20} MiB image)")
    uploader = PartUploader(cloud, bucket, stored, where=where, progress=lambda sent, skipped, size:
                            ctx.report(where, f"uploaded {sent} parts ({size >> 20} MiB; {skipped} "
                                              "already there)") if sent % 10 == 0 else None,
                            stop=ctx.stop)
    key = BundleKey.derive(signing["user_key"], content_id)
    try:
        bundle = bundle_image(image, prefix, key, uploader)
    finally:
        uploader.close()
    manifest = manifest_xml(bundle, account_id=signing["account_id"], cloud_cert=signing["cloud_cert"],
                            user_cert=signing["user_cert"], user_key=signing["user_key"],
                            machine=registration.machine, image_type=registration.image_type)
    ctx.report(where, f"{len(bundle.parts)} parts in {bucket} ({uploader.skipped} were already there)")
    return uploader, manifest


class Install:
    """One install of a revision (cloud name: its digest), checkpointed step by step.

    What an interrupted apply checkpointed for this revision is picked up (:attr:`progress`), so
    the bucket it chose is used again and each step finds what the earlier attempt did."""

    def __init__(self, ctx: CloudContext, where: str, digest: str):
        self.ctx, self.where, self.digest = ctx, where, digest
        resumed = ctx.resumed(where)
        self.progress: dict[str, Any] = dict(resumed["attrs"]) if resumed and resumed["id"] == digest else {}
        #: The step the earlier attempt had reached (None: a first attempt).
        self.resumed_step: str | None = self.progress.get("step")

    def step(self, name: str, **known: Any) -> None:
        self.progress.update(known, step=name)
        self.ctx.checkpoint(self.where, self.digest, self.progress)

    def bucket(self, bucket: str, location: str, *, mark: bool, **known: Any) -> None:
        """Checkpoint the bucket and location, then make the bucket (marked with the digest if ``mark``)."""
        self.step("bucket", digest=self.digest, bucket=bucket, location=location, **known)
        cloud = self.ctx.cloud
        cloud.call("s3", "create_bucket", where=self.where, Bucket=bucket,
                   ignore_codes=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"))
        if mark:
            cloud.call("s3", "put_object", where=self.where, Bucket=bucket, Key=MARKER, Body=self.digest.encode())

    def upload(self, image: Path, prefix: str, signing: Mapping[str, Any], registration: Registration) -> None:
        """The parts, then the manifest (the cloud must never see a manifest without its parts)."""
        if self.resumed_step in ("register", "tag"):
            return            # uploaded whole by the attempt this one resumes
        bucket = self.progress["bucket"]
        self.step("parts")
        uploader, manifest = upload_parts(self.ctx, image, prefix, bucket, signing, self.digest, registration,
                                          self.where)
        self.step("manifest")
        from ..bundle.manifest import manifest_name

        uploader.put_manifest(manifest_name(prefix), manifest)

    def register(self, registration: Registration) -> str:
        """Register (once) and tag the uploaded bundle; its image id."""
        self.step("register")
        image_id = register(self.ctx.cloud, self.progress["location"], registration, self.where)
        self.step("tag", image_id=image_id)
        self.ctx.cloud.call("ec2", "create_tags", where=self.where, Resources=[image_id],
                            Tags=[*ownership_tags(self.ctx.stack, self.where),
                                  {"Key": REVISION_TAG, "Value": self.digest}])
        return image_id


def delete_bundle(cloud, bucket: str, where: str, prefix: str | None = None) -> None:
    """Delete the bundle's objects (those whose key starts with ``prefix``; every object without one),
    then the bucket if nothing else is left in it."""
    listing = cloud.call("s3", "list_objects_v2", where=where, Bucket=bucket, ignore_codes=("NoSuchBucket",))
    if listing is None:
        return
    keys = [o["Key"] for o in cloud.paginate("s3", "list_objects_v2", "Contents", where=where, Bucket=bucket) or []]
    gone = [key for key in keys if prefix is None or key.startswith(prefix)]
    for start in range(0, len(gone), 1000):
        cloud.call("s3", "delete_objects", where=where, Bucket=bucket,
                   Delete={"Objects": [{"Key": k} for k in gone[start:start + 1000]], "Quiet": True})
    if len(gone) == len(keys):
        cloud.call("s3", "delete_bucket", where=where, Bucket=bucket, ignore_codes=("NoSuchBucket",))


def deregister(cloud, image_id: str, where: str) -> None:
    cloud.call("ec2", "deregister_image", where=where, ImageId=image_id, ignore_codes=GONE_IMAGE)

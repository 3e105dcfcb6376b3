"""``images`` blocks with a ``source``: machine, kernel and ramdisk images recon bundles from files.

The runbook's ``euca-bundle-image [--kernel true | --ramdisk true]``, ``euca-upload-bundle -b
BUCKET`` and ``euca-register [--kernel EKI --ramdisk ERI]``, as a resource. The source is a raw
image (``.img``) or a ``.tgz`` holding one, read with the LB base image's safety rules
(:func:`~reconciler.imagebuild.source.prepare_base_image`).

A machine image's ``files`` (``"/etc/…" = "local/path"``) are written into its root file system
(partition 1 of a disk image, or a partition image) without root, with the debugfs editing LB
images use (:meth:`~reconciler.imagebuild.disk.ExtFileSystem.put`), before it is bundled.

A revision's identity is its digest: of the source file's sha256, the files' paths and sha256
(where given), and the settings that go into the bundle or the registration (type,
architecture, virtualization, description, bucket, the kernel and ramdisk -- a referenced
block's own digest, so that a new kernel makes a new machine image too). The cloud knows a
revision by the tag ``recon:revision``; its name and bundle prefix are ``STACK-BLOCK-DIGEST12``,
so the next revision can be registered beside it (names are unique per account) before the old
one is deregistered and its bundle deleted (create-before-destroy).
Installing and retiring go through the shared :mod:`.image_pipeline`. ``recon import images.X
emi-…`` of a block with a source adopts an image registered by hand only if its bundle holds the
source's bytes (:func:`adopt`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from .. import scratch
from ..addresses import Address, Reference, is_whole_reference, references_in
from ..errors import ConfigError, ReconError, shown
from ..imagebuild.hashcache import cached_sha256, forget
from ..imagebuild.source import MAX_IMAGE_BYTES, SHA256_RE, check_source_file, file_sha256, prepare_base_image
from ..schema import Field
from .base import CloudContext, LoadContext
from .image_pipeline import (
    REVISION_TAG, Install, Registration, delete_bundle, deregister, own_image, signing_keys,
)
from .tags import ownership_tags

TYPES = ("machine", "kernel", "ramdisk")
ARCHITECTURES = ("x86_64", "i386")
VIRTUALIZATIONS = ("paravirtual", "hvm")
ID_PREFIX = {"kernel": "eki-", "ramdisk": "eri-"}
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DIGEST_FORMAT = 1
#: The keys of a source block that make its identity (besides the source's sha256).
IDENTITY = ("type", "architecture", "virtualization", "description", "bucket", "prefix", "kernel", "ramdisk")

FIELDS = {
    "source": Field("string", "A raw image (.img) or a .tgz holding one, relative to this file: recon bundles, "
                    "uploads and registers it.", references=False),
    "source_sha256": Field("string", "Expected sha256 of the source file.", references=False,
                           check=lambda v: None if SHA256_RE.match(v) else "must be 64 lower-case hex digits"),
    "type": Field("string", "What the source is (with source).", choices=TYPES, references=False),
    "architecture": Field("string", "The image's architecture (with source; default x86_64).",
                          choices=ARCHITECTURES, references=False),
    "virtualization": Field("string", "paravirtual (with kernel and ramdisk) or hvm (with source; a machine "
                            "image's default is paravirtual where a kernel is given, else hvm).",
                            choices=VIRTUALIZATIONS, references=False),
    "kernel": Field("string", "A machine image's kernel: ${images.K.id} or an eki-… id."),
    "ramdisk": Field("string", "A machine image's ramdisk: ${images.R.id} or an eri-… id."),
    "bucket": Field("string", "The bucket the bundle is uploaded to (default: STACK-BLOCK).", references=False,
                    check=lambda v: None if BUCKET_RE.match(v) else
                    "must be 3-63 lower-case letters, digits, '.' and '-' (a bucket name)"),
    "description": Field("string", "The image's description (with source).", references=False),
    "max_image_mib": Field("integer", f"Largest raw image recon unpacks from source, in MiB "
                           f"(default {MAX_IMAGE_BYTES >> 20}).", minimum=1, maximum=1 << 20, references=False),
    "files": Field("map", 'Files written into a machine image\'s root file system (ext2/3/4): '
                   '"/absolute/path/in/image" = "local file, relative to this file" (root\'s, mode 0644).',
                   items=Field("string", references=False), references=False),
}
ONLY_WITH_SOURCE = tuple(key for key in FIELDS if key != "source")


def _image_ref(value: str, expected: str, where: str) -> None:
    """``value`` is ``${images.X.id}`` or a literal id of the expected type (eki-/eri-)."""
    if is_whole_reference(value):
        ref = references_in(value)[0]
        if ref.address.kind != "images" or ref.attr != "id":
            raise ConfigError(f"{value} is not an image: write ${{images.NAME.id}} or an {expected}… id", where=where)
        return
    if "${" in value or not re.match(rf"^{expected}[0-9a-fA-F]{{8,17}}$", value):
        raise ConfigError(f"{value!r} is neither ${{images.NAME.id}} nor an {expected}… id", where=where)


def _files(name: str, files: Mapping[str, str], ctx: LoadContext) -> dict[str, str]:
    """The ``files`` table, checked: plain absolute paths in the image, local files that exist."""
    from ..imagebuild.disk import SAFE_PATH   # the image modules load where a file needs them

    checked = {}
    for path, local in sorted(files.items()):
        where = f'images.{name}.files."{path}"'
        if not path.startswith("/"):
            raise ConfigError(f"{path!r} is not an absolute path in the image", where=where,
                              hint='name the file as the image has it, e.g. "/etc/apt/sources.list.d/docker.list"')
        if "\0" in path or ".." in PurePosixPath(path).parts or "//" in path or path.endswith("/") \
                or not SAFE_PATH.match(path):
            raise ConfigError(f"{shown(path)} is not a plain path in the image: letters, digits and ._+@-/ only, "
                              "no '..', no empty parts", where=where)
        if "\0" in local:
            raise ConfigError("the local file's name holds a NUL character", where=where)
        check_source_file(ctx.base_dir, local, "local file", where)
        checked[path] = local
    return checked


def normalize_source(name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
    """The canonical attributes of a source block; config errors name the key."""
    where = f"images.{name}"
    for key in ("id", "name"):
        if key in block:
            raise ConfigError(f"a block with source is registered by recon: give {key} only for an existing image",
                              where=f"{where}.{key}", hint="its name in the cloud is STACK-BLOCK-DIGEST")
    if "type" not in block:
        raise ConfigError("an image from a source needs its type: machine, kernel or ramdisk", where=f"{where}.type")
    check_source_file(ctx.base_dir, block["source"], "source", f"{where}.source")
    image_type = block["type"]
    attrs: dict[str, Any] = {"source": block["source"], "type": image_type,
                             "architecture": block.get("architecture", "x86_64")}
    if image_type == "machine":
        virtualization = block.get("virtualization", "paravirtual" if "kernel" in block else "hvm")
        if virtualization == "paravirtual":
            for key in ("kernel", "ramdisk"):
                if key not in block:
                    raise ConfigError(f"a paravirtual machine image needs its {key} (RegisterImage refuses it "
                                      f"without)", where=f"{where}.{key}",
                                      hint=f'give {key} = "${{images.NAME.id}}", or virtualization = "hvm"')
        for key in ("kernel", "ramdisk"):
            if key in block:
                if virtualization == "hvm":
                    raise ConfigError(f"an hvm image boots its own kernel: {key} is for paravirtual images",
                                      where=f"{where}.{key}")
                _image_ref(block[key], ID_PREFIX[key], f"{where}.{key}")
                attrs[key] = block[key]
        attrs["virtualization"] = virtualization
    else:
        for key in ("kernel", "ramdisk", "virtualization", "files"):
            if key in block:
                raise ConfigError(f"{key} is for machine images, not a {image_type}", where=f"{where}.{key}")
    if block.get("files"):
        attrs["files"] = _files(name, block["files"], ctx)
    prefix = re.sub(r"[^A-Za-z0-9._-]", "-", f"{ctx.stack}-{name}")[:100]
    attrs["prefix"] = prefix
    # a bucket name from the prefix: lower case, at most 63 characters, at least 3 (padded where a name is odd)
    attrs["bucket"] = block.get("bucket") or re.sub(r"[^a-z0-9-]", "-", prefix.lower())[:63].strip("-").ljust(3, "0")
    for key in ("description", "source_sha256", "max_image_mib"):
        if key in block:
            attrs[key] = block[key]
    return attrs


def _sha256(base_dir: Path, local: str, where: str) -> str:
    try:
        return cached_sha256(base_dir / local, base_dir)
    except OSError as exc:
        raise ConfigError(f"cannot read {local!r}: {exc.strerror}", where=where)


def prepare_source(name: str, attrs: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The sha256 of the source file (checked against source_sha256) and of each of ``files``, and
    the revision's digest. Unchanged files are not read again (:mod:`~reconciler.imagebuild.hashcache`)."""
    where = f"images.{name}.source"
    found = _sha256(base_dir, attrs["source"], where)
    if attrs.get("source_sha256") and attrs["source_sha256"] != found:
        raise ConfigError(f"{attrs['source']} has sha256 {found}, not the declared {attrs['source_sha256']}",
                          where=where,
                          hint="a wrong or changed file; fix source_sha256 only if the new file is trusted")
    attrs = {**attrs, "file_sha256": found}
    if attrs.get("files"):
        attrs["files_sha256"] = {path: _sha256(base_dir, local, f'images.{name}.files."{path}"')
                                 for path, local in attrs["files"].items()}
    return {**attrs, "digest": _digest(attrs, {})}


def _digest(attrs: Mapping[str, Any], linked: Mapping[str, str]) -> str:
    """The revision's digest; ``linked``: the digests of the kernel and ramdisk blocks referenced."""
    identity = {key: linked.get(key, attrs.get(key)) for key in IDENTITY}
    if attrs.get("files_sha256"):   # only where given, so that other blocks keep their digests
        identity["files"] = attrs["files_sha256"]
    text = json.dumps([DIGEST_FORMAT, attrs["file_sha256"], identity], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def link_source(name: str, attrs: dict[str, Any], prepared: Mapping[Address, Mapping[str, Any]]) -> dict[str, Any]:
    """The digest with the referenced kernel and ramdisk blocks' identities folded in."""
    linked = {}
    for key in ("kernel", "ramdisk"):
        if not is_whole_reference(attrs.get(key)):
            continue
        ref: Reference = references_in(attrs[key])[0]
        target = prepared.get(ref.address)
        if target is None:   # the planner names the missing block
            continue
        if "source" in target and target.get("type") != key:
            raise ConfigError(f"{ref.address} is a {target.get('type')} image, not a {key}",
                              where=f"images.{name}.{key}")
        linked[key] = target.get("digest") or target.get("id") or target.get("name") or str(ref)
    return {**attrs, "digest": _digest(attrs, linked)} if linked else attrs


def image_name(attrs: Mapping[str, Any]) -> str:
    """The revision's name in the cloud, and its bundle prefix."""
    return f"{attrs['prefix']}-{attrs['digest'][:12]}"


def registration(attrs: Mapping[str, Any]) -> Registration:
    return Registration(name=image_name(attrs), image_type=attrs["type"], architecture=attrs["architecture"],
                        virtualization=attrs.get("virtualization", "hvm"), description=attrs.get("description"),
                        kernel_id=attrs.get("kernel"), ramdisk_id=attrs.get("ramdisk"))


def tagged(images: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The revisions recon registered among DescribeImages' ``images``, by digest."""
    found = {}
    for image in images:
        digest = {t["Key"]: t["Value"] for t in image.get("Tags") or []}.get(REVISION_TAG)
        if digest:
            found[digest] = {"id": image["ImageId"], "name": image.get("Name"), "digest": digest,
                             "image_type": image.get("ImageType"), "location": image.get("ImageLocation"),
                             "kernel_id": image.get("KernelId"), "ramdisk_id": image.get("RamdiskId")}
    return found


def install(ctx: CloudContext, name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Bundle, upload, register and tag the revision (each step checkpointed; see image_pipeline)."""
    where = f"images.{name}"
    digest = attrs["digest"]
    cloud = ctx.cloud
    done = tagged(cloud.paginate("ec2", "describe_images", "Images", where=where, Owners=["self"]))
    if digest in done:        # installed by an apply that died before recording it
        return done[digest]
    signing = signing_keys(ctx.env, where)
    install = Install(ctx, where, digest)
    registered = registration(attrs)
    bucket = attrs["bucket"]
    from ..bundle.manifest import manifest_name

    location = f"{bucket}/{manifest_name(registered.name)}"
    install.bucket(bucket, location, mark=False)
    with scratch.directory("image-") as work:
        try:
            raw = prepare_base_image(ctx.base_dir / attrs["source"], Path(work) / "image.img",
                                     sha256=attrs["file_sha256"], where=f"{where}.source",
                                     max_size=attrs.get("max_image_mib", MAX_IMAGE_BYTES >> 20) << 20)
        except ConfigError as err:
            forget(ctx.base_dir / attrs["source"], ctx.base_dir)
            raise ReconError(f"{err.message}: the source changed since the plan? plan again", where=where) from None
        if attrs.get("files") and install.resumed_step not in ("register", "tag"):
            ctx.report(where, f"writing {len(attrs['files'])} file(s) into the root file system")
            write_files(ctx, name, attrs, raw.path)
        install.upload(raw.path, registered.name, signing, registered)
    image_id = install.register(registered)
    return {"id": image_id, "name": registered.name, "digest": digest, "location": location,
            "kernel_id": registered.kernel_id, "ramdisk_id": registered.ramdisk_id}


def write_files(ctx: CloudContext, name: str, attrs: Mapping[str, Any], image: Path) -> None:
    """Write the block's ``files`` into the root file system of ``image`` (root's, mode 0644), with
    the image's root folder time as the file system's clock, so the same files in the same image
    give the same bytes (and so the same bundle parts, for a resumed upload); then ``e2fsck -fn``."""
    where = f"images.{name}"
    try:
        from ..imagebuild.disk import ExtFileSystem

        fs = ExtFileSystem.of_image(image, label=f"{where}.source ({Path(attrs['source']).name})")
        root = fs.stat("/")
        if root is None or root.type != "directory":
            raise ReconError("has no root folder: not an ext2/3/4 file system", where=f"{where}.source")
        for path, local in attrs["files"].items():
            data = (ctx.base_dir / local).read_bytes()
            if hashlib.sha256(data).hexdigest() != attrs["files_sha256"][path]:
                forget(ctx.base_dir / local, ctx.base_dir)
                raise ReconError(f"{local} changed since the plan; plan again", where=f'{where}.files."{path}"')
            fs.put(path, data, uid=0, gid=0, mode=0o644, when=root.mtime)
        fs.fsck()
    except OSError as exc:
        raise ReconError(f"cannot read a local file: {exc.strerror}", where=f"{where}.files") from None


def retire(ctx: CloudContext, name: str, before: Mapping[str, Any], prior: Mapping[str, Any]) -> None:
    """Delete the revision's bundle (its objects; the bucket once empty), then deregister the image.
    Also cleans what an interrupted install left (``prior`` is then its checkpoint)."""
    where = f"images.{name}"
    cloud = ctx.cloud
    location = prior.get("location") or before.get("location") or ""
    bucket, _, key = location.partition("/")
    prefix = key[: -len(".manifest.xml")] if key.endswith(".manifest.xml") else ""
    image_id = prior.get("id") or prior.get("image_id") or before.get("id")
    if not image_id and prefix:
        image_id = own_image(cloud, prefix, location, where)
    if bucket and prefix:
        delete_bundle(cloud, bucket, where, prefix=f"{prefix}.")
    if image_id:
        deregister(cloud, image_id, where)


def _bundled_sha256(cloud, location: str, signing: Mapping[str, Any], where: str) -> str:
    """The sha256 of the image the bundle at ``location`` holds, decrypted with the user's key."""
    from ..bundle.reader import BundleError, bundle_key, iter_image, read_manifest

    bucket, _, key = location.partition("/")
    folder = key.rpartition("/")[0]

    def fetch(name: str) -> bytes:
        reply = cloud.call("s3", "get_object", where=where, Bucket=bucket, Key=f"{folder}/{name}" if folder else name,
                           ignore_codes=("NoSuchKey",))
        if reply is None:
            raise BundleError(f"{bucket}/{name} not found")
        return reply["Body"].read()

    digest = hashlib.sha256()
    try:
        manifest = read_manifest(fetch(key.rpartition("/")[2]))
        for chunk in iter_image(manifest.parts, manifest.digest, bundle_key(manifest, signing["user_key"]), fetch):
            digest.update(chunk)
    except BundleError as err:
        raise ReconError(f"cannot read the bundle at {location}: {err.message}", where=where) from None
    return digest.hexdigest()


def adopt(ctx: CloudContext, name: str, cloud_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Make the registered image ``cloud_id`` this block's revision: it must be the block's type and
    its bundle must hold the source's bytes; then it is tagged with the stack and the digest."""
    where = f"images.{name}"
    cloud = ctx.cloud
    reply = cloud.call("ec2", "describe_images", where=where, Owners=["self"], ImageIds=[cloud_id],
                       ignore_codes=("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"))
    found = (reply or {}).get("Images") or []
    if not found:
        raise ReconError(f"no image {cloud_id!r} owned by this account", where=where)
    image = found[0]
    if image.get("ImageType", "machine") != attrs["type"]:
        raise ReconError(f"{cloud_id} is a {image.get('ImageType')} image; the block makes a {attrs['type']}",
                         where=where)
    if not image.get("ImageLocation"):
        raise ReconError(f"{cloud_id} has no bundle (an EBS image): recon cannot tell it holds the source",
                         where=where, hint="import it as an existing image: a block with its id, without source")
    ctx.report(where, f"reading the bundle of {cloud_id} at {image['ImageLocation']}")
    bundled = _bundled_sha256(cloud, image["ImageLocation"], signing_keys(ctx.env, where), where)
    with scratch.directory("image-") as work:
        raw = prepare_base_image(ctx.base_dir / attrs["source"], Path(work) / "image.img",
                                 sha256=attrs["file_sha256"], where=f"{where}.source",
                                 max_size=attrs.get("max_image_mib", MAX_IMAGE_BYTES >> 20) << 20)
        expected = raw.sha256
        if attrs.get("files"):   # what recon would bundle: the source with the files written in
            write_files(ctx, name, attrs, raw.path)
            expected = file_sha256(raw.path)
    if expected != bundled:
        raise ReconError(f"the bundle of {cloud_id} is not {attrs['source']}"
                         f"{' with its files' if attrs.get('files') else ''} (its image has sha256 {bundled}, "
                         f"the source {expected})", where=where,
                         hint="import it as an existing image: a block with its id, without source")
    cloud.call("ec2", "create_tags", where=where, Resources=[cloud_id],
               Tags=[*ownership_tags(ctx.stack, where), {"Key": REVISION_TAG, "Value": attrs["digest"]}])
    image = {**image, "Tags": [*(image.get("Tags") or []), {"Key": REVISION_TAG, "Value": attrs["digest"]}]}
    return tagged([image])[attrs["digest"]]

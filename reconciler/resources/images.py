"""Existing images and who may launch them (``euca-modify-image-attribute -l -a all IMAGE``).

An ``images`` block names an image the cloud already has -- machine (emi), kernel (eki) or
ramdisk (eri) alike -- by ``id`` or by ``name``, and optionally declares ``launch_permission``:
the set of groups (only ``all``) and account ids that may launch it. That set is the file's:
permissions the cloud has beyond it are removed, missing ones added (ModifyImageAttribute).
Without ``launch_permission`` the block only looks the image up, for references to its ``id``,
``kernel_id`` and ``ramdisk_id``.

Only an image's owner can change its launch permissions, so the kind reads the account's own
images: one DescribeImages (owner self) for all of them, then one DescribeImageAttribute
(launchPermission) per image the file or the state names -- the EC2 API has no batch form of
that call. recon never registers or deregisters such an image: removing its block revokes the
permissions recon granted (as state recorded them) and leaves the image.

A block with a ``source`` is an image recon makes from a file -- bundled, uploaded, registered
and, when its content or settings change, replaced by a new revision (see :mod:`.image_files`):
the cloud knows it by its digest, and removing the block deregisters it and deletes its bundle.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import ConfigError, ReconError
from ..schema import Field
from . import image_files
from .abilities import Adoptable, ChecksLive, Importable, Preexisting, Prepares, Resumable
from .base import Kind, LoadContext, Traits

IMAGE_ID_RE = re.compile(r"^[ae][mkr]i-[0-9a-fA-F]{8,17}$")
ACCOUNT_RE = re.compile(r"^\d{12}$")


def permission_name(item: Mapping[str, str]) -> str:
    """A launch permission as the file writes it: ``all`` or an account id."""
    return item.get("Group") or item.get("UserId") or "?"


def permission_api(name: str) -> dict[str, str]:
    return {"Group": name} if name == "all" else {"UserId": name}


class Images(Kind, Preexisting, ChecksLive, Importable, Prepares, Resumable, Adoptable):
    name = "images"
    noun = "image"
    fields = {
        "id": Field("string", "The image id (emi-…, eki-…, eri-…).", references=False,
                    check=lambda v: None if IMAGE_ID_RE.match(v) else "expected an image id like emi-0123abcd"),
        "name": Field("string", "The image's name, when no id is given; it must name exactly one image.",
                      references=False),
        "launch_permission": Field("list", 'Who may launch it: "all" and/or 12-digit account ids.',
                                   items=Field("string", references=False), references=False),
        **image_files.FIELDS,
    }
    outputs = {"id": "the image id", "name": "the image's name", "kernel_id": "its kernel (eki-…), if any",
               "ramdisk_id": "its ramdisk (eri-…), if any"}
    # an image from a source gets its id when registered; a new revision is registered before the old goes
    traits = Traits(set_attrs=frozenset({"launch_permission"}), computed=frozenset({"id", "name", "kernel_id",
                                                                                     "ramdisk_id"}),
                    create_before_destroy=True)

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        where = f"images.{name}"
        if "source" in block:
            attrs = image_files.normalize_source(name, block, ctx)
        else:
            extra = [key for key in image_files.ONLY_WITH_SOURCE if key in block]
            if extra:
                raise ConfigError(f"{extra[0]} is for an image recon makes from a source file",
                                  where=f"{where}.{extra[0]}",
                                  hint="give source, or only id or name (and launch_permission) for an existing image")
            if ("id" in block) == ("name" in block):
                raise ConfigError("give exactly one of id or name", where=where)
            attrs = {key: block[key] for key in ("id", "name") if key in block}
        if "launch_permission" in block:
            for index, item in enumerate(block["launch_permission"]):
                if item != "all" and not ACCOUNT_RE.match(item):
                    raise ConfigError(f"{item!r} is neither \"all\" nor a 12-digit account id",
                                      where=f"{where}.launch_permission[{index}]")
            attrs["launch_permission"] = sorted(set(block["launch_permission"]))
        return attrs

    def prepare(self, name, attrs, base_dir, report=None):
        return image_files.prepare_source(name, attrs, base_dir) if "source" in attrs else attrs

    def prepare_stack(self, name, attrs, prepared, base_dir):
        return image_files.link_source(name, attrs, prepared) if "source" in attrs else attrs

    def removal_reason(self, name, prior):
        if "digest" in prior:
            return "removed from the file: the image is deregistered and its bundle deleted"
        return "removed from the file: the launch permissions recon granted are revoked, the image stays"

    def retires_previous(self, name, prior, old, new):
        if "digest" not in prior or old.get("id") == new.get("id"):
            return None
        return (f"the block names the existing image {new.get('id')} now: the revision recon registered is "
                "deregistered and its bundle deleted, once nothing uses it")

    def resume_reason(self, name, progress):
        return f"resumes the install an interrupted apply began in {progress.get('bucket')} " \
               f"(next step: {progress.get('step')})"

    def live_name(self, name, attrs):
        if "source" in attrs:
            return attrs.get("digest", name)
        return attrs.get("id") or attrs["name"]

    def creatable(self, name, attrs):
        return "source" in attrs

    def display_view(self, name, attrs):
        if "source" not in attrs:
            return dict(attrs)
        shown = ("source", "files", "type", "architecture", "virtualization", "kernel", "ramdisk", "bucket",
                 "description", "digest", "launch_permission")
        return {key: attrs[key] for key in shown if key in attrs}

    def state_attrs(self, name, attrs, live, prior):
        return {**{k: v for k, v in live.items() if k in self.outputs or k == "location"}, **attrs}

    def missing_message(self, cloud_name):
        what = cloud_name if IMAGE_ID_RE.match(str(cloud_name)) else f"named {cloud_name!r}"
        return (f"no image {what} owned by this account (recon changes launch permissions only on "
                "images the account owns; register it first)")

    def check(self, name, resolved, live):
        if "name" not in resolved:
            return []
        ids = sorted({image["id"] for image in live.get("images", {}).values()
                      if image.get("name") == resolved["name"]})
        if len(ids) > 1:
            return [f"{len(ids)} images are named {resolved['name']!r} ({', '.join(ids)}): give id instead"]
        return []

    def compare_view(self, name, desired, live, prior):
        want: dict[str, Any] = {"id": live["id"]}
        if "source" in desired:
            want["digest"] = desired["digest"]
        if "launch_permission" in desired:
            want["launch_permission"] = desired["launch_permission"]
        return want, {key: live.get(key) for key in want}

    def read(self, ctx, wanted):
        images = ctx.cloud.paginate("ec2", "describe_images", "Images", where="images", Owners=["self"])
        live: dict[str, dict[str, Any]] = {}
        names: dict[str, list[str]] = {}
        live.update(image_files.tagged(images))
        for image in images:
            live[image["ImageId"]] = {
                "id": image["ImageId"], "name": image.get("Name"), "image_type": image.get("ImageType"),
                "kernel_id": image.get("KernelId"), "ramdisk_id": image.get("RamdiskId"),
            }
            names.setdefault(image.get("Name"), []).append(image["ImageId"])
        for image_name, ids in names.items():
            if len(ids) == 1 and image_name and image_name not in live:
                live[image_name] = live[ids[0]]
        for key in self._named(wanted):
            image = live.get(key)
            if image is not None and "launch_permission" not in image:
                reply = ctx.cloud.call("ec2", "describe_image_attribute", where=f"images ({image['id']})",
                                       ImageId=image["id"], Attribute="launchPermission")
                image["launch_permission"] = sorted({permission_name(p) for p in reply.get("LaunchPermissions", [])})
        return live

    def import_block(self, ctx, name, cloud_id, options):
        image = self.read(ctx, {cloud_id: None}).get(cloud_id)
        if image is None:
            raise ReconError(f"no image {cloud_id!r} owned by this account", where=f"images.{name}")
        return {"id": image["id"], "launch_permission": image.get("launch_permission", [])}, image["id"]

    def adopt(self, ctx, name, cloud_id, attrs):
        """``recon import images.X emi-…`` of a block with a source: an image registered by hand from it."""
        if "source" not in attrs:
            raise ReconError(f"images.{name} is already in the file")
        return image_files.adopt(ctx, name, cloud_id, attrs)

    @staticmethod
    def _named(wanted: Mapping[str, dict[str, Any] | None]) -> list[str]:
        """The ids and names the file's blocks and the state's entries give."""
        keys = []
        for key, attrs in wanted.items():
            if attrs is None:
                keys.append(key)  # a state entry: its id is the image id or name
            else:
                keys.extend(attrs[k] for k in ("id", "name", "digest") if k in attrs)
        return keys

    def _change(self, ctx, name: str, image_id: str, add: set[str], remove: set[str]) -> None:
        if not add and not remove:
            return
        ctx.cloud.call("ec2", "modify_image_attribute", where=f"images.{name}", ImageId=image_id,
                       Attribute="launchPermission", LaunchPermission={
                           "Add": [permission_api(p) for p in sorted(add)],
                           "Remove": [permission_api(p) for p in sorted(remove)]})

    def create(self, ctx, name, attrs):
        made = image_files.install(ctx, name, attrs)
        self._change(ctx, name, made["id"], set(attrs.get("launch_permission", [])), set())
        return made

    def update(self, ctx, name, before, after, changed):
        have, want = set(before.get("launch_permission") or []), set(after.get("launch_permission", []))
        self._change(ctx, name, before["id"], want - have, have - want)
        return {"id": before["id"]}

    def delete(self, ctx, name, before, prior):
        if "digest" in (prior or {}):
            image_files.retire(ctx, name, before, prior)
            return
        granted = set((prior or {}).get("launch_permission", []))
        self._change(ctx, name, before["id"], set(), granted & set(before.get("launch_permission") or []))


KIND = Images()

"""One LB image revision: the base image with recon's files written into it (issue 4).

``preview_revision`` renders the files, diffs the template and computes the revision's content
digest without writing an image (what a plan shows); ``build_revision`` also writes a customized
copy of the base image and checks its file system; ``build_image`` is ``recon image build ADDR --out
DIR``: the image plus ``revision.json`` and ``haproxy_template.conf.diff`` beside it.

The content digest is sha256 over a version line, the base image's sha256 and, for each rendered
file in path order, its path, mode, owner, length and bytes; equal inputs give equal digests on
any machine. Writes use the shipped template's modification time as the file system clock, so the
same revision built twice gives byte-identical images (and so identical bundle parts).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import scratch
from ..errors import ConfigError, ReconError
from .disk import ExtFileSystem
from .check import HaproxyCheck, check, file_references
from .haproxy import render_template
from .servo import TEMPLATE_PATH, ServoRelease, read_installed, servo_release
from .source import MAX_IMAGE_BYTES, BaseImage, prepare_base_image
from .sysctl import SYSCTL_PATH, render_sysctl

DIGEST_VERSION = b"recon-lb-image-revision 1\n"
READ_LIMIT = 4 << 20            # bytes of one file HAProxy reads from the image
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageSpec:
    """What the desired file says about one ``lb_images`` revision."""

    address: str                                   # lb_images.v3, for messages
    source: Path
    source_sha256: str | None = None
    haproxy_global: Mapping[str, Any] = field(default_factory=dict)
    haproxy_defaults: Mapping[str, Any] = field(default_factory=dict)
    sysctl: Mapping[str, Any] = field(default_factory=dict)
    servo_version: str | None = None               # where the image does not say
    partition: int = 1
    max_size: int = MAX_IMAGE_BYTES                # largest raw image unpacked


@dataclass(frozen=True)
class RenderedFile:
    """A file recon writes into the image."""

    path: str
    content: bytes
    uid: int = 0
    gid: int = 0
    mode: int = 0o644


@dataclass(frozen=True)
class Revision:
    """A rendered (and, where ``image`` is set, built) revision."""

    address: str
    base_sha256: str
    files: tuple[RenderedFile, ...]
    shipped_template: str
    rendered_template: str
    template_diff: str                             # unified, a/… b/… labels; empty when unchanged
    haproxy_check: HaproxyCheck
    digest: str
    servo: ServoRelease | None = None              # None: neither the image nor the block says
    image_files: Mapping[str, bytes] = field(default_factory=dict)   # what the template makes HAProxy read
    image: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (no file contents but the template's)."""
        return {
            "address": self.address, "digest": self.digest, "base_sha256": self.base_sha256,
            "image": str(self.image) if self.image else None,
            "files": [{"path": f.path, "size": len(f.content), "uid": f.uid, "gid": f.gid, "mode": f"{f.mode:04o}",
                       "sha256": hashlib.sha256(f.content).hexdigest()} for f in self.files],
            "template_diff": self.template_diff,
            "haproxy_check": asdict(self.haproxy_check),
            "servo": asdict(self.servo) if self.servo else None,
        }


def revision_digest(base_sha256: str, files: tuple[RenderedFile, ...]) -> str:
    """The revision's content digest (see the module docstring)."""
    digest = hashlib.sha256(DIGEST_VERSION)
    digest.update(f"base {base_sha256}\n".encode())
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"file {f.path} {f.mode:o} {f.uid} {f.gid} {len(f.content)}\n".encode())
        digest.update(f.content)
    return digest.hexdigest()


def template_diff(shipped: str, rendered: str) -> str:
    """Unified diff of the template, labelled like git's."""
    name = TEMPLATE_PATH.lstrip("/")
    return "".join(difflib.unified_diff(shipped.splitlines(keepends=True), rendered.splitlines(keepends=True),
                                        fromfile=f"a/{name}", tofile=f"b/{name}"))


def image_files(fs: ExtFileSystem, text: str, where: str) -> dict[str, bytes]:
    """The files ``text`` makes HAProxy read, from the image; a config error for one it lacks."""
    found = {}
    for ref in file_references(text):
        named = f"the template's line {ref.line}, {ref.directive}, names {ref.path}"
        if not ref.path.startswith("/"):
            raise ConfigError(f"{named}: a relative path", where=where,
                              hint="name files by absolute path: HAProxy would look for it in its working folder")
        try:
            info = fs.stat(ref.path)
        except ReconError:
            raise ConfigError(f"{named}: not a plain absolute path", where=where) from None
        if info is None:
            raise ConfigError(f"{named}, which the image does not have", where=where,
                              hint="put the file in the base image, or change the template")
        if info.type != "regular" or info.size > READ_LIMIT:
            what = f"a {info.type}" if info.type != "regular" else f"{info.size} bytes (over {READ_LIMIT})"
            raise ConfigError(f"{named}, which is {what} in the image; recon checks files up to {READ_LIMIT} bytes",
                              where=where)
        found[ref.path] = fs.read(ref.path)
    return found


def _render(spec: ImageSpec, fs: ExtFileSystem, base_sha256: str, *, haproxy: str | None,
            progress: Progress) -> Revision:
    progress("reading the template, the files it names and the servo release from the image")
    info = fs.stat(TEMPLATE_PATH)
    if info is None:
        raise ConfigError(f"the base image has no {TEMPLATE_PATH}", where=f"{spec.address}.source",
                          hint="is this a Eucalyptus load-balancer image?")
    try:
        shipped = fs.read(TEMPLATE_PATH).decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{TEMPLATE_PATH} in the base image is not UTF-8 text", where=f"{spec.address}.source")
    rendered = render_template(shipped, global_settings=spec.haproxy_global, defaults_settings=spec.haproxy_defaults,
                               where=f"{spec.address}.haproxy")
    files = [RenderedFile(TEMPLATE_PATH, rendered.encode(), info.uid, info.gid, info.mode)]
    if spec.sysctl:
        files.append(RenderedFile(SYSCTL_PATH, render_sysctl(spec.sysctl, where=f"{spec.address}.sysctl").encode()))
    read = image_files(fs, rendered, f"{spec.address}.source")
    servo = servo_release(read_installed(fs), spec.servo_version, spec.address)
    progress("checking the rendered template with haproxy -c")
    checked = check(rendered, files=read, haproxy=haproxy)
    if checked.status == "failed":
        raise ConfigError("haproxy -c refuses the rendered template:\n" + checked.output,
                          where=f"{spec.address}.haproxy", hint="; ".join(checked.adaptations))
    return Revision(address=spec.address, base_sha256=base_sha256, files=tuple(files), shipped_template=shipped,
                    rendered_template=rendered, template_diff=template_diff(shipped, rendered),
                    haproxy_check=checked, digest=revision_digest(base_sha256, tuple(files)), servo=servo,
                    image_files=read)


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _base(spec: ImageSpec, dest: Path, progress: Progress) -> tuple[BaseImage, ExtFileSystem]:
    """The base image at ``dest`` and its root file system, checked clean with ``e2fsck -fn``.

    Errors name the block and its source, never the private copy recon unpacked.
    """
    where = f"{spec.address}.source"
    try:
        size = f" ({_size(spec.source.stat().st_size)})"
    except OSError:
        size = ""
    progress(f"unpacking {spec.source.name}{size}" + (" and checking its sha256" if spec.source_sha256 else ""))
    base = prepare_base_image(spec.source, dest, sha256=spec.source_sha256, where=where, max_size=spec.max_size)
    try:
        fs = ExtFileSystem.from_partition(base.path, spec.partition, label=f"{where} ({spec.source.name})")
        progress(f"checking the file system of {spec.source.name} with e2fsck -fn")
        fs.fsck()
    except ReconError as err:
        raise ConfigError(f"{spec.source.name}: {err.message}", where=where, hint=err.hint) from None
    return base, fs


def _quiet(message: str) -> None:
    pass


def preview_revision(spec: ImageSpec, *, haproxy: str | None = None, progress: Progress = _quiet) -> Revision:
    """Render and check the revision without writing a customized image; ``progress`` hears each step."""
    with scratch.directory("preview-") as tmp:
        base, fs = _base(spec, Path(tmp) / "base.img", progress)
        return _render(spec, fs, base.sha256, haproxy=haproxy, progress=progress)


def _write(fs: ExtFileSystem, revision: Revision, when: int) -> None:
    for f in revision.files:
        fs.put(f.path, f.content, uid=f.uid, gid=f.gid, mode=f.mode, when=when)


def image_name(spec: ImageSpec) -> str:
    """File name of the customized image: the source's name with an ``.img`` suffix."""
    name = spec.source.name
    for suffix in (".tar.gz", ".tgz", ".img", ".raw"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}.img"


def build_revision(spec: ImageSpec, work_dir: Path, *, haproxy: str | None = None,
                   progress: Progress = _quiet) -> Revision:
    """Copy the base image into ``work_dir``, write the revision's files, check the file system."""
    base, fs = _base(spec, Path(work_dir) / image_name(spec), progress)
    revision = _render(spec, fs, base.sha256, haproxy=haproxy, progress=progress)
    info = fs.stat(TEMPLATE_PATH)
    assert info is not None
    progress("writing the files into the image and checking it with e2fsck -fn")
    _write(fs, revision, info.mtime)      # each write is read back and compared
    fs.fsck()
    return replace(revision, image=base.path)


def build_image(spec: ImageSpec, out_dir: Path, *, haproxy: str | None = None,
                progress: Progress = _quiet) -> Revision:
    """``recon image build``: the customized image, ``revision.json`` and the template diff in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".recon-build-", dir=out_dir) as tmp:
        revision = build_revision(spec, Path(tmp), haproxy=haproxy, progress=progress)
        assert revision.image is not None
        image = out_dir / revision.image.name
        shutil.move(revision.image, image)
    revision = replace(revision, image=image)
    (out_dir / "haproxy_template.conf.diff").write_text(revision.template_diff)
    (out_dir / "revision.json").write_text(json.dumps(revision.summary(), indent=2) + "\n")
    return revision

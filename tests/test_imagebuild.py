"""LB image revisions built without root (reconciler.imagebuild), with the real e2fsprogs and haproxy.

Images are the few-MiB test images of ``testimage``: MBR, ext3 partition 1 at sector 2048, the
template of a servo release (by default the runbook's 2014 one) with the servo's package metadata.
Tests that need a tool skip, saying which, where it is not installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, ReconError
from reconciler.imagebuild.build import (TEMPLATE_PATH, ImageSpec, build_image, build_revision, preview_revision,
                                         revision_digest)
from reconciler.imagebuild.disk import ExtFileSystem, find_partition, parse_mbr, which
from reconciler.imagebuild.check import check, file_references
from reconciler.imagebuild.haproxy import render_template
from reconciler.imagebuild.source import file_sha256, prepare_base_image
from reconciler.imagebuild.standins import make_rootfs
from reconciler.imagebuild.sysctl import SYSCTL_PATH, render_sysctl
from reconciler.imagebuild.servo import ERROR_FILE
from reconciler.imagebuild.testimage import (ERROR_503, TEMPLATE_2014, make_test_image, mbr_sector, pack_tgz,
                                             shipped_template)

needs_e2fsprogs = pytest.mark.skipif(
    not all(which(tool) for tool in ("debugfs", "e2fsck", "mkfs.ext4")),
    reason="e2fsprogs (debugfs, e2fsck, mkfs.ext4) is not installed")
needs_haproxy = pytest.mark.skipif(which("haproxy") is None, reason="haproxy is not installed")

DEFAULTS = {"timeout connect": "5s", "timeout client": "2m", "timeout http-keep-alive": "10s", "retries": 3,
            "options": ["dontlognull", "redispatch", "http-server-close"]}
SYSCTL = {"net.ipv4.tcp_keepalive_time": 600, "net.core.somaxconn": "4096"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    if not all(which(tool) for tool in ("debugfs", "mkfs.ext4")):
        pytest.skip("e2fsprogs (debugfs, mkfs.ext4) is not installed")
    return make_test_image(tmp_path_factory.mktemp("base") / "eucalyptus-load-balancer-image.img")


@pytest.fixture(scope="module")
def base_tgz(base, tmp_path_factory) -> Path:
    return pack_tgz(base, tmp_path_factory.mktemp("tgz") / "eucalyptus-load-balancer-image-1.1.0-212.tgz")


def spec(source: Path, **changes) -> ImageSpec:
    return ImageSpec(**{"address": "lb_images.v3", "source": source, "source_sha256": file_sha256(source),
                        "haproxy_defaults": DEFAULTS, "sysctl": SYSCTL, **changes})


# --------------------------------------------------------------------------------------------
# MBR


def entry(status: int, kind: int, start: int, sectors: int) -> bytes:
    return bytes([status, 0, 0, 0, kind, 0, 0, 0]) + start.to_bytes(4, "little") + sectors.to_bytes(4, "little")


def test_mbr_parsing_on_a_crafted_sector(tmp_path):
    sector = bytes(446) + entry(0x80, 0x83, 2048, 4096) + bytes(16) + entry(0, 0x82, 6144, 100) + bytes(16) \
        + b"\x55\xaa"
    first, third = parse_mbr(sector)
    assert (first.number, first.type, first.bootable, first.start, first.sectors) == (1, 0x83, True, 2048, 4096)
    assert (first.offset, first.size) == (2048 * 512, 4096 * 512)
    assert (third.number, third.type, third.bootable, third.start) == (3, 0x82, False, 6144)

    with pytest.raises(ReconError, match="no MBR partition table"):
        parse_mbr(sector[:510] + b"\x00\x00")
    with pytest.raises(ReconError, match="shorter than one"):
        parse_mbr(sector[:100])
    with pytest.raises(ReconError, match="GPT"):
        parse_mbr(bytes(446) + entry(0, 0xEE, 1, 1000) + bytes(48) + b"\x55\xaa")
    with pytest.raises(ReconError, match="invalid status"):
        parse_mbr(bytes(446) + entry(0x12, 0x83, 1, 1000) + bytes(48) + b"\x55\xaa")

    image = tmp_path / "disk.img"
    image.write_bytes(sector + bytes(2048 * 512))     # partition 1 would end far past the file's end
    with pytest.raises(ReconError, match="past the end") as err:
        find_partition(image, 1)
    assert str(image) in str(err.value)
    with pytest.raises(ReconError, match="has no partition 2"):
        find_partition(image, 2)
    image.write_bytes(mbr_sector(2048, 16) + bytes(2064 * 512))
    assert find_partition(image, 1).offset == 1024 * 1024


# --------------------------------------------------------------------------------------------
# customization round trip


@needs_e2fsprogs
def test_customization_round_trip(base_tgz, tmp_path):
    revision = build_revision(spec(base_tgz), tmp_path)
    assert revision.image is not None and revision.image.parent == tmp_path
    fs = ExtFileSystem.from_partition(revision.image)
    template = fs.read(TEMPLATE_PATH).decode()
    assert template == revision.rendered_template
    assert "timeout connect 5s" in template and "contimeout" not in template
    info = fs.stat(TEMPLATE_PATH)
    assert (info.uid, info.gid, info.mode, info.type) == (500, 500, 0o644, "regular")   # the servo's, kept
    sysctl = fs.stat(SYSCTL_PATH)
    assert (sysctl.uid, sysctl.gid, sysctl.mode) == (0, 0, 0o644)
    assert fs.read(SYSCTL_PATH).decode().splitlines()[1:] == [
        "net.core.somaxconn = 4096", "net.ipv4.tcp_keepalive_time = 600"]
    assert fs.stat("/etc/sysctl.d").mode == 0o755
    # e2fsck itself, not only recon's wrapper, finds the file system clean
    done = subprocess.run([which("e2fsck"), "-fn", f"{revision.image}?offset={1024 * 1024}"], capture_output=True)
    assert done.returncode == 0, done.stdout
    # the revision says what changed
    assert revision.template_diff.startswith(f"--- a{TEMPLATE_PATH}\n+++ b{TEMPLATE_PATH}\n")
    assert "- contimeout      1000\n" in revision.template_diff
    assert "+ timeout connect 5s\n" in revision.template_diff
    assert revision.shipped_template == TEMPLATE_2014
    assert revision.servo.version == "1.0.4" and revision.servo.source.endswith(
        "/site-packages/Eucalyptus_Loadbalancer_Servo-1.0.4-py2.6.egg-info")
    if which("haproxy"):
        assert revision.haproxy_check.passed, revision.haproxy_check.output
        assert any("servo" in note for note in revision.haproxy_check.adaptations)
    else:
        assert revision.haproxy_check.status == "skipped"


# The runbook's customization, and the template it gives on the image of each servo release.
RUNBOOK = {"timeout connect": "5s", "timeout client": "2m", "timeout server": "2m", "timeout http-keep-alive": "10s",
           "timeout queue": "1m", "timeout check": "5s", "retries": 3,
           "options": ["dontlognull", "redispatch", "http-server-close"]}
GLOBAL = ("#template\nglobal\n maxconn 100000\n ulimit-n 655360\n pidfile /var/run/haproxy.pid\n\n"
          "#drop privileges after port binding\n user servo\n group servo\n\ndefaults\n")
ADDED = " retries 3\n timeout check 5s\n timeout http-keep-alive 10s\n timeout queue 1m\n"
CUSTOMIZED = {
    "1.0.4": GLOBAL + " timeout connect 5s\n timeout client 2m\n timeout server 2m\n option dontlognull\n"
                      " option redispatch\n option http-server-close # affects KA on/off\n" + ADDED,
    "1.1.0": GLOBAL + " timeout connect     5s\n timeout client 2m\n timeout server 2m\n option dontlognull\n"
                      " option redispatch\n option http-server-close\n" + ADDED,
    "1.2.0": GLOBAL + " timeout connect     5s\n timeout client 2m\n timeout server 2m\n"
                      " errorfile 503 /etc/load-balancer-servo/503.http\n option dontlognull\n"
                      " option redispatch\n option http-server-close\n" + ADDED + " \n",
}


@needs_e2fsprogs
@pytest.mark.parametrize("servo_version", sorted(CUSTOMIZED))
def test_the_runbook_customization_on_each_servo_release(servo_version, tmp_path):
    image = make_test_image(tmp_path / "eucalyptus-load-balancer-image.img", servo_version=servo_version)
    assert ExtFileSystem.from_partition(image).read(TEMPLATE_PATH).decode() == shipped_template(servo_version)
    revision = build_revision(spec(image, haproxy_defaults=RUNBOOK, sysctl={}), tmp_path / "work")
    assert revision.rendered_template == CUSTOMIZED[servo_version]
    assert revision.servo.version == servo_version
    assert "+ option dontlognull\n+ option redispatch\n" in revision.template_diff     # the runbook's edit shows
    done = subprocess.run([which("e2fsck"), "-fn", f"{revision.image}?offset={1024 * 1024}"], capture_output=True)
    assert done.returncode == 0, done.stdout
    if which("haproxy"):
        assert revision.haproxy_check.passed, revision.haproxy_check.output
    built = ExtFileSystem.from_partition(revision.image)
    if servo_version >= "1.2":                           # the errorfile line and its file stay
        assert f"errorfile 503 {ERROR_FILE}" in built.read(TEMPLATE_PATH).decode()
        assert built.read(ERROR_FILE) == ERROR_503 and revision.image_files == {ERROR_FILE: ERROR_503}
    else:
        assert built.stat(ERROR_FILE) is None and revision.image_files == {}


@needs_e2fsprogs
def test_the_servo_release_comes_from_the_image_else_from_the_block(base, base_tgz, tmp_path):
    with tarfile.open(base_tgz) as tar:
        assert tar.getnames() == [base.name]            # the .img alone, as euca-install-load-balancer wants it
    assert preview_revision(spec(base, servo_version="1.0")).servo.version == "1.0.4"    # the image says it
    with pytest.raises(ConfigError, match="servo_version is 1.2, but the image carries servo 1.0.4") as err:
        preview_revision(spec(base, servo_version="1.2"))
    assert err.value.where == "lb_images.v3.servo_version"
    unknown = make_test_image(tmp_path / "unknown.img", servo_version=None)
    assert preview_revision(spec(unknown)).servo is None
    declared = preview_revision(spec(unknown, servo_version="1.1")).servo
    assert (declared.version, declared.source) == ("1.1", "servo_version in lb_images.v3")


@needs_e2fsprogs
def test_owner_mode_and_extended_attributes_are_kept(tmp_path):
    image = make_test_image(tmp_path / "lb.img")
    fs = ExtFileSystem.from_partition(image)
    fs.set_owner(TEMPLATE_PATH, uid=498, gid=70001, mode=0o640)
    label = tmp_path / "label"
    label.write_bytes(b"system_u:object_r:etc_t:s0\0")
    subprocess.run([which("debugfs"), "-w", "-R", f'ea_set -f "{label}" {TEMPLATE_PATH} security.selinux',
                    fs.device], check=True, capture_output=True)

    revision = build_revision(spec(image, sysctl={}), tmp_path / "work")
    built = ExtFileSystem.from_partition(revision.image)
    info = built.stat(TEMPLATE_PATH)
    assert (info.uid, info.gid, info.mode) == (498, 70001, 0o640)
    assert built.read(TEMPLATE_PATH).decode() == revision.rendered_template
    saved = tmp_path / "saved"
    subprocess.run([which("debugfs"), "-R", f'ea_get -f "{saved}" {TEMPLATE_PATH} security.selinux', built.device],
                   check=True, capture_output=True)
    assert saved.read_bytes() == label.read_bytes()
    assert built.stat(SYSCTL_PATH) is None       # no sysctl settings, no file


@needs_e2fsprogs
def test_builds_are_reproducible_and_the_digest_tracks_content(base, tmp_path):
    first = build_revision(spec(base), tmp_path / "one")
    second = build_revision(spec(base), tmp_path / "two")
    assert file_sha256(first.image) == file_sha256(second.image)
    assert first.digest == second.digest == preview_revision(spec(base)).digest
    # the order of keys in the file does not matter; a changed value does
    reordered = spec(base, haproxy_defaults=dict(reversed(list(DEFAULTS.items()))))
    assert preview_revision(reordered).digest == first.digest
    changed = preview_revision(spec(base, haproxy_defaults={**DEFAULTS, "timeout client": "3m"}))
    assert changed.digest != first.digest
    assert revision_digest("0" * 64, first.files) != first.digest   # the base counts too


def _edited(source: Path, copy: Path, when: int) -> str:
    """sha256 of a copy of ``source`` with a folder made, a file written and a file replaced in it."""
    shutil.copyfile(source, copy)
    fs = ExtFileSystem.of_image(copy)
    fs.put("/etc/apt/sources.list.d/docker.list", b"deb https://example.invalid/ubuntu noble stable\n",
           uid=0, gid=0, mode=0o644, when=when)
    fs.put("/etc/os-release" if fs.stat("/etc/os-release") else "/etc/passwd", b"replaced\n", uid=0, gid=0,
           mode=0o644, when=when)
    fs.fsck()
    return file_sha256(copy)


@needs_e2fsprogs
def test_debugfs_edits_are_byte_repeatable(base, tmp_path):
    """The same edits of the same image give the same bytes at any wall-clock time, on ext3 (the LB
    image) and on ext4 with metadata checksums (the stand-in root file system, a partition image)."""
    rootfs = make_rootfs(tmp_path / "rootfs.img")
    time.sleep(1.1)                                  # a later second of the wall clock
    assert file_sha256(make_rootfs(tmp_path / "again.img")) == file_sha256(rootfs)
    for source in (base, rootfs):
        first = _edited(source, tmp_path / "one.img", 1_000_000)
        time.sleep(1.1)
        assert _edited(source, tmp_path / "two.img", 1_000_000) == first
        assert _edited(source, tmp_path / "three.img", 1_000_001) != first     # the given clock is what counts


@needs_e2fsprogs
def test_build_image_writes_the_image_the_diff_and_a_summary(base_tgz, tmp_path):
    revision = build_image(spec(base_tgz), tmp_path / "out")
    assert revision.image == tmp_path / "out" / "eucalyptus-load-balancer-image-1.1.0-212.img"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "eucalyptus-load-balancer-image-1.1.0-212.img", "haproxy_template.conf.diff", "revision.json"]
    summary = json.loads((tmp_path / "out" / "revision.json").read_text())
    assert summary["digest"] == revision.digest
    assert [f["path"] for f in summary["files"]] == [TEMPLATE_PATH, SYSCTL_PATH]
    assert (tmp_path / "out" / "haproxy_template.conf.diff").read_text() == revision.template_diff


@needs_e2fsprogs
def test_a_base_image_without_the_template_is_refused(tmp_path):
    image = make_test_image(tmp_path / "other.img", template="x")
    fs = ExtFileSystem.from_partition(image)
    subprocess.run([which("debugfs"), "-w", "-R", f"rm {TEMPLATE_PATH}", fs.device], check=True, capture_output=True)
    with pytest.raises(ConfigError, match="has no /etc/load-balancer-servo") as err:
        preview_revision(spec(image))
    assert err.value.where == "lb_images.v3.source"


@needs_e2fsprogs
@needs_haproxy
def test_a_template_haproxy_refuses_fails_the_build(tmp_path):
    image = make_test_image(tmp_path / "bad.img", template=TEMPLATE_2014 + " frobnicate 1\n")
    with pytest.raises(ConfigError, match="haproxy -c refuses") as err:
        build_revision(spec(image), tmp_path / "work")
    assert "frobnicate" in str(err.value)
    assert err.value.where == "lb_images.v3.haproxy"


@needs_e2fsprogs
def test_files_the_template_names_are_read_from_the_image_never_from_the_host(tmp_path):
    on_host = tmp_path / "host-only.http"           # exists here, not in the image
    on_host.write_bytes(ERROR_503 + b"\n")
    image = make_test_image(tmp_path / "a.img", servo_version="1.2.0",
                            template=shipped_template("1.2.0") + f" errorfile 504 {on_host}\n")
    with pytest.raises(ConfigError) as err:
        preview_revision(spec(image))
    assert err.value.where == "lb_images.v3.source"
    assert f"line 17, errorfile 504, names {on_host}, which the image does not have" in str(err.value)

    relative = make_test_image(tmp_path / "b.img", template=TEMPLATE_2014 + " errorfile 503 503.http\n")
    with pytest.raises(ConfigError, match="errorfile 503, names 503.http: a relative path"):
        preview_revision(spec(relative))


@needs_e2fsprogs
@needs_haproxy
def test_haproxy_judges_the_image_s_copy_of_a_file(tmp_path):
    image = make_test_image(tmp_path / "a.img", servo_version="1.2.0", files={ERROR_FILE: b"not an HTTP reply"})
    with pytest.raises(ConfigError, match="haproxy -c refuses") as err:
        preview_revision(spec(image))
    assert f"'{ERROR_FILE}': unable to parse" in str(err.value)    # named as in the image, not the temp copy


def test_file_references_cover_what_haproxy_reads_at_load_time():
    text = ("global\n lua-load /etc/haproxy/x.lua\n pidfile /var/run/haproxy.pid\n"
            " stats socket /run/haproxy.sock mode 600\n"
            "defaults\n errorfile 503 /etc/e/503.http # the reply\n"
            "frontend f\n bind :443 ssl crt /etc/pki/site.pem ca-file /etc/pki/ca.pem crl-file /etc/pki/crl.pem\n"
            " http-request return status 200 file /etc/e/ok.txt if { path /ok }\n"
            "backend b\n server s 10.0.0.1:443 ssl ca-file /etc/pki/backend-ca.pem\n")
    assert [(r.line, r.directive, r.path) for r in file_references(text)] == [
        (2, "lua-load", "/etc/haproxy/x.lua"), (6, "errorfile 503", "/etc/e/503.http"),
        (8, "bind :443 … crt", "/etc/pki/site.pem"), (8, "bind :443 … ca-file", "/etc/pki/ca.pem"),
        (8, "bind :443 … crl-file", "/etc/pki/crl.pem"), (9, "http-request return … file", "/etc/e/ok.txt"),
        (11, "server s … ca-file", "/etc/pki/backend-ca.pem")]


# --------------------------------------------------------------------------------------------
# HAProxy template rendering


def test_deprecated_timeouts_become_timeout_lines_with_their_values():
    rendered = render_template(TEMPLATE_2014)
    assert "contimeout" not in rendered and "clitimeout" not in rendered and "srvtimeout" not in rendered
    assert " timeout connect 1000\n timeout client 10000\n timeout server 10000\n" in rendered
    # a value from the file wins; the others keep the template's milliseconds
    rendered = render_template(TEMPLATE_2014, defaults_settings={"timeout connect": "5s"})
    assert " timeout connect 5s\n timeout client 10000\n timeout server 10000\n" in rendered
    assert rendered.count("timeout connect") == 1


def test_settings_replace_lines_in_place_and_append_new_ones():
    shipped = "global\n  maxconn 100 # per process\n  daemon\n\ndefaults\n  mode http\n  option httplog\n" \
              "  option http-server-close\n  retries 3\n\n# the servo appends listeners\n"
    rendered = render_template(shipped, global_settings={"maxconn": 20000, "daemon": False,
                                                         "log": ["/dev/log local0", "127.0.0.1 local1 notice"]},
                               defaults_settings={"options": ["redispatch"], "timeout queue": "1m", "retries": 5,
                                                  "balance": "leastconn"})
    assert rendered == (
        "global\n  maxconn 20000 # per process\n  log /dev/log local0\n  log 127.0.0.1 local1 notice\n\n"
        "defaults\n  mode http\n  option redispatch\n  retries 5\n  balance leastconn\n  timeout queue 1m\n\n"
        "# the servo appends listeners\n")
    # a missing defaults section is added
    assert render_template("global\n maxconn 1\n", defaults_settings={"mode": "tcp"}) == \
        "global\n maxconn 1\n\ndefaults\n  mode tcp\n"


@pytest.mark.parametrize("section, key, value, message", [
    ("defaults", "timeout connect", "5s\nfrontend evil", "newline"),
    ("defaults", "timeout connect", "5s\r", "newline"),
    ("global", "description", "a\0b", "NUL"),
    ("global", "description", "tab\there", "control character"),
    ("global", "description", "frontend evil", "section header"),
    ("global", "log", "defaults x", "section header"),
    ("global", "description", "x # y", "'#'"),
    ("global", "description", 'say "hi"', "quote"),
    ("defaults", "timeout connect", " 5s", "leading or trailing"),
    ("defaults", "timeout connect", "5 seconds", "must be a time"),
    ("defaults", "timeout conect", "5s", "not a HAProxy keyword"),
    ("defaults", "contimeout", 5000, "not a HAProxy keyword"),
    ("defaults", "errorfile", "503 /x", "not a HAProxy keyword"),
    ("global", "retries", 3, "not a HAProxy keyword"),
    ("defaults", "mode", "udp", "must be one of"),
    ("defaults", "retries", -1, "whole number"),
    ("defaults", "retries", 2.5, "string or an integer"),
    ("defaults", "options", ["redispatch", "httpclose\nlisten x"], "newline"),
    ("defaults", "options", ["redispach"], "unknown HAProxy option"),
    ("defaults", "options", "redispatch", "list of option names"),
    ("global", "daemon", "yes", "flag"),
])
def test_hostile_or_unknown_haproxy_settings_are_refused(section, key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        render_template(TEMPLATE_2014, **{f"{section}_settings": {key: value}}, where="lb_images.v3.haproxy")
    quoted = key if key.replace("-", "").replace("_", "").isalnum() else f'"{key}"'
    assert err.value.where == f"lb_images.v3.haproxy.{section}.{quoted}"


def test_refusals_point_to_the_right_keyword():
    with pytest.raises(ConfigError) as err:
        render_template(TEMPLATE_2014, defaults_settings={"timeout conect": "5s"})
    assert err.value.hint == "did you mean 'timeout connect'?"
    with pytest.raises(ConfigError) as err:
        render_template(TEMPLATE_2014, defaults_settings={"contimeout": 5000})
    assert "timeout connect" in err.value.hint
    with pytest.raises(ConfigError) as err:
        render_template(TEMPLATE_2014, global_settings={"retries": 3})
    assert err.value.hint == "'retries' belongs in the defaults table"


@needs_haproxy
def test_haproxy_check_adapts_only_the_host_specific_lines():
    result = check(render_template(TEMPLATE_2014))
    assert result.passed, result.output
    assert result.version
    assert [note.split(":")[0] for note in result.adaptations[:2]] == ["line 8", "line 9"]   # user, group
    assert "appended a sample HTTP and a sample TCP listener" in result.adaptations[-1]
    # the deprecated form is still judged by HAProxy itself, not waved through
    failed = check(TEMPLATE_2014)
    assert failed.status == "failed"
    assert "contimeout" in failed.output and "haproxy_template.conf:12" in failed.output


# --------------------------------------------------------------------------------------------
# sysctl


def test_sysctl_file_is_sorted_and_typed():
    text = render_sysctl({"vm.swappiness": 10, "net.ipv4.ip_forward": True, "kernel.domainname": "lb.internal",
                          "net.ipv4.conf.eth0.rp_filter": False})
    assert text.splitlines()[1:] == ["kernel.domainname = lb.internal", "net.ipv4.conf.eth0.rp_filter = 0",
                                     "net.ipv4.ip_forward = 1", "vm.swappiness = 10"]


@pytest.mark.parametrize("key, value, message", [
    ("net/ipv4/ip_forward", 1, "contains '/'"),
    ("net..ipv4", 1, "empty segment"),
    (".net.ipv4", 1, "empty segment"),
    ("net.ipv4.", 1, "empty segment"),
    ("net.IPv4.x", 1, "may hold only"),
    ("net.ipv4.x y", 1, "may hold only"),
    ("kernel.x", "1\nkernel.y = 2", "newline"),
    ("kernel.x", 1.5, "not float"),
    ("kernel.x", [1, 2], "not list"),
    ("kernel.x", "", "empty"),
])
def test_bad_sysctl_settings_are_refused(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        render_sysctl({key: value}, where="lb_images.v3.sysctl")
    assert err.value.where.startswith("lb_images.v3.sysctl.") and key in err.value.where


# --------------------------------------------------------------------------------------------
# base image input


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for field, value in fields.items():
        setattr(info, field, value)
    tar.addfile(info, io.BytesIO(data))


def tgz(path: Path, *members: tuple) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            add(tar, *member[:2], **(member[2] if len(member) > 2 else {}))
    return path


@pytest.mark.parametrize("members, message", [
    ([("/etc/lb.img", b"x")], "absolute path"),
    ([("images/../../lb.img", b"x")], "'..'"),
    ([("lb.img", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})], "symbolic link"),
    ([("a.img", b"x"), ("lb.img", b"", {"type": tarfile.LNKTYPE, "linkname": "a.img"})], "hard link"),
    ([("lb.img", b"x"), ("dev", b"", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3})], "device"),
    ([("one.img", b"x"), ("two.img", b"y")], "more than one image"),
    ([("README", b"no image here")], "no .img"),
])
def test_hostile_archives_are_refused_and_nothing_is_written(tmp_path, members, message):
    source = tgz(tmp_path / "lb.tgz", *members)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message) as err:
        prepare_base_image(source, out / "base.img", sha256=file_sha256(source), where="lb_images.v3.source")
    assert err.value.where == "lb_images.v3.source"
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lb.tgz", "out"]


def test_truncated_wrong_and_missing_sources_are_refused(tmp_path):
    image = bytes(mbr_sector(2048, 8)) + os.urandom(256 * 1024)
    source = tgz(tmp_path / "lb.tgz", ("lb.img", image))
    base = prepare_base_image(source, tmp_path / "ok.img", sha256=file_sha256(source))
    assert base.sha256 == hashlib.sha256(image).hexdigest() and base.size == len(image)
    assert (tmp_path / "ok.img").read_bytes() == image and base.member == "lb.img"

    data = source.read_bytes()
    for cut in (20, len(data) // 2, len(data) - 4):
        (tmp_path / "cut.tgz").write_bytes(data[:cut])
        with pytest.raises(ConfigError, match="truncated or corrupt"):
            prepare_base_image(tmp_path / "cut.tgz", tmp_path / "cut.img")
        assert not (tmp_path / "cut.img").exists()
    with pytest.raises(ConfigError, match="not the declared") as err:
        prepare_base_image(source, tmp_path / "x.img", sha256="0" * 64)
    assert file_sha256(source) in str(err.value)
    with pytest.raises(ConfigError, match="64 hex digits"):
        prepare_base_image(source, tmp_path / "x.img", sha256="abc")
    with pytest.raises(ConfigError, match="not found"):
        prepare_base_image(tmp_path / "nope.tgz", tmp_path / "x.img")
    (tmp_path / "empty.img").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty"):
        prepare_base_image(tmp_path / "empty.img", tmp_path / "x.img")
    assert not (tmp_path / "x.img").exists()


@needs_e2fsprogs
def test_a_bare_image_and_its_tgz_give_the_same_revision(base, base_tgz, tmp_path):
    copy = prepare_base_image(base, tmp_path / "copy.img", sha256=file_sha256(base))
    assert copy.sha256 == file_sha256(base) and copy.member == base.name
    assert preview_revision(spec(base)).digest == preview_revision(spec(base_tgz)).digest


def test_a_file_that_is_no_disk_image_is_named_in_the_error(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"not a disk" * 100)
    with pytest.raises(ConfigError, match="junk.img: has no MBR partition table") as err:
        preview_revision(spec(junk))
    assert err.value.where == "lb_images.v3.source"

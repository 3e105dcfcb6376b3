"""Malformed and hostile desired-state files and companion files (DESIGN §8, issue 6).

Each case gets a clear error naming where (the desired file, and the key path or the companion
file), exits 1 without a traceback, never reaches the cloud (a tripwire listener counts
connections), prints no control characters and no secret from the files it read.

Two kinds of case:

- ``EXPECTED``: files under ``tests/fixtures/bad/`` (companions beside them: keys/, cloud_init/,
  images/), each run through ``recon validate`` and ``recon plan``;
- ``GENERATED``: files too big or too odd to commit (hostile tarballs, huge files, FIFOs), made in
  ``tmp_path`` by the builders below. Base-image checks are local work that only ``plan`` (and
  ``recon image build``) does, so the tarball cases run through those.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import socket
import subprocess
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.config import MAX_FILE_BYTES
from reconciler.imagebuild.disk import SECTOR, find_tool
from reconciler.imagebuild.testimage import PARTITION_START, make_test_image

BAD = Path(__file__).parent / "fixtures" / "bad"
SECRET = "MARKER-SECRET-7f3a"   # planted in companion files: never echoed in an error
GOOD_KEY = (BAD / "keys" / "good.pub").read_text()

# file → substrings the error must contain (the file name is always checked too)
EXPECTED = {
    # --- the original corpus -----------------------------------------------------------------
    "truncated": ["invalid TOML", "truncated.toml:3"],
    "unknown_table": ["unknown table 'load_balancer'", "did you mean 'load_balancers'"],
    "misspelt_key": ["load_balancers.web.listners", "did you mean 'listeners'", "misspelt_key.toml:5"],
    "wrong_type": ["listeners[0].lb_port", "expected integer, got string"],
    "port_range": ["70000 is above the maximum 65535"],
    "missing_stack": ["missing [stack] table"],
    "bad_stack_name": ["stack.name", "must be 1-63 letters"],
    "missing_resource": ["keypairs.nokey", "not in this file"],
    "missing_attribute": ["has no attribute 'fingerprnt'", "did you mean 'fingerprint'"],
    "cycle": ["reference cycle"],
    "malformed_reference": ["not a reference of the form ${KIND.NAME.ATTR}"],
    "bad_cidr": ["'10.0.0.300/8' is not an address range", "ingress[0].cidr"],
    "key_file_missing": ["keys/nothere.pub", "not found"],
    "private_key": ["this is a private key"],
    "non_utf8": ["not valid UTF-8", "non_utf8.toml:3"],
    "property_table": ["expected a string, integer or boolean value"],
    "health_target": ["health_check.target", "expected PROTOCOL:PORT"],
    "bad_protocol": ["'HTTPX' is not one of", "did you mean 'HTTP'"],
    "duplicate_listener": ["more than one listener on port 80"],
    "cloud_misspelt": ["cloud.endpont", "did you mean 'endpoint'"],
    "cloud_bad_url": ["[cloud].endpoint", "ftp://"],
    "duplicate_key": ["invalid TOML", "duplicate_key.toml:5"],
    "both_key_sources": ["exactly one of public_key_file or public_key"],
    "rule_two_sources": ["exactly one of cidr or group"],
    "empty_listeners": ["at least one listener"],
    "depends_unknown": ["keypairs.nothere is not in this file"],
    "bool_for_int": ["expected integer, got boolean"],
    "hostile_name": ["invalid name '../../etc/passwd'"],
    "property_newline_name": ["invalid name"],
    "reset_and_set": ["both set and listed in reset"],
    "sg_ports_text": ["'ssh' is not a port or a range"],
    # --- TOML itself ---------------------------------------------------------------------------
    "truncated_string": ["invalid TOML", "truncated_string.toml:4"],
    "truncated_array": ["invalid TOML", "truncated_array.toml:6"],
    "duplicate_table": ["invalid TOML", "Cannot declare ('keypairs', 'k') twice", "duplicate_table.toml:5"],
    "nul_byte": ["invalid TOML", "Illegal character", "nul_byte.toml:4"],
    "non_utf8_value": ["not valid UTF-8", "non_utf8_value.toml:4"],
    # --- tables: unknown, misplaced, of the wrong type ----------------------------------------
    "unknown_kind": ["unknown table 'routers'", "valid tables: cloud, docker_hosts", "unknown_kind.toml:3"],
    "stack_not_table": ["stack: must be a table"],
    "kind_not_table": ["keypairs: must be a table of resources", "kind_not_table.toml:1"],
    "kind_array_of_tables": ["keypairs: must be a table of resources"],
    "block_not_table": ["keypairs.k: must be a table, got string"],
    "stack_name_long": ["stack.name", "must be 1-63 letters"],
    "stack_unknown_key": ["stack.nmae", "did you mean 'name'"],
    # --- [state], [drift], [cloud] ---------------------------------------------------------------
    "state_backend": ["state.backend", "'s4' is not one of 'local', 's3'"],
    "state_s3_no_bucket": ["state.bucket", 'backend = "s3" needs a bucket'],
    "state_local_bucket": ["state.bucket", 'bucket is for backend = "s3"'],
    "state_lease": ["state.lease_seconds", "1 is below the minimum 5"],
    "drift_ignore_string": ["drift.ignore", "expected array, got string"],
    "drift_unknown_key": ["drift.ignores", "did you mean 'ignore'"],
    "cloud_version": ["[cloud].eucalyptus_version", "unknown Eucalyptus version '9.9'"],
    "cloud_signature": ["cloud.properties_signature", "'v3' is not one of 'v4', 'v2'"],
    "cloud_reference": ["cloud.endpoint", "references are not allowed here"],
    "cloud_endpoint_int": ["cloud.endpoint", "expected string, got integer"],
    "cloud_ca_missing": ["[cloud].ca_bundle", "certs/nothere.pem"],
    "cloud_endpoint_ipv6": ["[cloud].endpoint", "'http://[::1:8773' is not a valid URL: Invalid IPv6 URL"],
    "cloud_endpoint_port": ["[cloud].endpoint", "'http://clc:87730' is not a valid URL: Port out of range"],
    # --- references and depends_on ---------------------------------------------------------------
    "cycle_three": ["reference cycle: security_groups.a -> security_groups.c -> security_groups.b -> "
                    "security_groups.a"],
    "cycle_depends_on": ["reference cycle: keypairs.k -> images.i -> keypairs.k"],
    "depends_self": ["reference cycle: keypairs.k -> keypairs.k"],
    "cycle_names": ["reference cycle: security_groups.a -> security_groups.b -> security_groups.a",
                    "security_groups.a's ingress.group 'b' names security_groups.b"],
    "self_reference": ["${properties.a.b.value} refers to the resource itself"],
    "reference_unknown_kind": ["${routers.r.id} refers to routers.r, which is not in this file"],
    "reference_not_allowed": ["docker_hosts.d.count", "references are not allowed here"],
    "reference_unclosed": ["'${' without its closing '}'", "reference_unclosed.toml:6"],
    "reference_empty": ["${} is not a reference of the form ${KIND.NAME.ATTR}"],
    "missing_attribute_plural": ["docker_hosts has no attribute 'instance_id'", "did you mean 'instance_ids'"],
    "depends_not_list": ["keypairs.k.depends_on", "expected an array of addresses"],
    "depends_malformed": ["keypairs.k.depends_on[0]", "'images' is not an address of the form KIND.NAME"],
    # --- hostile names ------------------------------------------------------------------------------
    "name_control_char": ["invalid name 'k\\x1b[31mred'"],
    "name_too_long": ["invalid name", "(at most 255)", "name_too_long.toml:3"],
    "name_empty": ["invalid name ''"],
    "name_unicode": ["invalid name 'k\u0435y'"],
    "unknown_key_control": ["unknown key '\\x1b]0;pwned\\x07'", "valid keys here: description"],
    "lb_name_underscore": ["load_balancers.web_1", "1-32 letters, digits and inner hyphens"],
    # --- wrong property values ---------------------------------------------------------------------
    "count_negative": ["docker_hosts.d.count", "-1 is below the minimum 0"],
    "zones_string": ["load_balancers.web.zones", "expected array, got string"],
    "listener_not_table": ["listeners[0]", "expected table, got string"],
    "health_missing_key": ["3 problems", "missing required key 'timeout'", "missing required key 'healthy_threshold'"],
    "lb_attribute_unknown": ["attributes.idle_timeut", "did you mean 'idle_timeout'"],
    "lb_scheme": ["load_balancers.web.scheme", "'public' is not one of"],
    "icmp_ports": ["'8/x': icmp ports are TYPE or TYPE/CODE"],
    "all_with_ports": ["ingress[0].ports", "protocol all takes no ports"],
    "ports_reversed": ["'90-80': ports go from 0 to 65535, low to high"],
    "image_id_bad": ["docker_hosts.d.image", "expected an image id like emi-0123abcd"],
    "images_id_and_name": ["images.i", "give exactly one of id or name"],
    "launch_permission": ["launch_permission[0]", "'everyone' is neither \"all\" nor a 12-digit account id"],
    "tags_reserved": ["docker_hosts.d.tags", "recon:, aws: and euca: tags are reserved"],
    "max_unavailable_zero": ["docker_hosts.d.max_unavailable", "0 is below the minimum 1"],
    "security_groups_ints": ["security_groups[0]", "expected string, got integer"],
    "property_float": ['properties."a.b".value', "expected scalar, got float"],
    "property_datetime": ['properties."a.b".value', "expected scalar, got datetime"],
    "property_nul": ["NUL characters are not allowed"],
    "reset_not_list": ["properties.reset", "expected an array of property names"],
    # --- key files ----------------------------------------------------------------------------------
    "key_garbage": ["keypairs.k.public_key_file", "not an OpenSSH public key: unsupported key type 'hello,'"],
    "key_binary": ["keypairs.k.public_key_file", "non-ASCII bytes"],
    "key_empty": ["keypairs.k.public_key_file", "not an OpenSSH public key"],
    "key_folder": ["keypairs.k.public_key_file", "'keys' is a folder, not a regular file"],
    "key_inline_bad": ["keypairs.k.public_key", "not a valid OpenSSH public key"],
    # --- cloud-init ---------------------------------------------------------------------------------
    "cloud_init_not_yaml": ["docker_hosts.d.cloud_init", "not valid YAML at line 3, column 7"],
    "cloud_init_no_header": ["starts with the line #cloud-config"],
    "cloud_init_shell": ["starts with the line #cloud-config"],
    "cloud_init_list": ["a cloud-config document is a YAML mapping"],
    "cloud_init_latin1": ["the cloud-init file is not UTF-8 text"],
    "cloud_init_python_tag": ["not valid YAML at line 2"],
    "cloud_init_missing": ["'cloud_init/nothere.yaml' not found"],
    "cloud_init_folder": ["'cloud_init' is a folder, not a regular file"],
    # --- HAProxy settings ---------------------------------------------------------------------------
    "haproxy_newline_section": ['defaults."timeout connect"', "contains a newline"],
    "haproxy_frontend_key": ["'frontend' is not a HAProxy keyword recon can set in defaults"],
    "haproxy_frontend_table": ["lb_images.v3.haproxy.frontend", "valid keys here: defaults, global"],
    "haproxy_comment": ["haproxy.global.maxconn", "contains '#', which starts a comment"],
    "haproxy_quote": ["haproxy.global.description", "contains a quote"],
    "haproxy_unknown_keyword": ["'timout connect' is not a HAProxy keyword", "did you mean 'timeout connect'"],
    "haproxy_wrong_section": ["'nbthread' belongs in the global table"],
    "haproxy_unknown_option": ["unknown HAProxy option 'redispach'", "did you mean 'redispatch'"],
    "haproxy_section_value": ["value 'backend evil' starts with the section header 'backend'"],
    "haproxy_bad_time": ["'2 minutes' must be a time"],
    "haproxy_flag_string": ["'daemon' is a flag: true or false"],
    "haproxy_deprecated": ["'contimeout' is not a HAProxy keyword", "use 'timeout connect'"],
    "haproxy_float": ["haproxy.defaults.retries", "expected scalar, got float"],
    "haproxy_tab": ["haproxy.global.log-tag", "contains a control character"],
    "haproxy_table_value": ["haproxy.defaults.retries", "expected scalar, got table"],
    # --- sysctl settings ----------------------------------------------------------------------------
    "sysctl_slash": ["contains '/'", "write keys with dots"],
    "sysctl_dotdot": ["'net..ipv4.tcp_syncookies' has an empty segment"],
    "sysctl_trailing_dot": ["'net.ipv4.' has an empty segment"],
    "sysctl_space": ["segment 'tcp syncookies' may hold only a-z, 0-9, '_' and '-'"],
    "sysctl_newline_value": ["contains a newline or another control character"],
    "sysctl_table_value": ["lb_images.v3.sysctl.net", "expected scalar, got table"],
    # --- the LB base image, as far as loading sees it ----------------------------------------------
    "lb_source_missing": ["lb_images.v3.source", "'images/nothere.tgz' not found"],
    "lb_source_folder": ["lb_images.v3.source", "base image 'images' is not a file"],
    "lb_sha256_format": ["lb_images.v3.source_sha256", "must be 64 lower-case hex digits"],
    "lb_source_reference": ["lb_images.v3.source", "references are not allowed here"],
    "lb_max_image_zero": ["lb_images.v3.max_image_mib", "0 is below the minimum 1"],
    # --- images from files (issue 14) ---------------------------------------------------------------
    "image_source_no_type": ["images.i.type", "an image from a source needs its type: machine, kernel or ramdisk"],
    "image_source_and_id": ["images.i.id", "a block with source is registered by recon"],
    "image_source_missing": ["images.i.source", "source 'images/nothere.img' not found"],
    "image_type_bad": ["images.i.type", "'kernal' is not one of", "did you mean 'kernel'?"],
    "image_paravirtual_no_kernel": ["images.i.kernel", "a paravirtual machine image needs its kernel"],
    "image_kernel_for_kernel": ["images.k.ramdisk", "ramdisk is for machine images, not a kernel"],
    "image_kernel_bad_id": ["images.i.kernel", "'emi-0123abcd' is neither ${images.NAME.id} nor an eki-… id"],
    "image_kernel_not_image": ["images.i.kernel", "${images.other.name} is not an image"],
    "image_bucket_bad": ["images.i.bucket", "must be 3-63 lower-case letters, digits, '.' and '-'"],
    "image_bucket_without_source": ["images.i.bucket", "bucket is for an image recon makes from a source file"],
    "image_hvm_with_kernel": ["images.i.kernel", "an hvm image boots its own kernel"],
    # --- bounds on text the cloud stores, as Eucalyptus has them (issue 12) -------------------------
    "sg_description_control": ["security_groups.g.description",
                               "contains the control or invisible character '\\x1b' (character 5)"],
    "sg_description_unicode": ["security_groups.g.description", "contains 'é' (character 4)",
                               "the cloud takes ASCII only here"],
    "sg_name_invisible": ["security_groups.g.name", "invisible character '\\u200b' (character 4)"],
    "tags_too_many": ["docker_hosts.d.tags", "60 tags, but the cloud keeps at most 10 per resource",
                      "recon puts 4 of its own on each: give at most 6"],
    "tag_key_long": ["docker_hosts.d.tags", "is 128 characters long; the cloud takes at most 127"],
    "tag_value_long": ["docker_hosts.d.tags", "tag 'role': its value is 256 characters long; the cloud takes at most 255"],
    "tag_value_bidi": ["tag 'role': its value contains the control or invisible character '\\u202e'"],
    "property_control": ['properties."loadbalancing.loadbalancer_dns_subdomain".value',
                         "invisible character '\\x1b'"],
    "unknown_key_invisible": ["unknown key 'descr\\u200biption'", "did you mean 'description'"],
    "bom": ["bom.toml:1", "starts with a byte order mark (U+FEFF)", "save the file as UTF-8 without a BOM"],
    "key_two_keys": ["keypairs.k.public_key_file", "holds 2 keys (lines 1, 3); a key pair takes one"],
    "haproxy_maxconn_huge": ["haproxy.global.maxconn", "must be a whole number from 1 to 2147483647"],
    "haproxy_maxconn_wide_digit": ["haproxy.global.maxconn", "must be a whole number from 1 to 2147483647"],
    # --- environments and vars (issue 16) -----------------------------------------------------------
    "env_not_table": ["env_not_table.toml:1: env: must be a table of environments"],
    "env_bad_name": ["env.\"bad name\": invalid environment name 'bad name'"],
    "env_nested": ["env_nested.toml:7: env.staging.env: environments do not nest"],
    "env_block_not_table": ["env.staging: must be a table, got integer"],
    "var_unset": ["var_unset.toml:5: security_groups.g.name: ${var.nope}: no var 'nope' is set",
                  "--var nope=VALUE or RECON_VAR_nope"],
    "var_malformed": ["'${var.a.b}' is not a var of the form ${var.NAME}"],
    "var_bad_name": ["vars.1x: invalid var name '1x'"],
    "var_float": ["vars.ratio: expected a string, integer or boolean, got float"],
    "var_in_var": ["vars.b: a var's value cannot use another var"],
    "vars_not_table": ["vars: must be a table of NAME = VALUE"],
    "var_wrong_type": ["var_wrong_type.toml:10: docker_hosts.d.count: expected integer, got string"],
    "var_secret_echoed": ["load_balancers.web.scheme: '(sensitive)' is not one of"],   # the value is a secret var's
}


# --- generated cases -----------------------------------------------------------------------------

STACK = '[stack]\nname = "bad"\n'
LB_IMAGE = STACK + '[lb_images.v3]\nsource = "{source}"\n'
HOSTS = STACK + '[docker_hosts.d]\nimage = "emi-0123abcd"\ninstance_type = "m1.small"\ncloud_init = "{source}"\n'


@dataclass(frozen=True)
class Case:
    """A desired file (and its companions) made in a folder; the commands it is run through."""

    build: Callable[[Path], Path]
    expected: tuple[str, ...]
    commands: tuple[str, ...] = ("validate", "plan")


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def _tgz(*members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, data)
    return buffer.getvalue()


IMAGE = bytes(4096) + b"not really a disk"


def _lb(source: str, content: bytes | None, extra: str = "") -> Callable[[Path], Path]:
    """An lb_images block whose source is ``content`` (None: make nothing)."""
    def build(folder: Path) -> Path:
        if content is not None:
            (folder / source).write_bytes(content)
        desired = folder / "recon.toml"
        desired.write_text(LB_IMAGE.format(source=source) + extra)
        return desired
    return build


def _whole_image() -> bytes:
    return _tgz(_member("lb.img", data=os.urandom(300_000)))


def _truncated_gzip() -> bytes:
    data = _whole_image()
    return data[: len(data) // 2]


def _bad_crc() -> bytes:
    data = bytearray(_whole_image())
    data[-6] ^= 0xFF          # the gzip trailer's CRC-32
    return bytes(data)


def _fifo(name: str, desired_text: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        os.mkfifo(folder / name)
        desired = folder / "recon.toml"
        desired.write_text(desired_text)
        return desired
    return build


def _hosts(cloud_init: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / "cloud-init.yaml").write_bytes(cloud_init)
        desired = folder / "recon.toml"
        desired.write_text(HOSTS.format(source="cloud-init.yaml"))
        return desired
    return build


def _huge_key(folder: Path) -> Path:
    (folder / "huge.pub").write_text(GOOD_KEY.strip() + " " + "x" * (20 << 10) + "\n")
    desired = folder / "recon.toml"
    desired.write_text(STACK + '[keypairs.k]\npublic_key_file = "huge.pub"\n')
    return desired


def _huge_desired(folder: Path) -> Path:
    desired = folder / "recon.toml"
    desired.write_text(STACK + "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    return desired


def _deep(folder: Path) -> Path:
    desired = folder / "recon.toml"
    desired.write_text(STACK + '[properties]\n"a.b" = ' + "[" * 2000 + "]" * 2000 + "\n")
    return desired


def _deep_but_parsed(folder: Path) -> Path:
    desired = folder / "recon.toml"
    desired.write_text(STACK + '[properties]\n"a.b" = ' + "[" * 40 + "]" * 40 + "\n")
    return desired


def _zero_device(folder: Path) -> Path:
    (folder / "zero.yaml").symlink_to("/dev/zero")
    desired = folder / "recon.toml"
    desired.write_text(HOSTS.format(source="zero.yaml"))
    return desired


def _long_path(template: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        desired = folder / "recon.toml"
        desired.write_text(template.format(source="a" * 5000))
        return desired
    return build


def _declared_huge() -> bytes:
    """A few hundred bytes whose tar header declares a 1 TiB image (as a sparse member would)."""
    info = tarfile.TarInfo("lb.img")
    info.size = 1 << 40
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT))


def _damaged_ext(folder: Path) -> Path:
    """A good test image whose file system then gets a wrong link count: debugfs reads it, e2fsck does not pass it."""
    image = folder / "lb.img"
    make_test_image(image)
    device = f"{image}?offset={PARTITION_START * SECTOR}"
    subprocess.run([find_tool("debugfs", "e2fsprogs"), "-w", "-R", "sif /etc/passwd links_count 7", device],
                   check=True, capture_output=True)
    desired = folder / "recon.toml"
    desired.write_text(LB_IMAGE.format(source="lb.img"))
    return desired


def _outside_link(slot: str, target_text: str) -> Callable[[Path], Path]:
    """A companion that is a symbolic link to a file beside (not inside) the stack's folder."""
    def build(folder: Path) -> Path:
        outside = folder.parent / "outside.txt"
        outside.write_text(target_text)
        (folder / "companion").symlink_to(outside)
        desired = folder / "recon.toml"
        desired.write_text(STACK + slot.format(source="companion"))
        return desired
    return build


def _text_desired(text: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        desired = folder / "recon.toml"
        desired.write_text(STACK + text)
        return desired
    return build


PLAN_ONLY = ("plan", "image build")   # base-image checks are plan-time local work
WRONG_SHA = hashlib.sha256(b"another file").hexdigest()

def _image_from(extra: str) -> Callable[[Path], Path]:
    """An ``images`` block made from a stand-in file ``rootfs.img``, with ``extra`` keys and blocks."""
    def build(folder: Path) -> Path:
        (folder / "rootfs.img").write_bytes(IMAGE)
        desired = folder / "recon.toml"
        desired.write_text(STACK + '[images.i]\nsource = "rootfs.img"\n' + extra)
        return desired
    return build


GENERATED: dict[str, Case] = {
    # images from files: what only a plan reads (the source's digest, the blocks a kernel names)
    "image_sha256_differs": Case(_image_from('type = "kernel"\nsource_sha256 = "' + "0" * 64 + '"\n'),
                                 ("images.i.source", "rootfs.img has sha256", "not the declared 0000"), ("plan",)),
    "image_kernel_is_machine": Case(_image_from('type = "machine"\nkernel = "${images.k.id}"\n'
                                                'ramdisk = "eri-0123abcd"\n[images.k]\nsource = "rootfs.img"\n'
                                                'type = "machine"\nvirtualization = "hvm"\n'),
                                    ("images.i.kernel", "images.k is a machine image, not a kernel"), ("plan",)),
    # hostile tarballs as lb_images.source: refused whole, nothing extracted
    "tar_absolute": Case(_lb("lb.tgz", _tgz(_member("/tmp/lb.img", data=IMAGE))),
                         ("lb.tgz: member '/tmp/lb.img' has an absolute path", "refused whole"), PLAN_ONLY),
    "tar_dotdot": Case(_lb("lb.tgz", _tgz(_member("lb/../../lb.img", data=IMAGE))),
                       ("member 'lb/../../lb.img' climbs out of the archive with '..'",), PLAN_ONLY),
    "tar_symlink": Case(_lb("lb.tgz", _tgz(_member("lb.img", tarfile.SYMTYPE, link="/etc/shadow"))),
                        ("member 'lb.img' is a symbolic link (to '/etc/shadow')",), PLAN_ONLY),
    "tar_hardlink": Case(_lb("lb.tgz", _tgz(_member("a.img", data=IMAGE),
                                            _member("lb.img", tarfile.LNKTYPE, link="a.img"))),
                         ("member 'lb.img' is a hard link (to 'a.img')",), PLAN_ONLY),
    "tar_chardev": Case(_lb("lb.tgz", _tgz(_member("dev/null", tarfile.CHRTYPE))),
                        ("member 'dev/null' is a device or FIFO",), PLAN_ONLY),
    "tar_blockdev": Case(_lb("lb.tgz", _tgz(_member("dev/sda", tarfile.BLKTYPE))),
                         ("member 'dev/sda' is a device or FIFO",), PLAN_ONLY),
    "tar_fifo": Case(_lb("lb.tgz", _tgz(_member("pipe", tarfile.FIFOTYPE))),
                     ("member 'pipe' is a device or FIFO",), PLAN_ONLY),
    "tar_two_images": Case(_lb("lb.tgz", _tgz(_member("a.img", data=IMAGE), _member("b.img", data=IMAGE))),
                           ("lb.tgz holds more than one image: 'a.img' and 'b.img'",), PLAN_ONLY),
    "tar_no_image": Case(_lb("lb.tgz", _tgz(_member("README", data=b"hello"))),
                         ("lb.tgz holds no .img file",), PLAN_ONLY),
    "tar_truncated_gzip": Case(_lb("lb.tgz", _truncated_gzip()),
                               ("lb.tgz is truncated or corrupt", "check its sha256"), PLAN_ONLY),
    "tar_bad_crc": Case(_lb("lb.tgz", _bad_crc()), ("lb.tgz is truncated or corrupt: CRC check failed",), PLAN_ONLY),
    "tar_not_tar": Case(_lb("lb.tgz", gzip.compress(b"not a tar archive\n" * 64)),
                        ("lb.tgz is truncated or corrupt",), PLAN_ONLY),
    "tar_wrong_sha256": Case(_lb("lb.tgz", _tgz(_member("lb.img", data=IMAGE)), f'source_sha256 = "{WRONG_SHA}"\n'),
                             ("lb.tgz has sha256", f"not the declared {WRONG_SHA}"), PLAN_ONLY),
    "tar_declares_huge_member": Case(_lb("lb.tgz", _declared_huge()),
                                     ("lb.tgz: member 'lb.img' is 1099511627776 bytes, over the largest image "
                                      "recon unpacks (8589934592 bytes)", "raise max_image_mib"), PLAN_ONLY),
    "image_over_max": Case(_lb("lb.img", b"\x01" * (2 << 20), "max_image_mib = 1\n"),
                           ("lb.img is 2097152 bytes, over the largest image recon unpacks (1048576 bytes)",),
                           PLAN_ONLY),
    "image_damaged_ext": Case(_damaged_ext, ("lb_images.v3.source", "lb.img: e2fsck -fn found the file system "
                                             "not clean", "ref count is 7, should be 1"), PLAN_ONLY),
    "source_empty": Case(_lb("lb.tgz", b""), ("lb.tgz is empty",), PLAN_ONLY),
    "source_not_a_disk": Case(_lb("lb.img", os.urandom(4096)), ("lb.img: has no MBR partition table",), PLAN_ONLY),
    # sources that are not regular files: refused when loading, never opened
    "source_fifo": Case(_fifo("lb.tgz", LB_IMAGE.format(source="lb.tgz")),
                        ("lb_images.v3.source", "base image 'lb.tgz' is not a file")),
    "source_long_name": Case(_long_path(LB_IMAGE), ("lb_images.v3.source", "File name too long")),
    # huge files
    "huge_desired_file": Case(_huge_desired, (f"file is larger than {MAX_FILE_BYTES} bytes",)),
    "huge_cloud_init": Case(_hosts(b"#cloud-config\nwrite_files:\n" + b"  - content: x\n" * 2000),
                            ("docker_hosts.d.cloud_init", "'cloud-init.yaml' is larger than 16384 bytes")),
    "huge_public_key": Case(_huge_key, ("keypairs.k.public_key_file", "'huge.pub' is larger than 16384 bytes")),
    "deeply_nested": Case(_deep, ("invalid TOML: arrays or tables nested more than 32 deep",)),
    "nested_too_deep": Case(_deep_but_parsed, ('properties."a.b": arrays or tables nested more than 32 deep',)),
    # companions that would block or never end
    "cloud_init_fifo": Case(_fifo("cloud-init.yaml", HOSTS.format(source="cloud-init.yaml")),
                            ("docker_hosts.d.cloud_init", "'cloud-init.yaml' is a FIFO, not a regular file")),
    "cloud_init_dev_zero": Case(_zero_device, ("'zero.yaml' is a device, not a regular file",)),
    "cloud_init_long_name": Case(_long_path(HOSTS), ("docker_hosts.d.cloud_init", "File name too long")),
    "ca_bundle_long_name": Case(_long_path(STACK + '[cloud]\nca_bundle = "{source}"\n'),
                                ("[cloud].ca_bundle", "File name too long")),
    "ca_bundle_unknown_home": Case(_long_path(STACK + '[cloud]\nca_bundle = "~nosuchuser-{source:.8}/ca.pem"\n'),
                                   ("[cloud].ca_bundle", "Could not determine home directory")),
    # companions are read from the stack's folder only
    "cloud_init_link_outside": Case(_outside_link(HOSTS.removeprefix(STACK), f"#cloud-config\nruncmd: [{SECRET}]\n"),
                                    ("docker_hosts.d.cloud_init", "'companion' leads outside this file's folder")),
    "key_link_outside": Case(_outside_link('[keypairs.k]\npublic_key_file = "{source}"\n', GOOD_KEY),
                             ("keypairs.k.public_key_file", "'companion' leads outside this file's folder")),
    # huge values: refused, and shown cut short
    "huge_key_name": Case(_text_desired('[security_groups.a]\n"' + "x" * 3_000_000 + '" = 1\n'),
                          ("unknown key 'xxxxxxxx", "… (3000000 characters)'", "valid keys here: description")),
    "huge_block_name": Case(_text_desired("[keypairs." + "k" * 3_000_000 + ']\npublic_key = "x"\n'),
                            ("invalid name 'kkkkkkkk", "… (3000000 characters)': use letters")),
    "huge_property_value": Case(_text_desired('[properties]\n"a.b" = "' + "v" * (1 << 20) + '"\n'),
                                ('properties."a.b".value', "is 1048576 characters long; the cloud takes at most "
                                 "32768")),
    # cloud-init documents that carry a secret the error must not repeat
    "cloud_init_bad_yaml_secret": Case(_hosts(f"#cloud-config\nruncmd: [\"{SECRET}\"\n  - x: [\n".encode()),
                                       ("the cloud-init file is not valid YAML at line",)),
    "cloud_init_scalar": Case(_hosts(f"#cloud-config\n{SECRET}\n".encode()),
                              ("a cloud-config document is a YAML mapping",)),
    "cloud_init_utf16": Case(_hosts("#cloud-config\nruncmd: []\n".encode("utf-16")),
                             ("the cloud-init file is not UTF-8 text",)),
}

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
MAX_OUTPUT = 20_000   # characters: a huge value from a file is shown cut short, never whole


class Tripwire:
    """A loopback listener that records any connection: the cloud must never be called."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def tripwire():
    wire = Tripwire()
    yield wire
    wire.close()


def _run(command: str, desired: Path, tripwire: Tripwire, out: Path):
    env = {"EC2_URL": f"{tripwire.url}/services/compute", "AWS_ELB_URL": f"{tripwire.url}/services/LoadBalancing",
           "S3_URL": f"{tripwire.url}/services/objectstorage",
           "EC2_ACCESS_KEY": "AKIDTRIPWIRE", "EC2_SECRET_KEY": "tripwire-secret", "NO_COLOR": "1",
           "RECON_RETRY_ATTEMPTS": "1"}
    args = ["image", "build", "lb_images.v3", "--out", str(out)] if command == "image build" else [command]
    return CliRunner().invoke(app, [*args, "-c", str(desired)], env=env)


def _check(result, expected: tuple[str, ...] | list[str], tripwire: Tripwire) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in result.output
    assert not CONTROL.search(result.output), repr(result.output)   # nothing from the file drives the terminal
    assert SECRET not in result.output
    assert "tripwire-secret" not in result.output
    assert len(result.output) < MAX_OUTPUT, len(result.output)
    assert "recon-preview-" not in result.output and ".recon-base-" not in result.output   # recon's private copies
    assert tripwire.connections == 0


def test_every_bad_file_has_an_expectation() -> None:
    assert sorted(p.stem for p in BAD.glob("*.toml")) == sorted(EXPECTED)
    assert not set(EXPECTED) & set(GENERATED)
    assert len(EXPECTED) + len(GENERATED) >= 31 + 40


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file(name: str, command: str, tripwire: Tripwire, tmp_path: Path) -> None:
    result = _run(command, BAD / f"{name}.toml", tripwire, tmp_path / "out")
    _check(result, [f"{name}.toml", *EXPECTED[name]], tripwire)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_bad_input(name: str, tripwire: Tripwire, tmp_path: Path) -> None:
    case = GENERATED[name]
    folder = tmp_path / "stack"
    folder.mkdir()
    desired = case.build(folder)
    before = sorted(p.name for p in folder.iterdir())
    for command in case.commands:
        out = tmp_path / "out"
        result = _run(command, desired, tripwire, out)
        # image build is not a file load: its errors name the key path and the companion, not recon.toml
        _check(result, case.expected if command == "image build" else ("recon.toml", *case.expected), tripwire)
        assert not out.exists() or not any(out.iterdir()), "a refused image left files behind"
    assert sorted(p.name for p in folder.iterdir()) == before, "bad input changed the stack's folder"


@pytest.mark.parametrize("name", ["deeply_nested", "huge_desired_file"])
def test_fmt_refuses_generated(name: str, tmp_path: Path) -> None:
    desired = GENERATED[name].build(tmp_path)
    before = desired.read_bytes()
    result = CliRunner().invoke(app, ["fmt", "-c", str(desired)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), repr(result.exception)
    assert "recon.toml" in result.output and ("invalid TOML" in result.output or "larger than" in result.output)
    assert desired.read_bytes() == before


def test_fmt_never_crashes_on_the_corpus(tmp_path: Path) -> None:
    """`recon fmt --check` reads the same files: it says formatted, not formatted, or why not -- no traceback."""
    for path in sorted(BAD.glob("*.toml")):
        result = CliRunner().invoke(app, ["fmt", "--check", "-c", str(path)])
        assert result.exit_code in (0, 1), (path.name, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (path.name, result.exception)


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text('[stack]\nname = "x"\n' + "# padding\n" * 500_000)
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 1
    assert "larger than" in result.output


def test_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "-c", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert "file not found" in result.output and "nope.toml" in result.output

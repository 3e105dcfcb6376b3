"""``haproxy -c`` on a configuration as the load-balancer VM will load it, run on the build host.

The build host's HAProxy judges a copy adapted only where the host is not the VM, and every
adaptation is listed in the result:

- files the configuration reads when HAProxy loads it (``errorfile``, ``crt``, ``ca-file``,
  ``crl-file``, ``crt-list``, ``lua-load``, …; see ``file_references``) come from the image, never
  from the build host: the caller reads them from the image's file system, they are written into
  a private folder and the copy names them there. What HAProxy writes or opens only at run time
  (``pidfile``, log and stats sockets) is left alone: ``haproxy -c`` does not touch it;
- ``user`` / ``group`` names the host lacks (the servo's ``servo``) become the current user's ids;
- what the image's HAProxy 1.5 takes and HAProxy 2.1 and later refuse, in what the servo writes:
  ``reqadd`` is checked as the ``http-request add-header`` that replaced it, an error file whose
  headers end without a blank line (1.5 sends the file as it is, later ones parse it) gets one,
  and servers of one backend that share a name (the servo names them all after the listener)
  are numbered;
- in an effective configuration, server addresses that are not IP addresses (instance ids
  standing for the private addresses the servo learns at run time) are checked as 127.0.0.1, and
  files the servo makes at run time (the certificate it downloads for an HTTPS listener) are
  stood in for by throw-away ones;
- a template gets two listeners appended the way the servo appends them (HAProxy refuses a
  configuration without one).
"""

from __future__ import annotations

import functools
import grp
import ipaddress
import os
import pwd
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import scratch
from ..errors import ReconError
from .disk import which
from .haproxy import SECTIONS, split_comment

# Directives whose Nth word is a file HAProxy reads at load time.
READ_AT = {"errorfile": 2, "lua-load": 1, "lua-load-per-thread": 1, "ssl-dh-param-file": 1, "h1-case-adjust-file": 1}
# Lines whose options name files, and those options.
READ_AFTER = {
    **{head: frozenset({"crt", "ca-file", "crl-file", "crt-list", "ca-verify-file"})
       for head in ("bind", "server", "default-server", "server-template")},
    **{head: frozenset({"errorfile", "file", "lf-file"})
       for head in ("http-request", "http-response", "http-after-response")},
}
SAMPLE_LISTENERS = """
frontend http-80
  mode http
  option forwardfor except 127.0.0.1
  bind 0.0.0.0:80
  default_backend backend-http-80

backend backend-http-80
  mode http
  balance roundrobin
  server http-80 127.0.0.1:8080

frontend tcp-8443
  mode tcp
  bind 0.0.0.0:8443
  default_backend backend-tcp-8443

backend backend-tcp-8443
  mode tcp
  balance roundrobin
  server tcp-8443 127.0.0.1:8443
"""
PARSED_ERROR_FILES = (2, 1)       # HAProxy versions from which error files are parsed and reqadd is gone


@dataclass(frozen=True)
class FileReference:
    """A file a configuration makes HAProxy read: where it is named and what names it."""

    line: int            # 1-based
    word: int            # index of the path among the line's words
    directive: str       # "errorfile 503", "bind 0.0.0.0:443 … crt"
    path: str


@dataclass(frozen=True)
class HaproxyCheck:
    """The outcome of ``haproxy -c`` on a rendered template or an effective configuration."""

    status: str                      # passed | failed | skipped
    output: str
    adaptations: tuple[str, ...] = ()
    version: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def file_references(text: str) -> list[FileReference]:
    """Every file ``text`` makes HAProxy read when it loads the configuration."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        words = split_comment(line)[0].split()
        if not words:
            continue
        head = words[0]
        if head in READ_AT and len(words) > READ_AT[head]:
            at = READ_AT[head]
            found.append(FileReference(number, at, " ".join(words[:at]), words[at]))
        for i in range(1, len(words) - 1):
            if words[i] in READ_AFTER.get(head, ()):
                found.append(FileReference(number, i + 1, f"{' '.join(words[:2])} … {words[i]}", words[i + 1]))
    return found


def _known(lookup: Callable[[str], Any], name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def _user_and_group(words: list[str], section: str | None) -> list[str]:
    """Make unknown user / group names numeric in ``words``; a note for each."""
    if section == "global" and words[:1] in (["user"], ["group"]):
        positions: range | list[int] = [0]
    elif words[:2] == ["stats", "socket"] or words[:1] == ["bind"]:
        positions = range(2, len(words) - 1)
    else:
        return []
    ids = {"user": ("uid", os.geteuid(), pwd.getpwnam), "group": ("gid", os.getegid(), grp.getgrnam)}
    notes = []
    for i in positions:
        if i + 1 < len(words) and words[i] in ids and not _known(ids[words[i]][2], words[i + 1]):
            numeric, value, _lookup = ids[words[i]]
            notes.append(f"{words[i]} {words[i + 1]} checked as {numeric} {value} "
                         f"(no {words[i]} {words[i + 1]!r} on the build host)")
            words[i:i + 2] = [numeric, str(value)]
    return notes


def _reqadd(words: list[str]) -> list[str]:
    """``reqadd Name:\\ value [if …]`` as ``http-request add-header Name value [if …]``."""
    header, rest = [], words[1:]
    while rest:
        header.append(rest.pop(0))
        if not header[-1].endswith("\\"):
            break
    name, _, value = " ".join(header).replace("\\ ", " ").partition(":")
    value = value.strip()
    return ["http-request", "add-header", name.strip(), f'"{value}"' if " " in value else value, *rest]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def adapt_for_check(text: str, files: Mapping[str, bytes], root: Path, *, host: tuple[int, ...],
                    effective: bool, run_time: Mapping[str, tuple[bytes, str]] | None = None
                    ) -> tuple[str, dict[Path, bytes], tuple[str, ...]]:
    """(the copy to check, the files to put under ``root`` for it, the adaptations made)."""
    references: dict[int, list[FileReference]] = {}
    for ref in file_references(text):
        references.setdefault(ref.line, []).append(ref)
    files_for = _Files(files, run_time or {}, root, host)
    strict = host >= PARSED_ERROR_FILES
    notes: list[str] = []
    out = []
    section, servers = None, {}
    for number, line in enumerate(text.splitlines(), 1):
        code, comment = split_comment(line)
        words = code.split()
        if words and words[0] in SECTIONS:
            section, servers = words[0], {}
        changes = [change for ref in references.get(number, ()) for change in files_for.point(ref, number, words)]
        changes += _user_and_group(words, section)
        if strict and words[:1] == ["reqadd"]:
            words = _reqadd(words)
            changes.append(f"reqadd checked as {' '.join(words[:3])} … (HAProxy 2.1 removed reqadd; "
                           "the image's 1.5 has it)")
        if words[:1] == ["server"] and len(words) > 2:
            changes += _server(words, servers, effective)
        if changes:
            line = code[:len(code) - len(code.lstrip())] + " ".join(words) + comment
            notes += [f"line {number}: {change}" for change in changes]
        out.append(line)
    adapted = "\n".join(out) + "\n"
    if not effective:
        adapted += SAMPLE_LISTENERS
        notes.append("appended a sample HTTP and a sample TCP listener as the servo writes them "
                     "(haproxy -c refuses a configuration without one)")
    return adapted, files_for.to_write, tuple(notes)


@dataclass
class _Files:
    """The files a configuration names, as the check gets them: from the image, or stand-ins for
    those the servo writes at run time, copied under ``root``."""

    files: Mapping[str, bytes]
    run_time: Mapping[str, tuple[bytes, str]]
    root: Path
    host: tuple[int, ...]
    to_write: dict[Path, bytes] = field(default_factory=dict)

    def point(self, ref: "FileReference", number: int, words: list[str]) -> list[str]:
        """Point the reference's word at the local copy of its file; the adaptations that made."""
        changes = []
        if ref.path in self.run_time:
            data, what = self.run_time[ref.path]
            changes.append(f"{ref.directive} {ref.path} is {what} at run time: checked with a throw-away one")
        elif ref.path.startswith("/") and ref.path in self.files:
            data = self.files[ref.path]
            changes.append(f"{ref.directive} {ref.path} read from the image")
        else:
            raise ReconError(f"line {number}: {ref.directive} names {ref.path}, which the check was not given")
        if self.host >= PARSED_ERROR_FILES and words[0] == "errorfile" and \
                b"\n\n" not in data.replace(b"\r\n", b"\n"):
            data += b"\n" if data.endswith(b"\n") else b"\n\n"
            changes.append(f"{ref.path} checked with a blank line after its headers (HAProxy "
                           f"{'.'.join(map(str, self.host))} parses error files; the image's 1.5 sends them as "
                           "they are)")
        local = self.root / ref.path.lstrip("/")
        self.to_write[local] = data
        words[ref.word] = str(local)
        return changes


def _server(words: list[str], servers: dict[str, int], effective: bool) -> list[str]:
    """A ``server`` line made checkable: a run-time address as loopback, repeated names made distinct."""
    changes = []
    host_part, _, port = words[2].rpartition(":")
    if effective and host_part and not _is_ip(host_part):
        words[2] = f"127.0.0.1:{port}"
        changes.append(f"server address {host_part} (an instance's private address at run time) "
                       "checked as 127.0.0.1")
    count = servers[words[1]] = servers.get(words[1], 0) + 1
    if count > 1:
        changes.append(f"server {words[1]} checked as {words[1]}-{count} (the servo gives every server "
                       "of a backend the same name; this HAProxy wants distinct ones)")
        words[1] = f"{words[1]}-{count}"
    return changes


@functools.lru_cache(maxsize=4)
def _version(haproxy: str) -> str | None:
    done = subprocess.run([haproxy, "-v"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\S+)", done.stdout)
    return match.group(1) if match else None


def _numbers(version: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version or "")[:2]) or (0,)


@functools.lru_cache(maxsize=1)
def stand_in_certificate() -> bytes:
    """A throw-away self-signed certificate and its key, in one PEM (as HAProxy's ``crt`` takes them)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recon check stand-in")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def check(text: str, *, files: Mapping[str, bytes] | None = None, effective: bool = False,
          run_time: Mapping[str, tuple[bytes, str]] | None = None, haproxy: str | None = None) -> HaproxyCheck:
    """``haproxy -c`` on an adapted copy of ``text``; 'skipped' where HAProxy is not installed.

    ``files`` holds, by path, every file ``file_references`` finds (read from the image) but those
    in ``run_time`` (path -> (stand-in contents, what the real one is)); ``effective`` says ``text``
    is a whole configuration as the servo writes it, not a template.
    """
    binary = haproxy or which("haproxy")
    if binary is None:
        return HaproxyCheck("skipped", "haproxy is not installed on this host: the configuration was not checked")
    version = _version(binary)
    with scratch.directory("haproxy-") as tmp:
        root = Path(tmp) / "image"
        adapted, to_write, notes = adapt_for_check(text, files or {}, root, host=_numbers(version),
                                                   effective=effective, run_time=run_time)
        for local, data in to_write.items():
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        config = Path(tmp) / ("euca_haproxy.conf" if effective else "haproxy_template.conf")
        config.write_text(adapted)
        done = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    output = "\n".join(line.replace(str(config), config.name).replace(str(root), "")
                       for line in (done.stdout + done.stderr).splitlines()
                       if line.strip() and "[NOTICE]" not in line)
    return HaproxyCheck("passed" if done.returncode == 0 else "failed", output, notes, version)

"""The load-balancer servo inside the image: where its files are and which release it is.

The servo (eucalyptus/load-balancer-servo) is a Python 2 package installed with distutils from an
RPM whose spec owns ``/etc/load-balancer-servo`` (user ``servo``). Its ``setup.py`` names the
package "Eucalyptus Loadbalancer Servo", so distutils leaves the package metadata in
``/usr/lib/pythonX.Y/site-packages/Eucalyptus_Loadbalancer_Servo-VERSION-pyX.Y.egg-info`` (a
PKG-INFO file; a folder holding PKG-INFO where setuptools installed it). That is where recon reads
which release an image carries; the block's ``servo_version`` says it where the image cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..errors import ConfigError, ReconError

if TYPE_CHECKING:   # the image is opened by the caller
    from .disk import ExtFileSystem

CONF_ROOT = "/etc/load-balancer-servo"
TEMPLATE_PATH = f"{CONF_ROOT}/haproxy_template.conf"
ERROR_FILE = f"{CONF_ROOT}/503.http"                        # shipped from servo 1.2 on
RUN_ROOT = "/var/lib/load-balancer-servo"
EFFECTIVE_PATH = f"{RUN_ROOT}/euca_haproxy.conf"            # what the servo writes and HAProxy runs
PACKAGE_NAME = "Eucalyptus Loadbalancer Servo"
EGG_INFO = re.compile(r"^Eucalyptus_Loadbalancer_Servo-(\d+(?:\.\d+)+)-py\d+\.\d+\.egg-info$")
PYTHON_DIR = re.compile(r"^python\d+\.\d+$")
LIB_ROOTS = ("/usr/lib", "/usr/lib64")
VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")


def egg_info_path(version: str, python: str = "2.6") -> str:
    """Where the servo's package metadata lives for ``version`` (CentOS 6 ships Python 2.6)."""
    return f"/usr/lib/python{python}/site-packages/Eucalyptus_Loadbalancer_Servo-{version}-py{python}.egg-info"


def pkg_info(version: str) -> str:
    """The PKG-INFO text distutils writes for the servo's ``setup.py`` (metadata version 1.0)."""
    return (f"Metadata-Version: 1.0\nName: {PACKAGE_NAME}\nVersion: {version}\nSummary: {PACKAGE_NAME}\n"
            "Home-page: http://www.eucalytpus.com\nAuthor: Sang-Min Park\nAuthor-email: community@eucalyptus.com\n"
            f"License: GPL v3\nDescription: {PACKAGE_NAME}\nPlatform: UNKNOWN\n")


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.2.0"`` as ``(1, 2, 0)``; ValueError for anything else."""
    if not VERSION_RE.match(text):
        raise ValueError(f"{text!r} is not a version such as 1.2 or 1.2.0")
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class ServoRelease:
    """Which servo release an image carries, and where recon learned it."""

    version: str
    source: str          # the metadata file in the image, or the block's servo_version

    @property
    def numbers(self) -> tuple[int, ...]:
        return parse_version(self.version)

    def at_least(self, *release: int) -> bool:
        return self.numbers >= release


def _metadata_version(fs: ExtFileSystem, path: str) -> str | None:
    info = fs.stat(path)
    if info is not None and info.type == "directory":
        path = f"{path}/PKG-INFO"
    try:
        text = fs.read(path).decode(errors="replace")
    except ReconError:
        return None
    match = re.search(r"^Version:\s*(\S+)\s*$", text, re.M)
    return match.group(1) if match and VERSION_RE.match(match.group(1)) else None


def read_installed(fs: ExtFileSystem) -> ServoRelease | None:
    """The servo release whose package metadata the image holds, or None where it has none."""
    found = []
    for root in LIB_ROOTS:
        for python in sorted(n for n in fs.listdir(root) if PYTHON_DIR.match(n)):
            site = f"{root}/{python}/site-packages"
            for name in fs.listdir(site):
                if EGG_INFO.match(name):
                    version = _metadata_version(fs, f"{site}/{name}")
                    if version is not None:
                        found.append(ServoRelease(version, f"{site}/{name}"))
    return max(found, key=lambda release: release.numbers, default=None)


def servo_release(installed: ServoRelease | None, declared: str | None, where: str) -> ServoRelease | None:
    """The release to model: the image's own where it says, else the block's ``servo_version``."""
    if declared is not None and installed is not None and parse_version(declared) != installed.numbers[:len(
            parse_version(declared))]:
        raise ConfigError(f"servo_version is {declared}, but the image carries servo {installed.version} "
                          f"({installed.source})", where=f"{where}.servo_version",
                          hint="remove servo_version (recon reads it from the image) or use the image it names")
    if installed is not None:
        return installed
    return ServoRelease(declared, f"servo_version in {where}") if declared is not None else None


# --- what the servo writes for HAProxy -------------------------------------------------------------
# servo/haproxy/haproxy_conf.py (ConfBuilderHaproxy), servo/haproxy/proxy.py, servo/main_loop.py and
# servo/mon/log.py of each release. The servo copies the template to EFFECTIVE_PATH, then, for each
# listener, re-reads that file, adds the listener's sections and writes it again.

SECTION_WORDS = ("global", "listen", "defaults", "frontend", "backend")
LOG_SOCKET = f"{RUN_ROOT}/haproxy.sock"
DEFAULT_IDLE_TIMEOUT = 60            # config.CONNECTION_IDLE_TIMEOUT, when the attributes say nothing
IDLE_TIMEOUT_RANGE = (1, 3600)       # main_loop clamps the load balancer's idle timeout to this
HTTP_LOG = {(1, 0): r"httplog\ %f\ %b\ %s\ %ST\ %ts\ %Tq\ %Tw\ %Tc\ %Tr\ %Tt",
            (1, 2): r"httplog\ %Ts\ %ci\ %cp\ %si\ %sp\ %Tq\ %Tw\ %Tc\ %Tr\ %Tt\ %ST\ %U\ %B\ %f\ %b\ %s\ %ts\ %r",
            (1, 4): r"httplog\ %Ts\ %ci\ %cp\ %si\ %sp\ %Tq\ %Tw\ %Tc\ %Tr\ %Tt\ %ST\ %U\ %B\ %f\ %b\ %s\ %ts\ %r"
                    r"\ %hrl"}
TCP_LOG = {(1, 0): r"tcplog\ %f\ %b\ %s\ %ts\ %Tw\ %Tc\ %Tt",
           (1, 2): r"tcplog\ %Ts\ %ci\ %cp\ %si\ %sp\ %Tw\ %Tc\ %Tt\ %U\ %B\ %f\ %b\ %s\ %ts"}
#: From this release on, every listener gets timeout client / timeout server from the idle timeout.
LISTENER_TIMEOUTS = (1, 1)
#: The template settings those per-listener lines override.
OVERRIDDEN = ("timeout client", "timeout server")


@dataclass(frozen=True)
class Listener:
    """One listener of a load balancer, as the servo receives it."""

    protocol: str                    # http, https, tcp or ssl
    port: int
    instance_port: int
    instance_protocol: str
    certificate: str | None = None   # the server certificate's ARN (https / ssl)


@dataclass(frozen=True)
class Effective:
    """The configuration the servo writes for one load balancer, and the listeners it leaves out."""

    text: str
    skipped: tuple[str, ...] = ()
    #: Files HAProxy reads that the servo makes at run time (server certificates): path -> what it is.
    run_time_files: tuple[tuple[str, str], ...] = ()


def _since(table: dict[tuple[int, int], str], release: ServoRelease) -> str:
    return table[max(key for key in table if release.at_least(*key))]


def template_sections(template: str) -> dict[str, list[str]]:
    """The servo's reading of a template: each section's header -> its lines, stripped, blank ones dropped.

    A header that comes again starts its section over (the servo keys sections by header line).
    """
    sections: dict[str, list[str]] = {}
    current = None
    for line in template.split("\n"):
        stripped = line.strip("\n ")
        if stripped.split(" ")[0] in SECTION_WORDS:
            current = stripped
            sections[current] = []
        elif current is not None and stripped:
            sections[current].append(stripped)
    return sections


def certificate_path(arn: str) -> str:
    """Where the servo writes the certificate (and key) it downloads for an HTTPS / SSL listener."""
    return f"{RUN_ROOT}/{arn.rpartition('/')[2]}/cert.pem"


def idle_timeout(value: int | None) -> int:
    low, high = IDLE_TIMEOUT_RANGE
    return DEFAULT_IDLE_TIMEOUT if value is None else min(max(int(value), low), high)


def _listener_sections(listener: Listener, release: ServoRelease, load_balancer: str, timeout: int,
                       servers: list[str]) -> tuple[list[str], list[str]]:
    proto, port = listener.protocol, listener.port
    http = proto in ("http", "https")
    name = f"{proto}-{port}"
    frontend = [f"# lb-{load_balancer}", "mode http" if http else "mode tcp"]
    if http:
        frontend.append("option forwardfor except 127.0.0.1")
        if release.at_least(1, 1):
            frontend += [rf"reqadd X-Forwarded-Proto:\ {proto}", rf"reqadd X-Forwarded-Port:\ {port}"]
    if proto in ("https", "ssl"):
        flags = " no-sslv3" if release.at_least(1, 1) and not release.at_least(1, 2) else ""
        frontend.append(f"bind 0.0.0.0:{port} ssl crt {certificate_path(listener.certificate or '')}{flags}")
    else:
        frontend.append(f"bind 0.0.0.0:{port}")
    if release.at_least(*LISTENER_TIMEOUTS):
        frontend.append(f"timeout client {timeout}s")
    frontend.append(f"log {LOG_SOCKET} local2 info")
    if http and release.at_least(1, 4):
        frontend.append("capture request header User-Agent len 8192")
    frontend.append(f"log-format {_since(HTTP_LOG if http else TCP_LOG, release)}")
    frontend.append(f"default_backend backend-{name}")
    backend = []
    for server in servers:    # the servo puts each server before the mode line
        line = f"server {name} {server}:{listener.instance_port}"
        if release.at_least(1, 2) and listener.instance_protocol in ("https", "ssl"):
            line += " ssl verify none"
        backend.append(line)
    backend += ["mode http" if http else "mode tcp", "balance roundrobin"]
    if release.at_least(*LISTENER_TIMEOUTS):
        backend.append(f"timeout server {timeout}s")
    return frontend, backend


def effective_config(template: str, release: ServoRelease, *, load_balancer: str, listeners: list[Listener],
                     idle: int | None = None, servers: Sequence[str] = ()) -> Effective:
    """What the servo of ``release`` writes to EFFECTIVE_PATH for a load balancer.

    ``servers`` are the addresses of its in-service instances (none until an instance passes its
    health check); ``idle`` its idle timeout attribute. Stickiness and SSL negotiation policies
    are not modelled.
    """
    sections = template_sections(template)
    skipped, run_time = [], []
    timeout = idle_timeout(idle)
    for listener in listeners:
        taken = [key for key in sections if key.startswith("frontend") and key.endswith(f"-{listener.port}")]
        if taken:
            skipped.append(f"{listener.protocol.upper()}:{listener.port} (the template's {taken[0]!r} "
                           "already ends with that port; the servo refuses the listener)")
            continue
        if listener.protocol in ("https", "ssl"):
            if not listener.certificate:
                skipped.append(f"{listener.protocol.upper()}:{listener.port} (no ssl_certificate_id: the servo "
                               "has no certificate to download and leaves the listener out)")
                continue
            run_time.append((certificate_path(listener.certificate),
                             f"the certificate the servo downloads for {listener.certificate}"))
        name = f"{listener.protocol}-{listener.port}"
        frontend, backend = _listener_sections(listener, release, load_balancer, timeout, sorted(servers))
        sections[f"frontend {name}"] = frontend
        sections[f"backend backend-{name}"] = backend
    lines: list[str] = []

    def emit(header: str) -> None:
        lines.extend([header, *(f"  {line}" for line in sections[header]), ""])

    for prefix in SECTION_WORDS[:3]:        # one of each: the last section whose header starts so
        chosen = [key for key in sections if key.startswith(prefix)]
        if chosen:
            emit(chosen[-1])
    for prefix in SECTION_WORDS[3:]:
        for key in [key for key in sections if key.startswith(prefix)]:
            emit(key)
    return Effective("\n".join(lines) + "\n" if lines else "", tuple(skipped), tuple(run_time))


def time_seconds(value: str) -> float:
    """A HAProxy time (``5000``, ``500ms``, ``2m``) in seconds; bare numbers are milliseconds."""
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value)
    if match is None:
        raise ValueError(f"{value!r} is not a HAProxy time")
    scale = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * scale

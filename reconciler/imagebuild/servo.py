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

from ..errors import ConfigError, ReconError
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

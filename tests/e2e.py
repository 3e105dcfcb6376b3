"""Helpers for end-to-end tests: a sandbox child process and the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import forkserver
from reconciler.demo import plain_client
from reconciler.imagebuild.standins import make_docker_standins
from reconciler.sandbox import start_child as _start_child

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def start_child(directory: Path, **options):
    """A sandbox child process (``reconciler.sandbox.start_child``), forked by the fork server."""
    return _start_child(directory, spawn=forkserver.Popen, **options)


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any cloud's variables, plus ``env`` and test settings."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA", "S3_"))}
    full_env.setdefault("RECON_WAIT_INTERVAL", "0.05")   # polls of the sandbox: no need to wait 2 s
    full_env.update(env)
    full_env.update({"NO_COLOR": "1", "RECON_RETRY_INITIAL": "0.05", "RECON_RETRY_MAX": "0.2"})
    return full_env


def recon(env: dict[str, str], *args: str, cwd: Path, timeout: float = 300, stdin: str | None = None) -> Run:
    """Run the real `recon` command line in a child process."""
    proc = forkserver.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=cli_env(env), text=True,
                          capture_output=True, timeout=timeout, input=stdin if stdin is not None else "")
    return Run(proc.returncode, proc.stdout, proc.stderr)


class Background:
    """`recon ARGS` running in a child process, its output collected as it comes, so that a test
    can act (send a signal) at a moment the output shows."""

    def __init__(self, env: dict[str, str], *args: str, cwd: Path, stdin=subprocess.DEVNULL):
        self.proc = forkserver.Popen([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=cli_env(env),
                                     stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._chunks: dict[str, list[bytes]] = {"out": [], "err": []}
        self._readers = [threading.Thread(target=self._read, args=(stream, name), daemon=True)
                         for stream, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, name: str) -> None:
        while chunk := os.read(stream.fileno(), 1 << 16):
            self._chunks[name].append(chunk)

    def text(self, name: str = "err") -> str:
        return b"".join(self._chunks[name]).decode(errors="replace")

    def wait_until(self, check, what: str, *, timeout: float = 120):
        """Poll ``check()`` until it gives something true, while recon still runs; return that."""
        deadline = time.monotonic() + timeout
        while not (found := check()):
            assert self.proc.poll() is None, f"recon exited before {what}:\n{self.text('out')}{self.text('err')}"
            assert time.monotonic() < deadline, f"no {what} in {timeout}s:\n{self.text('out')}{self.text('err')}"
            time.sleep(0.02)
        return found

    def wait_for(self, pattern: str, *, stream: str = "err", timeout: float = 120) -> re.Match:
        """Wait until the output matches ``pattern`` (a regular expression, multi-line)."""
        return self.wait_until(lambda: re.search(pattern, self.text(stream), re.M), repr(pattern), timeout=timeout)

    def kill(self) -> None:
        """SIGKILL it if it still runs (a test that failed half-way)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish()

    def finish(self, timeout: float = 120) -> Run:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return Run(code, self.text("out"), self.text("err"))


def toml_value(value) -> str:
    """A value as TOML: strings and lists of them as JSON writes them, numbers as they are, tables inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


def images_stack(name: str, *, keypair: bool = True) -> str:
    """A stack of the sandbox's Docker root file system image (``images.rootfs``) and, unless
    ``keypair=False``, the admin key pair from ``keys/docker-admin.pub``."""
    admin = '\n[keypairs.admin]\npublic_key_file = "keys/docker-admin.pub"\n' if keypair else ""
    return f'[stack]\nname = "{name}"\n\n[images.rootfs]\nname = "ubuntu-raring-docker-rootfs"\n{admin}'


def hosts_stack(name: str, *, keypair: bool = True, extra: str = "", **host) -> str:
    """:func:`images_stack` with ``docker_hosts.web`` of the given keys (the image, instance type
    m1.small, the key pair and the zone unless given), then ``extra`` blocks."""
    keys = {"image": "${images.rootfs.id}", "instance_type": "m1.small",
            **({"key_name": "${keypairs.admin.name}"} if keypair else {}),
            "zone": "ViciousLiesAndDangerousRumors", **host}
    lines = "".join(f"{key} = {toml_value(value)}\n" for key, value in keys.items())
    return f"{images_stack(name, keypair=keypair)}\n[docker_hosts.web]\n{lines}{extra}"


def copy_examples(dest: Path) -> Path:
    """The examples in ``dest``, with the Docker image's stand-in files that docker.toml names."""
    shutil.copytree(EXAMPLES, dest, dirs_exist_ok=True)
    make_docker_standins(dest / "images")
    return dest


def client(env: dict[str, str], service: str):
    return plain_client(env, service)


def properties_client(env: dict[str, str]):
    return plain_client(env, "properties")


def property_value(env: dict[str, str], name: str) -> str:
    reply = properties_client(env).describe_properties(Properties=[name])
    return {p["name"]: p.get("value", "") for p in reply["properties"]}[name]

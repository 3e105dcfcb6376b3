"""Helpers for end-to-end tests: a sandbox child process and the real CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reconciler.demo import plain_client

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def recon(env: dict[str, str], *args: str, cwd: Path, timeout: float = 300, stdin: str | None = None) -> Run:
    """Run the real `recon` command line in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA", "S3_"))}
    full_env.update(env)
    full_env.update({"NO_COLOR": "1", "RECON_RETRY_INITIAL": "0.05", "RECON_RETRY_MAX": "0.2"})
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout, input=stdin if stdin is not None else "")
    return Run(proc.returncode, proc.stdout, proc.stderr)


def copy_examples(dest: Path) -> Path:
    shutil.copytree(EXAMPLES, dest, dirs_exist_ok=True)
    return dest


def client(env: dict[str, str], service: str):
    return plain_client(env, service)


def properties_client(env: dict[str, str]):
    return plain_client(env, "properties")


def property_value(env: dict[str, str], name: str) -> str:
    reply = properties_client(env).describe_properties(Properties=[name])
    return {p["name"]: p.get("value", "") for p in reply["properties"]}[name]

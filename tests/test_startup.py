"""What short commands import: nothing they do not use (python -X importtime on the real CLI).

Not timed: the modules a command loads are what decides its start-up, and they are counted exactly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from reconciler import __version__

ROOT = Path(__file__).resolve().parent.parent
STACK = """[stack]
name = "lean"

[security_groups.web]
description = "web"
ingress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]

[load_balancers.web]
zones = ["one"]
listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80 }]
"""


def imported(cwd: Path, *args: str) -> tuple[str, set[str]]:
    """The command's output and the top-level packages it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", proc.stderr, re.M)
    return proc.stdout, {m.split(".")[0] for m in modules}


def test_the_version_is_printed_without_the_command_line(tmp_path: Path) -> None:
    for args in (["--version"], ["version"]):
        out, packages = imported(tmp_path, *args)
        assert out == f"recon {__version__}\n"
        assert not packages & {"typer", "click", "botocore", "pydantic"}, packages


def test_validate_imports_no_cloud_client_nor_crypto_nor_pydantic(tmp_path: Path) -> None:
    (tmp_path / "lean.toml").write_text(STACK)
    out, packages = imported(tmp_path, "validate", "-c", "lean.toml")
    assert "valid" in out
    assert "typer" in packages and "reconciler" in packages
    assert not packages & {"botocore", "boto3", "cryptography", "yaml", "tomlkit", "moto", "jmespath", "tenacity",
                           "pydantic", "rich"}, packages

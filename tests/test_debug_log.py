"""`recon --debug` and `RECON_LOG=debug` (`RECON_LOG_FILE`): every cloud call's attempts, with the action,
the HTTP status, the attempt's number and its seconds, on stderr or in a file; never a body or a secret."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from e2e import copy_examples, hosts_stack, recon
from faultproxy import FaultProxy

MARKER = "userdata-marker-debug-51c0ffee"
CLOUD_INIT = f"#cloud-config\nwrite_files:\n  - path: /etc/token\n    content: {MARKER}\n"
LINE = re.compile(r"^\S+ \S+ debug reconciler\.calls: (\w+\.\w+) attempt (\d+): (HTTP \d+(?: \S+)?|failed: \w+) "
                  r"in \d+\.\d{3}s \(\S+\)$", re.M)


def calls(text: str) -> list[tuple[str, int, str]]:
    return [(name, int(number), outcome) for name, number, outcome in LINE.findall(text)]


def test_debug_log_of_every_call(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    work = copy_examples(tmp_path / "repo")
    (work / "cloud-init.yaml").write_text(CLOUD_INIT)
    (work / "recon.toml").write_text(hosts_stack("dbg", cloud_init="cloud-init.yaml"))

    applied = recon(env, "--debug", "apply", "--auto-approve", cwd=work)
    assert applied.code == 0, applied.both
    logged = calls(applied.err)
    assert ("ec2.ImportKeyPair", 1, "HTTP 200") in logged and ("ec2.RunInstances", 1, "HTTP 200") in logged
    assert ("ec2.DescribeKeyPairs", 1, "HTTP 200") in logged
    assert not calls(applied.out)   # stdout stays the plan and the outcome
    # no request body: the user data (as sent, in base64), the credentials
    for secret in (MARKER, base64.b64encode(CLOUD_INIT.encode()).decode()[:40], env["EC2_SECRET_KEY"]):
        assert secret not in applied.err

    # RECON_LOG=debug to a file: the log goes there, stderr has none of it
    planned = recon({**env, "RECON_LOG": "debug", "RECON_LOG_FILE": "debug.log"}, "plan", cwd=work)
    assert planned.code == 0, planned.both
    assert not calls(planned.err)
    assert ("ec2.DescribeInstances", 1, "HTTP 200") in calls((work / "debug.log").read_text())
    assert recon(env, "plan", cwd=work).err.count("debug reconciler") == 0   # off unless asked

    # A cloud that fails every attempt: each attempt logged with its status, the retry noted
    proxy = FaultProxy(sandbox.url, share=1.0, faults=("503",))
    try:
        failed = recon({**proxy.env(env), "RECON_RETRY_ATTEMPTS": "2"}, "--debug", "plan", cwd=work)
    finally:
        proxy.close()
    assert failed.code == 1
    logged = calls(failed.err)
    first = next(name for name, number, outcome in logged if outcome == "HTTP 503 ServiceUnavailable")
    assert (first, 1, "HTTP 503 ServiceUnavailable") in logged and (first, 2, "HTTP 503 ServiceUnavailable") in logged
    assert re.search(rf"{re.escape(first)}: attempt 1 failed \(ServiceUnavailable\), retrying", failed.err)

    unwritable = recon(env, "--debug", "--log-file", "no/such/folder/debug.log", "validate", cwd=work)
    assert unwritable.code == 1 and "cannot write the debug log" in unwritable.err
    assert "Traceback" not in unwritable.err

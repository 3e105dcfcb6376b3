"""Malformed and hostile desired-state files: each gets a clear error naming where,
exits 1 without a traceback, and never reaches the cloud."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app

BAD = Path(__file__).parent / "fixtures" / "bad"

# file → substrings the error must contain (the file name is always checked too)
EXPECTED = {
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
}


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


def test_every_bad_file_has_an_expectation() -> None:
    assert sorted(p.stem for p in BAD.glob("*.toml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file(name: str, command: str, tripwire: Tripwire, tmp_path: Path) -> None:
    env = {"EC2_URL": f"{tripwire.url}/services/compute", "AWS_ELB_URL": f"{tripwire.url}/services/LoadBalancing",
           "EC2_ACCESS_KEY": "AKIDTRIPWIRE", "EC2_SECRET_KEY": "tripwire-secret", "NO_COLOR": "1",
           "RECON_RETRY_ATTEMPTS": "1"}
    result = CliRunner().invoke(app, [command, "-c", str(BAD / f"{name}.toml")], env=env)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert f"{name}.toml" in result.output
    for fragment in EXPECTED[name]:
        assert fragment in result.output
    assert tripwire.connections == 0


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

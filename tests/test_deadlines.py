"""No cloud call without a bound, and no traceback on a reply that is not the service's protocol.

The real CLI as a subprocess against loopback front ends that misbehave: one accepts and never
answers, one answers a byte at a time (each byte well inside botocore's read timeout, so only a
wall-clock deadline ends it), one answers HTTP 200 with a web page.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest

from e2e import recon
from reconciler.cloud import Cloud, RetryPolicy, resolve_settings
from reconciler.errors import CloudError

EC2_ERROR = ("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
             "<RequestID>r-1</RequestID></Response>")
KEYS = {"EC2_ACCESS_KEY": "AKIDDEADLINE", "EC2_SECRET_KEY": "deadline-test-secret"}
TIMEOUT = 3            # RECON_CALL_TIMEOUT in these tests: the call's budget is three times that
WALL = 60              # generous: the budget is 9 s; nothing here depends on the machine's speed
HOLD = 60              # a misbehaving connection is let go after this long, so the server's threads end
TRICKLE = 1.0          # seconds between two bytes of a trickled reply (botocore's read timeout is 3 s)
PAGE = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><p>Please sign in.</p></body></html>\n"


def http_reply(status: int, body: str, content_type: str | None = "text/xml") -> bytes:
    headers = f"Content-Type: {content_type}\r\n" if content_type else ""
    data = body.encode()
    return f"HTTP/1.1 {status} X\r\n{headers}Content-Length: {len(data)}\r\n\r\n".encode() + data


class BadFrontEnd:
    """A loopback HTTP server that reads each request and then, by the next of ``modes`` (the
    last one repeats): ``silent`` never answers, ``trickle`` sends a reply one byte every TRICKLE
    seconds, ``html`` answers 200 with a web page (``content_type`` None: without a
    Content-Type); bytes are sent as the reply."""

    def __init__(self, *modes: str | bytes, content_type: str | None = "text/html; charset=utf-8") -> None:
        self.requests: list[str] = []
        self.stopped = threading.Event()
        self._modes = list(modes)
        self._lock = threading.Lock()
        front = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(HOLD)
                try:
                    while front._read_request(self.request):
                        with front._lock:
                            mode = front._modes.pop(0) if len(front._modes) > 1 else front._modes[0]
                        if not front._misbehave(self.request, mode, content_type):
                            return
                except OSError:  # the client gave up: that is the point
                    return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _read_request(self, sock: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                return False
            body += chunk
        action = re.search(rb"(?:^|&)Action=(\w+)", body)
        self.requests.append(action.group(1).decode() if action else head.split(b" ", 2)[1].decode("latin-1"))
        return True

    def _misbehave(self, sock: socket.socket, mode: str | bytes, content_type: str | None) -> bool:
        """Answer (or not) one request; True to read another on this connection."""
        if isinstance(mode, bytes):
            sock.sendall(mode)
            return True
        if mode == "silent":
            self.stopped.wait(HOLD)
            return False
        if mode == "trickle":
            reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 4000\r\n\r\n" + b" " * 4000
            deadline = time.monotonic() + HOLD
            for index in range(len(reply)):
                if self.stopped.wait(TRICKLE) or time.monotonic() > deadline:
                    return False
                sock.sendall(reply[index:index + 1])
            return False
        sock.sendall(http_reply(200, PAGE, content_type))
        return True

    def close(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """One sandbox for the module: its tests only plan."""
    from e2e import start_child

    with start_child(tmp_path_factory.mktemp("sandbox")) as sandbox:
        yield sandbox


@pytest.fixture
def bad_front_end():
    servers: list[BadFrontEnd] = []

    def make(*modes: str | bytes, **options) -> BadFrontEnd:
        servers.append(BadFrontEnd(*modes, **options))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def write_stack(folder: Path, cloud: dict[str, str], state: str = "") -> Path:
    """A stack whose plan reads every service: EC2 (always), ELB, properties, S3 with remote state."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f'{key} = "{value}"' for key, value in cloud.items())
    (folder / "recon.toml").write_text(f"""
[stack]
name = "deadlines"

[cloud]
{lines}

{state}

[properties]
"loadbalancing.loadbalancer_num_vm" = 1

[load_balancers.web]
zones = ["ViciousLiesAndDangerousRumors"]
listeners = [{{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }}]
""")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_a_cloud_that_does_not_answer_fails_within_the_deadline(mode, bad_front_end, tmp_path):
    server = bad_front_end(mode)
    work = write_stack(tmp_path / "stack", {"endpoint": server.url})
    started = time.monotonic()
    run = recon({**KEYS, "RECON_CALL_TIMEOUT": str(TIMEOUT)}, "plan", "--format", "json", cwd=work, timeout=WALL * 2)
    elapsed = time.monotonic() - started
    assert run.code == 1, run.both
    assert elapsed < WALL, f"took {elapsed:.0f} s"
    assert "Traceback" not in run.both
    assert run.out == ""  # the notes and the error go to stderr; stdout stays JSON-only
    host = re.escape(f"127.0.0.1:{server.port}")
    failed = re.search(rf"(\w+) failed: no answer from {host} after (\d+) s \((\d) attempts\)", run.err)
    assert failed, run.err
    assert int(failed.group(3)) >= 2  # a deadline hit is retried
    assert int(failed.group(2)) <= TIMEOUT * 3 + 1  # the call's budget: three attempts' worth
    assert "[cloud] timeout" in run.err and "RECON_CALL_TIMEOUT" in run.err  # the hint says how to wait longer
    assert re.search(rf"no answer from {host} \({failed.group(1)}\) after 1 s, still waiting…", run.err)
    assert len(server.requests) >= 2


def test_the_timeout_is_a_cloud_setting(bad_front_end, tmp_path):
    """``[cloud] timeout`` bounds the call too (and wins over the environment)."""
    server = bad_front_end("silent")
    work = write_stack(tmp_path / "stack", {"endpoint": server.url})
    text = (work / "recon.toml").read_text().replace("[cloud]\n", "[cloud]\ntimeout = 2\n")
    (work / "recon.toml").write_text(text)
    started = time.monotonic()
    run = recon({**KEYS, "RECON_CALL_TIMEOUT": "3600"}, "plan", cwd=work, timeout=WALL * 2)
    assert run.code == 1 and time.monotonic() - started < WALL, run.both
    assert re.search(r"failed: no answer from .* after [4-7] s \(\d attempts\)", run.err), run.err
    assert "each attempt waits up to 2 s" in run.err


@pytest.mark.parametrize("key, path, content_type", [
    ("compute", "/services/compute", "text/html; charset=utf-8"),
    ("compute", "/services/compute", None),       # an HTML page without a Content-Type
    ("loadbalancing", "/services/LoadBalancing", "text/html"),
    ("properties", "/services/Properties", "text/html"),
    ("objectstorage", "/services/objectstorage", "text/html"),
])
def test_an_html_page_is_a_clear_error(key, path, content_type, cloud, bad_front_end, tmp_path):
    html = bad_front_end("html", content_type=content_type)
    state = '[state]\nbackend = "s3"\nbucket = "recon-state"' if key == "objectstorage" else ""
    work = write_stack(tmp_path / "stack", {"endpoint": cloud.url, key: html.url + path}, state)
    run = recon(cloud.env, "plan", cwd=work, timeout=WALL * 2)
    assert run.code == 1, run.both
    assert "Traceback" not in run.both
    assert f"{html.url}{path}" in run.err
    assert re.search(r"\w+ failed: .* sent an HTML page \(HTTP 200, Content-Type .*\), not the service's reply",
                     run.err), run.err
    assert len(html.requests) == len(set(html.requests))  # no call asked twice: a web page stays one


@pytest.mark.parametrize("value", ['"90"', "0", "86400", "true", "1.5"])
def test_a_bad_timeout_setting_is_named(value, tmp_path):
    work = write_stack(tmp_path / "stack", {"endpoint": "http://127.0.0.1:1"})
    text = (work / "recon.toml").read_text().replace("[cloud]\n", f"[cloud]\ntimeout = {value}\n")
    (work / "recon.toml").write_text(text)
    run = recon(KEYS, "validate", cwd=work)
    assert run.code == 1 and "Traceback" not in run.both
    assert re.search(r"recon\.toml:\d+: cloud\.timeout: (expected integer|\d+ is (below|above))", run.err), run.err


@pytest.mark.parametrize("value", ["soon", "0", "2.5", "-4", "99999"])
def test_a_bad_timeout_variable_is_named(value, tmp_path):
    work = write_stack(tmp_path / "stack", {"endpoint": "http://127.0.0.1:1"})
    run = recon({**KEYS, "RECON_CALL_TIMEOUT": value}, "validate", cwd=work)
    assert run.code == 1 and "Traceback" not in run.both
    assert "environment variable RECON_CALL_TIMEOUT" in run.err
    assert f"not '{value}'" in run.err, run.err


# --------------------------------------------------------------------------- the call layer itself


def cloud_at(url: str, timeout: int = 1) -> Cloud:
    settings = resolve_settings({"endpoint": url, "timeout": timeout}, KEYS, Path("."))
    return Cloud(settings, KEYS, retry=RetryPolicy(attempts=3, initial=0.01, maximum=0.02))


def test_a_create_whose_attempt_timed_out_is_done_if_the_retry_finds_it(bad_front_end):
    """A deadline hit is a possibly lost reply: the cloud may have acted on the request."""
    duplicate = http_reply(400, EC2_ERROR.format(code="InvalidKeyPair.Duplicate", message="exists"))
    server = bad_front_end("silent", duplicate)
    cloud = cloud_at(server.url)
    assert cloud.call("ec2", "import_key_pair", done_if_retried=("InvalidKeyPair.Duplicate",), KeyName="k",
                      PublicKeyMaterial=b"ssh-ed25519 AAAA") is None
    assert server.requests == ["ImportKeyPair", "ImportKeyPair"]
    assert (cloud.stats.calls, cloud.stats.retries) == (2, 1)


def test_notes_while_waiting_name_the_host_and_the_call(bad_front_end, caplog):
    server = bad_front_end("trickle")
    cloud = cloud_at(server.url, timeout=2)
    with caplog.at_level(logging.INFO, logger="reconciler"), pytest.raises(CloudError) as info:
        cloud.call("ec2", "describe_key_pairs", where="keypairs")
    assert info.value.code == "Timeout" and info.value.where == "keypairs"
    failed = re.fullmatch(rf"DescribeKeyPairs failed: no answer from 127\.0\.0\.1:{server.port} after [3-7] s "
                          r"\(([23]) attempts\)", info.value.message)
    assert failed, info.value.message
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert notes == [f"no answer from 127.0.0.1:{server.port} (DescribeKeyPairs{again}) after 1 s, still waiting…"
                     for again in ("", ", attempt 2", ", attempt 3")[:int(failed.group(1))]]


@pytest.mark.parametrize("service, operation, body, what", [
    ("ec2", "describe_instances", '<DescribeKeyPairsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
     "<keySet/></DescribeKeyPairsResponse>", "a <DescribeKeyPairsResponse> document (HTTP 200) where "
     "<DescribeInstancesResponse> was expected"),
    ("elb", "describe_load_balancers", "<DescribeLoadBalancersResponse><ResponseMetadata><RequestId>r</RequestId>"
     "</ResponseMetadata></DescribeLoadBalancersResponse>", "a reply without the <DescribeLoadBalancersResult> element"),
    ("properties", "describe_properties", "<html><body>It works!</body></html>",
     "an HTML page (HTTP 200, Content-Type text/xml)"),
])
def test_a_reply_of_another_protocol_is_refused_at_once(service, operation, body, what, bad_front_end):
    server = bad_front_end(http_reply(200, body))
    cloud = cloud_at(server.url)
    with pytest.raises(CloudError) as info:
        cloud.call(service, operation)
    assert info.value.code == "InvalidReply"
    assert info.value.message.endswith(f" sent {what}, not the service's reply"), info.value.message
    assert info.value.message.startswith(f"{info.value.operation} failed: {server.url}/services/")
    assert len(server.requests) == 1


def test_the_timeout_comes_from_the_file_then_the_environment():
    assert resolve_settings({}, {}, Path(".")).timeout == 90
    assert resolve_settings({}, {"RECON_CALL_TIMEOUT": " 30 "}, Path(".")).timeout == 30
    assert resolve_settings({"timeout": 5}, {"RECON_CALL_TIMEOUT": "30"}, Path(".")).timeout == 5
    cloud = Cloud(resolve_settings({"endpoint": "http://127.0.0.1:1", "timeout": 5}, KEYS, Path(".")), KEYS)
    config = cloud.client("ec2").meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 5)
    assert cloud.deadline.budget == 15

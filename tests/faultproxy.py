"""A loopback proxy between recon and the sandbox that misbehaves on purpose.

A share of requests gets a fault instead of (or after) the real answer: a throttling
error in the service's own dialect, a 500 or 503, a connection reset before the request
reached the cloud, a reset after the cloud acted (the reply is lost — the case that tests
idempotency), or a delay. ``latency`` adds a fixed delay to every request (benchmarks);
``drop_headers`` removes request headers (a store that ignores ``If-None-Match``) and signs the
request again without them, with ``credentials``: the sandbox checks signatures, and a store that
ignores a header still checks the signature of the request as it was sent.
Requests go on with their own Host header, so that their signatures still hold.
``echo`` answers chosen calls (``{"compute.CreateSecurityGroup"}``) with an error whose message
is the request's parameters, as a cloud that echoes the request in its errors does.
``slow`` delays chosen calls (``{"Properties.ModifyPropertyValue": 3.0}``; S3 calls by HTTP
method, ``objectstorage.PUT``) so that a test can act while one is under way; ``gates`` hold a
chosen call (same keys, or a request: ``"PUT /services/objectstorage/bucket/key"``) until the
test sets its event. Lost replies (a reset after the cloud acted): ``reset_after_once`` names
requests whose reply is lost once; ``lose_each_once`` loses the first reply of every mutating
request (not a Describe/List/Get/Head, nor an S3 GET/HEAD): a retry, the same request signed again,
is answered. ``lost`` lists the calls whose reply was lost.
Every decision comes from a seeded random generator, so a run can be repeated.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from reconciler.crashpoints import is_mutating

#: Query parameters a request signed again carries anew (SigV2): not part of what the request asks.
SIGNING_PARAMS = {"Signature", "SignatureMethod", "SignatureVersion", "Timestamp", "Expires", "AWSAccessKeyId",
                  "SecurityToken"}

FAULTS = ("throttle", "500", "503", "reset-before", "reset-after", "delay")

THROTTLE = {
    "compute": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "LoadBalancing": (400, "Throttling", "Rate exceeded"),
    "Properties": (400, "Throttling", "Rate exceeded"),
    "Empyrean": (400, "Throttling", "Rate exceeded"),
    "objectstorage": (503, "SlowDown", "Please reduce your request rate."),
}


def s3_operation(method: str, path: str) -> str:
    """The S3 operation a path-style request to ``/services/objectstorage/…`` is (the ones recon makes)."""
    split = urlsplit(path)
    names = [p for p in split.path.split("/")[3:] if p]
    query = parse_qs(split.query, keep_blank_values=True)
    if not names:
        return {"GET": "ListBuckets"}.get(method, method)
    if len(names) == 1:
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket",
                "GET": "ListObjectsV2" if "list-type" in query else "ListObjects"}.get(method, method)
    return {"PUT": "PutObject", "GET": "GetObject", "DELETE": "DeleteObject", "HEAD": "HeadObject"}.get(method, method)


def error_body(service: str, code: str, message: str) -> bytes:
    if service == "compute":
        return (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>fault</RequestID></Response>").encode()
    if service == "objectstorage":
        return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>fault</RequestId></ErrorResponse>").encode()


def request_identity(method: str, path: str, body: bytes, form: dict | None) -> tuple:
    """What a request asks, whoever signs it when: its method, path, and its form's parameters (a query
    service) or its bytes (S3)."""
    if form is None:
        return method, path, hashlib.sha256(body).hexdigest()
    return method, path, sorted((k, v) for k, v in form.items() if k not in SIGNING_PARAMS)


def changes_the_cloud(call: str, method: str) -> bool:
    """Whether a request changes the cloud: not a Describe/List/Get/Head, nor an S3 GET or HEAD."""
    return method not in ("GET", "HEAD") and is_mutating(call.split(".", 1)[1])


class FaultProxy:
    def __init__(self, upstream: str, *, share: float = 0.0, faults=FAULTS, seed: int = 1,
                 latency: float = 0.0, delay: float = 0.3, slow: dict[str, float] | None = None,
                 drop_headers: tuple[str, ...] = (), credentials: tuple[str, str] | None = None,
                 lose_each_once: bool = False,
                 echo: frozenset[str] | set[str] = frozenset()):
        if drop_headers and credentials is None:
            raise ValueError("dropping request headers needs the credentials to sign the request again")
        self.target = urlsplit(upstream)
        self.share = share
        self.faults = tuple(faults)
        self.random = random.Random(seed)
        self.latency = latency
        self.delay = delay
        self.slow = dict(slow or {})
        self.echo = set(echo)
        self.drop_headers = {h.lower() for h in drop_headers}
        self.credentials = credentials
        self.gates: dict[str, threading.Event] = {}
        self.reset_after_once: set[str] = set()
        self.lose_each_once = lose_each_once
        self._seen: list[tuple] = []
        #: Calls (``service.Operation``) as they arrive, the mutating ones in order, and those whose reply was lost.
        self.operations: Counter = Counter()
        self.mutations: list[str] = []
        self.lost: list[str] = []
        self.injected: Counter = Counter()
        self.requests: Counter = Counter()
        #: Calls the cloud answered (``requests`` counts them as they arrive).
        self.answered: Counter = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes: with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms a reply), which would swamp a fixed ``latency``.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_any(self):
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self, sandbox_env: dict[str, str]) -> dict[str, str]:
        """The sandbox's eucarc variables, pointed at this proxy."""
        up = f"{self.target.scheme}://{self.target.netloc}"
        return {k: (v.replace(up, self.url) if isinstance(v, str) else v) for k, v in sandbox_env.items()}

    def _choose(self, call: str, method: str, identity: tuple) -> str | None:
        with self._lock:
            if changes_the_cloud(call, method):
                self.mutations.append(call)
                first = identity not in self._seen
                self._seen.append(identity)
                if self.lose_each_once and first:
                    self.lost.append(call)
                    return "reset-after"
            if self.share and self.random.random() < self.share:
                return self.random.choice(self.faults)
        return None

    def most_sends(self) -> int:
        """The most times one mutating request was sent (a lost one retried once: 2)."""
        return max((self._seen.count(identity) for identity in self._seen), default=0)

    @staticmethod
    def _reset(handler) -> None:
        # RST instead of FIN: the client sees "connection reset by peer"
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()

    def handle(self, handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        parts = handler.path.split("/")
        service = parts[2] if len(parts) > 2 and parts[1] == "services" else "?"
        form = None if service == "objectstorage" else parse_qs(body.decode("latin-1"), keep_blank_values=True)
        action = ((form or {}).get("Action") or parse_qs(urlsplit(handler.path).query).get("Action")
                  or [handler.command])[0]
        operation = f"{service}.{s3_operation(handler.command, handler.path) if service == 'objectstorage' else action}"
        request = f"{handler.command} {urlsplit(handler.path).path}"
        fault = self._choose(operation, handler.command, request_identity(handler.command, handler.path, body, form))
        with self._lock:
            if request in self.reset_after_once:
                self.reset_after_once.discard(request)
                fault = "reset-after"
            self.requests[f"{service}.{action}"] += 1
            self.operations[operation] += 1
            if fault:
                self.injected[fault] += 1
        if self.latency or self.slow:
            time.sleep(self.latency + self.slow.get(f"{service}.{action}", 0.0))
        gate = self.gates.get(f"{service}.{action}") or self.gates.get(request)
        if gate is not None:
            gate.wait(300)
        if fault == "delay":
            time.sleep(self.delay)
        elif fault == "reset-before":
            return self._reset(handler)
        if f"{service}.{action}" in self.echo:
            fault = "echo"
        if fault in ("throttle", "500", "503", "echo"):
            status, code, message = {"500": (500, "InternalError", "We encountered an internal error."),
                                     "503": (503, "ServiceUnavailable", "Service is unavailable."),
                                     "echo": (400, "InvalidParameterValue", unquote_plus(body.decode("latin-1")))}.get(
                fault, THROTTLE.get(service, (503, "Throttling", "Rate exceeded")))
            data = error_body(service, code, escape(message))
            handler.send_response(status)
            handler.send_header("Content-Type", "text/xml")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
        if any(k.lower() in self.drop_headers for k in headers):
            headers = self._resign(handler.command, handler.path, headers, body)
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=60)
        try:
            conn.request(handler.command, handler.path, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
        finally:
            conn.close()
        with self._lock:
            self.answered[f"{service}.{action}"] += 1
        if fault == "reset-after":
            return self._reset(handler)
        handler.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _resign(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """``headers`` without the dropped ones, SigV4-signed again for the same scope."""
        kept = {k: v for k, v in headers.items() if k.lower() not in self.drop_headers}
        lookup = {k.lower(): v for k, v in kept.items()}
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/", lookup.get("authorization", ""))
        if scope is None:  # not SigV4: left as it is, for the cloud to refuse
            return kept
        region, service = scope.groups()
        kept = {k: v for k, v in kept.items() if k.lower() not in ("authorization", "x-amz-date")}
        request = AWSRequest(method=method, url=f"http://{lookup.get('host')}{path}", data=body, headers=kept)
        signer = S3SigV4Auth if service == "s3" else SigV4Auth
        signer(Credentials(*self.credentials), service, region).add_auth(request)
        return dict(request.headers.items())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

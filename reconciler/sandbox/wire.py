"""Small helpers for the AWS query protocol as the sandbox speaks it over WSGI.

A query request carries its parameters in the URL query string, in a form-encoded body, or
both. ``QueryRequest`` reads both once, lets a layer rewrite them, and puts them back into
the WSGI environ for the next application (moto) to read.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response
from werkzeug.wsgi import get_input_stream

StartResponse = Callable[..., object]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]

_SIGV4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGV2_HEADER = re.compile(r"^AWS\s+([^:\s]+):")


def request_id() -> str:
    return str(uuid.uuid4())


#: What XML 1.0 cannot carry, even escaped: control characters but tab, newline and CR; U+FFFE,
#: U+FFFF; lone surrogates.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(value: object) -> str:
    """``value`` as XML character data; what XML cannot carry becomes U+FFFD, so a reply always parses."""
    return escape(XML_ILLEGAL.sub("\ufffd", "" if value is None else str(value)))


def read_body(environ: dict) -> bytes:
    """Read the whole request body and put an equivalent, re-readable one back in ``environ``."""
    body = get_input_stream(environ, safe_fallback=True).read()
    set_body(environ, body)
    return body


def set_body(environ: dict, body: bytes) -> None:
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = False


def is_form(environ: dict) -> bool:
    return environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


@dataclass
class QueryRequest:
    """The parameters of one query-protocol request, in order, from query string and form body."""

    environ: dict
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_environ(cls, environ: dict) -> "QueryRequest":
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        form: list[tuple[str, str]] = []
        if environ.get("REQUEST_METHOD", "GET").upper() in ("POST", "PUT") and is_form(environ):
            body = read_body(environ)
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return cls(environ, query, form)

    # -- reading -----------------------------------------------------------------------
    def items(self) -> list[tuple[str, str]]:
        return [*self.query, *self.form]

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in reversed(self.items()):
            if key == name:
                return value
        return default

    def members(self, prefix: str) -> list[str]:
        """Values of ``prefix.1``, ``prefix.2``, ... in index order (gaps allowed)."""
        pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
        found = []
        for key, value in self.items():
            match = pattern.match(key)
            if match:
                found.append((int(match.group(1)), value))
        return [value for _, value in sorted(found)]

    @property
    def action(self) -> str:
        return self.get("Action") or ""

    @property
    def version(self) -> str:
        return self.get("Version") or ""

    @property
    def access_key(self) -> str | None:
        return access_key_id(self.environ, self)

    # -- rewriting ---------------------------------------------------------------------
    def map(self, fn: Callable[[str, str], str]) -> None:
        """Replace every value by ``fn(key, value)``."""
        self.query = [(k, fn(k, v)) for k, v in self.query]
        self.form = [(k, fn(k, v)) for k, v in self.form]

    def add(self, key: str, value: str) -> None:
        (self.form if self.form or not self.query else self.query).append((key, value))

    def remove(self, key: str) -> None:
        self.query = [(k, v) for k, v in self.query if k != key]
        self.form = [(k, v) for k, v in self.form if k != key]

    def apply(self) -> dict:
        """Write the (possibly rewritten) parameters back into the environ; returns it."""
        self.environ["QUERY_STRING"] = urlencode(self.query)
        if self.form or is_form(self.environ):
            set_body(self.environ, urlencode(self.form).encode())
        return self.environ


def access_key_id(environ: dict, params: QueryRequest | None = None) -> str | None:
    """The access key id a request claims: SigV4 or SigV2 header, or SigV2/presigned parameters."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("AWS4-"):
        match = _SIGV4_CREDENTIAL.search(auth)
        if match:
            return match.group(1)
    match = _SIGV2_HEADER.match(auth)
    if match:
        return match.group(1)
    if params is None:
        params = QueryRequest(environ, parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    key = params.get("AWSAccessKeyId")
    if key:
        return key
    credential = params.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0]
    return None


def xml_response(body: str, status: int = 200) -> Response:
    return Response(body.encode("utf-8"), status=status, content_type="text/xml;charset=UTF-8")


def query_error(code: str, message: str, status: int = 400, *, kind: str = "Sender") -> Response:
    """The generic AWS query error document (properties service, Eucalyptus' own services)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Type>{kind}</Type><Code>{xml_text(code)}</Code>"
        f"<Message>{xml_text(message)}</Message></Error></Errors>"
        f"<RequestId>{request_id()}</RequestId></Response>"
    )
    return xml_response(body, status)


def ec2_error(code: str, message: str, status: int = 400) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{xml_text(code)}</Code>"
        f"<Message>{xml_text(message)}</Message></Error></Errors>"
        f"<RequestID>{request_id()}</RequestID></Response>"
    )
    return xml_response(body, status)


def elb_error(code: str, message: str, status: int = 400, *, role: str = "Sender") -> Response:
    """An ELB-style error; ``role`` is the fault's side, ``Sender`` (the client's) or ``Receiver``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/">'
        f"<Error><Type>{role}</Type><Code>{xml_text(code)}</Code>"
        f"<Message>{xml_text(message)}</Message></Error>"
        f"<RequestId>{request_id()}</RequestId></ErrorResponse>"
    )
    return xml_response(body, status)


@dataclass
class Captured:
    """A WSGI application's full answer, held so that it can be rewritten."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def is_text(self) -> bool:
        kind = (self.header("Content-Type") or "").lower()
        return not kind or "xml" in kind or "text" in kind or "json" in kind

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def set_text(self, text: str) -> None:
        self.body = text.encode("utf-8")

    def send(self, start_response: StartResponse) -> list[bytes]:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(self.body))))
        start_response(self.status, headers)
        return [self.body]


def capture(app: WSGIApp, environ: dict) -> Captured:
    """Call ``app`` and collect its whole response."""
    state: dict = {}
    chunks: list[bytes] = []

    def start_response(status, headers, exc_info=None):
        state["status"], state["headers"] = status, list(headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return Captured(state.get("status", "500 INTERNAL SERVER ERROR"), state.get("headers", []), b"".join(chunks))

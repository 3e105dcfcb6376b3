"""Authentication in the sandbox: every request is checked against the key pair the sandbox
issued before any service sees it, as a Eucalyptus front end checks its users' keys (DESIGN §11).

``Authenticator`` is a WSGI middleware in front of the dispatcher. It accepts

* SigV4, in an ``Authorization: AWS4-HMAC-SHA256 ...`` header or as a presigned query
  (``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``,
  ``X-Amz-SignedHeaders``, ``X-Amz-Signature``), for every service;
* SigV2 for the query APIs (``SignatureVersion=2``, HmacSHA256 or HmacSHA1), as the 4.0 tools sign;
* S3's own signature (``Authorization: AWS KEY:SIG``) and its presigned form
  (``AWSAccessKeyId``, ``Expires``, ``Signature``), as euca2ools' bundle upload and presigned
  GET URLs use them.

Everything is computed from the request exactly as it arrived: the path as sent (with its
``/services/NAME`` prefix, which the dispatcher strips later), the query string and the body.
The region in a SigV4 credential scope may be any (Eucalyptus has one region), but the signature
must be made for the scope the request names. A refusal is answered in the service's own error
format with the status and code AWS gives for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Sequence
from urllib.parse import quote, unquote_plus

from werkzeug.wrappers import Response

from .services import s3_error
from .wire import WSGIApp, ec2_error, elb_error, is_form, query_error, read_body

#: How far a request's date may be from the sandbox's clock, as on AWS.
MAX_SKEW = 15 * 60

# Why a request is refused; each service words each reason its own way (``Dialect``).
UNSIGNED = "unsigned"
UNKNOWN_KEY = "unknown-key"
BAD_SIGNATURE = "bad-signature"
BAD_PAYLOAD = "bad-payload"
MALFORMED = "malformed"
SKEWED = "skewed"
EXPIRED = "expired"

_SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_SIGV4_TIME = "%Y%m%dT%H%M%SZ"
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_S3_LITERAL_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-")
_S3_V2_HEADER = re.compile(r"^AWS\s+([^:\s]+):(\S+)$")

# S3 subresources that are part of a SigV2 string to sign (AWS's list).
_S3_SUBRESOURCES = frozenset({
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber",
    "policy", "requestPayment", "restore", "tagging", "torrent", "uploadId", "uploads", "versionId",
    "versioning", "versions", "website", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type",
    "response-expires",
})


class Refused(Exception):
    """A request that does not authenticate; ``reason`` is one of the module's reason constants."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


# ------------------------------------------------------------------------------------------
# how each service says no


@dataclass(frozen=True)
class Dialect:
    """How one service refuses: ``reason -> (status, code, message)`` and its error document.

    A message of ``None`` means "the refusal's own detail".
    """

    s3: bool
    refusals: dict[str, tuple[int, str, str | None]]
    document: Callable[[str, str, int], Response]

    def refuse(self, refused: Refused) -> Response:
        status, code, message = self.refusals[refused.reason]
        return self.document(code, message if message is not None else refused.detail, status)


_EC2_CREDENTIALS = "AWS was not able to validate the provided access credentials"
_QUERY_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                    "Check your AWS Secret Access Key and signing method. Consult the service "
                    "documentation for details.")
_QUERY_REFUSALS: dict[str, tuple[int, str, str | None]] = {
    UNSIGNED: (403, "MissingAuthenticationToken", "Request is missing Authentication Token"),
    UNKNOWN_KEY: (403, "InvalidClientTokenId", "The security token included in the request is invalid."),
    BAD_SIGNATURE: (403, "SignatureDoesNotMatch", _QUERY_SIGNATURE),
    BAD_PAYLOAD: (403, "SignatureDoesNotMatch", _QUERY_SIGNATURE),
    MALFORMED: (400, "IncompleteSignature", None),
    SKEWED: (400, "RequestExpired", "Request has expired."),
    EXPIRED: (400, "RequestExpired", "Request has expired."),
}

EC2 = Dialect(False, {
    UNSIGNED: (401, "AuthFailure", _EC2_CREDENTIALS),
    UNKNOWN_KEY: (401, "AuthFailure", _EC2_CREDENTIALS),
    BAD_SIGNATURE: (401, "AuthFailure", _EC2_CREDENTIALS),
    BAD_PAYLOAD: (401, "AuthFailure", _EC2_CREDENTIALS),
    MALFORMED: (400, "IncompleteSignature", None),
    SKEWED: (400, "RequestExpired", "Request has expired."),
    EXPIRED: (400, "RequestExpired", "Request has expired."),
}, ec2_error)
ELB = Dialect(False, _QUERY_REFUSALS, elb_error)
PROPERTIES = Dialect(False, _QUERY_REFUSALS, query_error)
S3 = Dialect(True, {
    UNSIGNED: (403, "AccessDenied", "Access Denied"),
    UNKNOWN_KEY: (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
    BAD_SIGNATURE: (403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                  "signature you provided. Check your key and signing method."),
    BAD_PAYLOAD: (400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not "
                                                    "match what was computed."),
    MALFORMED: (403, "AccessDenied", None),
    SKEWED: (403, "RequestTimeTooSkewed", "The difference between the request time and the current time "
                                          "is too large."),
    EXPIRED: (403, "AccessDenied", "Request has expired"),
}, s3_error)


# ------------------------------------------------------------------------------------------
# the request as it arrived


def _wsgi_text(value: str) -> str:
    """A WSGI (latin-1) string as the UTF-8 text the client sent."""
    return value.encode("latin-1").decode("utf-8", "replace")


def _encode(text: str) -> str:
    """RFC 3986 percent-encoding, as every AWS signature version uses it."""
    return quote(text, safe="-_.~")


@dataclass
class _Pair:
    key: str
    value: str
    has_value: bool  # "acl" and "acl=" are different S3 subresources


def _query_pairs(raw: str) -> list[_Pair]:
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        key, eq, value = part.partition("=")
        pairs.append(_Pair(unquote_plus(key), unquote_plus(value), bool(eq)))
    return pairs


class _Request:
    """What the signature covers, read from a WSGI environ before any layer rewrites it."""

    def __init__(self, environ: dict):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw_uri:
            raw = _wsgi_text(raw_uri)
            if "://" in raw.split("?", 1)[0]:  # absolute form: keep the path only
                raw = "/" + raw.split("://", 1)[1].partition("/")[2]
            self.path = raw.split("?", 1)[0] or "/"
        else:
            self.path = quote(_wsgi_text(environ.get("PATH_INFO") or "/"), safe="/~")
        self.query = _query_pairs(_wsgi_text(environ.get("QUERY_STRING", "")))
        self.headers: dict[str, str] = {}
        for name, value in environ.items():
            if name.startswith("HTTP_"):
                self.headers[name[5:].replace("_", "-").lower()] = _wsgi_text(value)
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                self.headers[name.replace("_", "-").lower()] = environ[name]
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = read_body(self.environ)
        return self._body

    def param(self, name: str) -> str | None:
        for pair in reversed(self.query):
            if pair.key == name:
                return pair.value
        return None

    def form(self) -> list[_Pair]:
        """The form-encoded body's parameters (none unless it is a form POST)."""
        if self.method != "POST" or not is_form(self.environ):
            return []
        return _query_pairs(self.body().decode("utf-8", "replace"))


def _parse_sigv4_time(text: str | None) -> float | None:
    try:
        return _utc_seconds(datetime.strptime(text or "", _SIGV4_TIME))
    except ValueError:
        return None


def _utc_seconds(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def _parse_http_date(text: str | None) -> float | None:
    try:
        return _utc_seconds(parsedate_to_datetime(text or ""))
    except (TypeError, ValueError, IndexError):
        return None


def _parse_iso8601(text: str | None) -> float | None:
    """SigV2's Timestamp / Expires: ISO 8601, ``Z`` or an offset, fractional seconds allowed."""
    try:
        return _utc_seconds(datetime.fromisoformat((text or "").strip()))
    except ValueError:
        return None


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and empty segments dropped, as SigV4 normalizes a non-S3 path."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return "/" + "/".join(segments) + trailing


# ------------------------------------------------------------------------------------------
# the middleware


class Authenticator:
    """WSGI middleware: a request to one of ``routes`` reaches ``app`` only if it is signed with
    ``access_key`` / ``secret_key``. ``now`` is the clock (seconds since the epoch)."""

    def __init__(self, app: WSGIApp, routes: Sequence[tuple[str, Dialect]], *, access_key: str,
                 secret_key: str, now: Callable[[], float] = time.time):
        self.app = app
        self.routes = [(prefix.rstrip("/").lower(), dialect) for prefix, dialect in routes]
        self.access_key = access_key
        self.secret_key = secret_key
        self.now = now

    def __call__(self, environ: dict, start_response):
        dialect = self.dialect_for(environ.get("PATH_INFO") or "/")
        if dialect is not None:
            try:
                self.verify(_Request(environ), dialect)
            except Refused as refused:
                return dialect.refuse(refused)(environ, start_response)
        return self.app(environ, start_response)

    def dialect_for(self, path: str) -> Dialect | None:
        lowered = path.lower()
        for prefix, dialect in self.routes:
            if lowered == prefix or lowered.startswith(prefix + "/"):
                return dialect
        return None

    # -- which signature -------------------------------------------------------------------
    def verify(self, request: _Request, dialect: Dialect) -> None:
        """Return if ``request`` is signed with the sandbox's key; raise ``Refused`` if not."""
        authorization = request.headers.get("authorization", "").strip()
        if authorization.startswith("AWS4-"):
            return self.verify_sigv4_header(request, dialect, authorization)
        if authorization.startswith("AWS ") and dialect.s3:
            return self.verify_s3_v2(request, authorization)
        if authorization:
            raise Refused(MALFORMED, "Unsupported Authorization header: " + authorization.split(" ", 1)[0])
        if request.param("X-Amz-Algorithm") is not None or request.param("X-Amz-Signature") is not None:
            return self.verify_sigv4_query(request, dialect)
        if dialect.s3:
            if request.param("Signature") is not None or request.param("AWSAccessKeyId") is not None:
                return self.verify_s3_v2_query(request)
            raise Refused(UNSIGNED)
        params = [*request.query, *request.form()]
        if any(p.key in ("Signature", "AWSAccessKeyId", "SignatureVersion") for p in params):
            return self.verify_sigv2(request, params)
        raise Refused(UNSIGNED)

    def check_key(self, access_key: str) -> None:
        if not hmac.compare_digest(access_key.encode(), self.access_key.encode()):
            raise Refused(UNKNOWN_KEY)

    @staticmethod
    def check_signature(expected: Sequence[str], given: str) -> None:
        if not any(hmac.compare_digest(candidate.encode(), given.encode()) for candidate in expected):
            raise Refused(BAD_SIGNATURE)

    def check_clock(self, signed_at: float) -> None:
        if abs(self.now() - signed_at) > MAX_SKEW:
            raise Refused(SKEWED)

    # -- SigV4 -------------------------------------------------------------------------------
    def verify_sigv4_header(self, request: _Request, dialect: Dialect, authorization: str) -> None:
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != _SIGV4_ALGORITHM:
            raise Refused(MALFORMED, f"Unsupported signing algorithm {algorithm}")
        fields = {}
        for part in rest.split(","):
            name, eq, value = part.strip().partition("=")
            if eq:
                fields[name] = value
        missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
        if missing:
            raise Refused(MALFORMED, "Authorization header requires " + ", ".join(missing))
        stamp = request.headers.get("x-amz-date")
        if stamp is None and request.headers.get("date"):
            parsed = _parse_http_date(request.headers["date"])
            stamp = time.strftime(_SIGV4_TIME, time.gmtime(parsed)) if parsed is not None else ""
        self.verify_sigv4(request, dialect, credential=fields["Credential"], stamp=stamp,
                          signed_headers=fields["SignedHeaders"], signature=fields["Signature"], presigned=False)

    def verify_sigv4_query(self, request: _Request, dialect: Dialect) -> None:
        algorithm = request.param("X-Amz-Algorithm")
        if algorithm != _SIGV4_ALGORITHM:
            raise Refused(MALFORMED, f"Unsupported signing algorithm {algorithm}")
        values = {name: request.param(f"X-Amz-{name}") for name in
                  ("Credential", "Date", "Expires", "SignedHeaders", "Signature")}
        missing = [f"X-Amz-{name}" for name, value in values.items() if not value]
        if missing:
            raise Refused(MALFORMED, "Query-string authentication requires " + ", ".join(missing))
        try:
            expires = int(values["Expires"] or "")
        except ValueError:
            raise Refused(MALFORMED, "X-Amz-Expires must be a number of seconds") from None
        self.verify_sigv4(request, dialect, credential=values["Credential"] or "", stamp=values["Date"],
                          signed_headers=values["SignedHeaders"] or "", signature=values["Signature"] or "",
                          presigned=True)
        signed_at = _parse_sigv4_time(values["Date"])
        if signed_at is not None and self.now() > signed_at + expires:
            raise Refused(EXPIRED)

    def verify_sigv4(self, request: _Request, dialect: Dialect, *, credential: str, stamp: str | None,
                     signed_headers: str, signature: str, presigned: bool) -> None:
        scope = credential.split("/")
        if len(scope) < 5 or scope[-1] != "aws4_request":
            raise Refused(MALFORMED, f"Credential should be scoped correctly, not {credential!r}")
        access_key, (day, region, service, terminator) = "/".join(scope[:-4]), scope[-4:]
        self.check_key(access_key)
        signed_at = _parse_sigv4_time(stamp)
        if signed_at is None:
            raise Refused(MALFORMED, "Authorization requires an X-Amz-Date or Date in the form YYYYMMDD'T'HHMMSS'Z'")
        headers = signed_headers.split(";")
        if "host" not in headers:
            raise Refused(MALFORMED, "SignedHeaders must include host")

        path = request.path if dialect.s3 else quote(_remove_dot_segments(request.path), safe="/~")
        query = sorted((_encode(p.key), _encode(p.value)) for p in request.query
                       if not (presigned and p.key == "X-Amz-Signature"))
        canonical_headers = "".join(
            f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in headers)
        canonical = "\n".join([
            request.method, path, "&".join(f"{k}={v}" for k, v in query), canonical_headers,
            signed_headers, self.payload_hash(request, dialect, presigned),
        ])
        to_sign = "\n".join([_SIGV4_ALGORITHM, stamp or "", "/".join(scope[-4:]),
                             hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
        key = f"AWS4{self.secret_key}".encode()
        for part in (day, region, service, terminator):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        self.check_signature([hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()], signature)
        if presigned:
            if signed_at > self.now() + MAX_SKEW:
                raise Refused(SKEWED)
        else:
            self.check_clock(signed_at)

    @staticmethod
    def payload_hash(request: _Request, dialect: Dialect, presigned: bool) -> str:
        """The payload line of a SigV4 canonical request; checks a declared hash against the body."""
        declared = request.headers.get("x-amz-content-sha256")
        if dialect.s3 and declared is None and presigned:
            return "UNSIGNED-PAYLOAD"
        if dialect.s3 and declared is not None and declared.startswith(_S3_LITERAL_PAYLOADS):
            return declared
        actual = hashlib.sha256(request.body()).hexdigest()
        if declared is not None and declared != actual:
            raise Refused(BAD_PAYLOAD if _HEX_SHA256.match(declared) else MALFORMED,
                          f"x-amz-content-sha256 {declared!r} is not the SHA-256 of the body")
        return actual

    # -- SigV2 (query APIs) ---------------------------------------------------------------------
    def verify_sigv2(self, request: _Request, params: list[_Pair]) -> None:
        values = {p.key: p.value for p in params}
        missing = [name for name in ("AWSAccessKeyId", "Signature", "SignatureMethod", "SignatureVersion")
                   if not values.get(name)]
        if missing:
            raise Refused(MALFORMED, "Missing required parameter: " + ", ".join(missing))
        self.check_key(values["AWSAccessKeyId"])
        if values["SignatureVersion"] != "2":
            raise Refused(MALFORMED, f"SignatureVersion {values['SignatureVersion']} is not supported")
        digest = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}.get(values["SignatureMethod"])
        if digest is None:
            raise Refused(MALFORMED, f"SignatureMethod {values['SignatureMethod']} is not supported")
        if "Timestamp" not in values and "Expires" not in values:
            raise Refused(MALFORMED, "One of the following parameters must be specified: Timestamp OR Expires")

        query = "&".join(f"{k}={v}" for k, v in sorted(
            (_encode(p.key), _encode(p.value)) for p in params if p.key != "Signature"))
        host = request.headers.get("host", "")
        hosts = dict.fromkeys([host, re.sub(r":\d+$", "", host)])
        # Eucalyptus also accepts the path without a trailing slash, lower-cased (the AWS CLI's form).
        paths = dict.fromkeys([request.path, request.path.rstrip("/").lower() or "/"])
        expected = []
        for h in hosts:
            for path in paths:
                to_sign = f"{request.method}\n{h}\n{path}\n{query}"
                mac = hmac.new(self.secret_key.encode(), to_sign.encode("utf-8"), digest).digest()
                expected.append(base64.b64encode(mac).decode())
        self.check_signature(expected, values["Signature"])

        if "Timestamp" in values:
            signed_at = _parse_iso8601(values["Timestamp"])
            if signed_at is None:
                raise Refused(MALFORMED, f"Timestamp {values['Timestamp']!r} is not an ISO 8601 time")
            self.check_clock(signed_at)
        else:
            expires = _parse_iso8601(values["Expires"])
            if expires is None:
                raise Refused(MALFORMED, f"Expires {values['Expires']!r} is not an ISO 8601 time")
            if self.now() > expires:
                raise Refused(EXPIRED)

    # -- S3's SigV2 ------------------------------------------------------------------------------
    def verify_s3_v2(self, request: _Request, authorization: str) -> None:
        match = _S3_V2_HEADER.match(authorization)
        if not match:
            raise Refused(MALFORMED, "The Authorization header must read AWS ACCESS_KEY:SIGNATURE")
        access_key, signature = match.groups()
        self.check_key(access_key)
        amz_date = request.headers.get("x-amz-date")
        signed_at = _parse_http_date(amz_date if amz_date is not None else request.headers.get("date"))
        if signed_at is None:
            raise Refused(MALFORMED, "AWS authentication requires a valid Date or x-amz-date header")
        # With x-amz-date, the Date line is empty: x-amz-date is signed among the amz headers.
        date_line = "" if amz_date is not None else request.headers.get("date", "")
        self.check_signature(self.s3_v2_signatures(request, date_line, []), signature)
        self.check_clock(signed_at)

    def verify_s3_v2_query(self, request: _Request) -> None:
        access_key, signature, expires = (request.param(n) for n in ("AWSAccessKeyId", "Signature", "Expires"))
        if not (access_key and signature and expires):
            raise Refused(MALFORMED, "Query-string authentication requires the Signature, Expires and "
                                     "AWSAccessKeyId parameters")
        self.check_key(access_key)
        try:
            deadline = int(expires)
        except ValueError:
            raise Refused(MALFORMED, f"Expires {expires!r} is not a number of seconds since the epoch") from None
        amz_params = [p for p in request.query if p.key.lower().startswith("x-amz-")]
        self.check_signature(self.s3_v2_signatures(request, str(deadline), amz_params), signature)
        if self.now() > deadline:
            raise Refused(EXPIRED)

    def s3_v2_signatures(self, request: _Request, date_line: str, amz_params: list[_Pair]) -> list[str]:
        """The signatures a correctly signed request may carry: as Eucalyptus, the resource may
        be signed with or without the ``/services/objectstorage`` prefix."""
        amz: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.startswith("x-amz-"):
                amz.setdefault(name, []).append(value)
        for pair in amz_params:
            amz.setdefault(pair.key.lower(), []).append(pair.value)
        amz_lines = "".join(
            f"{name}:{','.join(' '.join(v.split()) for v in amz[name])}\n" for name in sorted(amz))
        subresources = sorted((p for p in request.query if p.key in _S3_SUBRESOURCES), key=lambda p: p.key)
        suffix = "&".join(f"{p.key}={p.value}" if p.has_value else p.key for p in subresources)
        resources = [request.path]
        prefix = self.s3_prefix(request.path)
        if prefix:
            resource = request.path[len(prefix):] or "/"
            resources.append(resource)
            if resource.count("/") == 1 and resource != "/":  # a bucket: botocore signs "/bucket/"
                resources.append(resource + "/")
        signatures = []
        for resource in resources:
            to_sign = "\n".join([request.method, request.headers.get("content-md5", ""),
                                 request.headers.get("content-type", ""), date_line,
                                 amz_lines + resource + ("?" + suffix if suffix else "")])
            mac = hmac.new(self.secret_key.encode(), to_sign.encode("utf-8"), hashlib.sha1).digest()
            signatures.append(base64.b64encode(mac).decode())
        return signatures

    def s3_prefix(self, path: str) -> str | None:
        lowered = path.lower()
        for prefix, dialect in self.routes:
            if dialect.s3 and (lowered == prefix or lowered.startswith(prefix + "/")):
                return path[:len(prefix)]
        return None

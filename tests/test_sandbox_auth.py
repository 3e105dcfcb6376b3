"""Authentication in the sandbox: every service refuses what a Eucalyptus cloud refuses, and recon
says at once which credentials were refused and where they came from.

Requests are signed by botocore's own signers (SigV4, SigV2, S3's SigV2), sent over HTTP to a
sandbox child process; expiry and clock skew are checked on the middleware with an injected clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from calendar import timegm
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth, SigV2Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from werkzeug.test import Client
from werkzeug.wrappers import Response

from e2e import copy_examples, recon
from faultproxy import FaultProxy
from reconciler.demo import plain_client
from e2e import start_child
from reconciler.sandbox.auth import EC2, PROPERTIES, S3, Authenticator

BUCKET = "auth-bucket"
UNKNOWN_KEY = "AKIDUNKNOWN000000000"
WRONG_SECRET = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    child = start_child(tmp_path_factory.mktemp("sandbox") / "creds", port=0)
    try:
        s3 = plain_client(child.env, "s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="signed/object", Body=b"the object")
        yield child
    finally:
        child.stop()


def keys(cloud) -> Credentials:
    return Credentials(cloud.env["EC2_ACCESS_KEY"], cloud.env["EC2_SECRET_KEY"])


# --------------------------------------------------------------------------------------------
# requests signed by hand, so that they can be tampered with


@dataclass(frozen=True)
class Service:
    """One service of the sandbox: a request to it, its signing name, and a tampering of it."""

    name: str
    path: str
    signing_name: str
    params: dict
    tamper: tuple[str, str]  # (signed text, what replaces it after signing)

    @property
    def s3(self) -> bool:
        return self.signing_name == "s3"


SERVICES = [
    Service("ec2", "/services/compute", "ec2", {"Action": "DescribeKeyPairs", "Version": "2016-11-15"},
            ("Action=DescribeKeyPairs", "Action=DescribeRegions")),
    Service("elb", "/services/LoadBalancing", "elasticloadbalancing",
            {"Action": "DescribeLoadBalancers", "Version": "2012-06-01"},
            ("Action=DescribeLoadBalancers", "Action=DescribeTags")),
    Service("properties", "/services/Properties", "properties",
            {"Action": "DescribeProperties", "Version": "eucalyptus"},
            ("Action=DescribeProperties", "Action=ModifyPropertyValue")),
    Service("empyrean", "/services/Empyrean", "properties",
            {"Action": "DescribeProperties", "Version": "eucalyptus"},
            ("Action=DescribeProperties", "Action=ModifyPropertyValue")),
    # (S3's SigV2 signs the path and subresources, not other query parameters such as prefix)
    Service("s3", f"/services/objectstorage/{BUCKET}", "s3", {"prefix": "signed"},
            (f"/{BUCKET}?", "/forged-bucket?")),
]
SIGNATURES = {False: ("v4", "v2"), True: ("s3v4", "s3")}


def build(base_url: str, service: Service, sig: str | None, creds: Credentials) -> AWSRequest:
    """``service``'s request to ``base_url``, signed with ``sig`` (``None``: unsigned)."""
    url = base_url + service.path
    if service.s3:
        request = AWSRequest(method="GET", url=url, params=dict(service.params))
    else:
        request = AWSRequest(method="POST", url=url, data=dict(service.params),
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    signer = {
        "v4": lambda: SigV4Auth(creds, service.signing_name, "eucalyptus"),
        "v2": lambda: SigV2Auth(creds),
        "s3v4": lambda: S3SigV4Auth(creds, "s3", "eucalyptus"),
        "s3": lambda: HmacV1Auth(creds),
    }
    if sig is not None:
        if service.s3:  # query parameters go into the URL before an S3 signer sees the request
            request = AWSRequest(method="GET", url=request.prepare().url)
        signer[sig]().add_auth(request)
    return request


def send(request: AWSRequest, tamper: tuple[str, str] | None = None) -> tuple[int, bytes]:
    prepared = request.prepare()
    url, body = prepared.url, prepared.body
    body = body.encode() if isinstance(body, str) else body
    if tamper is not None:
        old, new = tamper
        assert (old in url) != (old in (body or b"").decode()), "the tampered text must be in the request once"
        url, body = url.replace(old, new), body.replace(old.encode(), new.encode()) if body else body
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}  # urllib counts
    return send_raw(urllib.request.Request(url, data=body, headers=headers, method=request.method))


def error_of(service: Service, body: bytes) -> str:
    """The error code, read from the document the way botocore reads that service's errors."""
    root = ET.fromstring(body)
    if service.s3:
        assert root.tag == "Error"
        return root.findtext("Code")
    if service.name == "elb":
        ns = "{http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/}"
        assert root.tag == f"{ns}ErrorResponse"
        return root.findtext(f"{ns}Error/{ns}Code")
    assert root.tag == "Response"
    return root.findtext("Errors/Error/Code")


EXPECTED = {  # service -> case -> (status, code)
    "ec2": {"wrong secret": (401, "AuthFailure"), "unknown key": (401, "AuthFailure"),
            "unsigned": (401, "AuthFailure"), "tampered": (401, "AuthFailure")},
    "elb": {"wrong secret": (403, "SignatureDoesNotMatch"), "unknown key": (403, "InvalidClientTokenId"),
            "unsigned": (403, "MissingAuthenticationToken"), "tampered": (403, "SignatureDoesNotMatch")},
    "s3": {"wrong secret": (403, "SignatureDoesNotMatch"), "unknown key": (403, "InvalidAccessKeyId"),
           "unsigned": (403, "AccessDenied"), "tampered": (403, "SignatureDoesNotMatch")},
}
EXPECTED["properties"] = EXPECTED["empyrean"] = EXPECTED["elb"]

REFUSALS = [
    pytest.param(service, sig, case, id=f"{service.name}-{sig or 'none'}-{case.replace(' ', '-')}")
    for service in SERVICES
    for case in ("wrong secret", "unknown key", "unsigned", "tampered")
    for sig in ((None,) if case == "unsigned" else SIGNATURES[service.s3])
]


@pytest.mark.parametrize("service, sig, case", REFUSALS)
def test_each_service_refuses_what_does_not_authenticate(cloud, service, sig, case):
    creds = {"wrong secret": Credentials(cloud.env["EC2_ACCESS_KEY"], WRONG_SECRET),
             "unknown key": Credentials(UNKNOWN_KEY, cloud.env["EC2_SECRET_KEY"])}.get(case, keys(cloud))
    request = build(cloud.url, service, sig, creds)
    status, body = send(request, tamper=service.tamper if case == "tampered" else None)
    assert (status, error_of(service, body)) == EXPECTED[service.name][case]
    assert cloud.env["EC2_SECRET_KEY"].encode() not in body


@pytest.mark.parametrize("service, sig", [
    pytest.param(service, sig, id=f"{service.name}-{sig}") for service in SERVICES for sig in SIGNATURES[service.s3]])
def test_correct_signatures_pass(cloud, service, sig):
    status, body = send(build(cloud.url, service, sig, keys(cloud)))
    assert status == 200, body
    if service.s3:
        assert b"<Key>signed/object</Key>" in body


def test_the_host_is_signed(cloud):
    # The same request, signed for another host:port, does not authenticate here.
    request = build(cloud.url.replace("127.0.0.1", "localhost"), SERVICES[0], "v4", keys(cloud))
    prepared = request.prepare()
    status, body = send(AWSRequest(method="POST", url=cloud.url + SERVICES[0].path, data=prepared.body,
                                   headers=dict(prepared.headers)))
    assert (status, error_of(SERVICES[0], body)) == (401, "AuthFailure")


# --------------------------------------------------------------------------------------------
# real clients: boto3 sees the codes; the S3 forms euca2ools and presigned URLs use


def boto_client(cloud, service: str, *, secret: str | None = None, signature: str | None = None,
                region: str = "eucalyptus"):
    url = {"ec2": "EC2_URL", "elb": "AWS_ELB_URL", "s3": "S3_URL"}[service]
    config = Config(retries={"total_max_attempts": 1}, signature_version=signature,
                    s3={"addressing_style": "path"})
    return boto3.client(service, endpoint_url=cloud.env[url], region_name=region,
                        aws_access_key_id=cloud.env["EC2_ACCESS_KEY"],
                        aws_secret_access_key=secret or cloud.env["EC2_SECRET_KEY"], config=config)


@pytest.mark.parametrize("service, call, code", [
    ("ec2", lambda c: c.describe_key_pairs(), "AuthFailure"),
    ("elb", lambda c: c.describe_load_balancers(), "SignatureDoesNotMatch"),
    ("s3", lambda c: c.list_objects(Bucket=BUCKET), "SignatureDoesNotMatch"),
])
def test_boto3_gets_the_refusal_as_a_client_error(cloud, service, call, code):
    with pytest.raises(ClientError) as info:
        call(boto_client(cloud, service, secret=WRONG_SECRET))
    assert info.value.response["Error"]["Code"] == code


def test_any_region_in_the_scope_is_the_one_region(cloud):
    for region in ("eucalyptus", "us-east-1", "somewhere-else"):
        assert boto_client(cloud, "ec2", region=region).describe_key_pairs()["KeyPairs"] == []


@pytest.mark.parametrize("signature", ["s3", "s3v4"])
def test_s3_uploads_with_subresources(cloud, signature):
    # euca2ools' bundle upload: parts and manifest with the canned ACL aws-exec-read; multipart too.
    s3 = boto_client(cloud, "s3", signature=signature)
    key = f"bundle-{signature}/image.part.00"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"part", ACL="aws-exec-read")
    assert s3.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=f"bundle-{signature}/big")["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key=f"bundle-{signature}/big", UploadId=upload, PartNumber=1,
                          Body=b"x" * 1024)["ETag"]
    s3.complete_multipart_upload(Bucket=BUCKET, Key=f"bundle-{signature}/big", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=BUCKET, Key=f"bundle-{signature}/big")["Body"].read() == b"x" * 1024


@pytest.mark.parametrize("signature", ["s3", "s3v4"])
def test_presigned_get_urls(cloud, signature):
    s3 = boto_client(cloud, "s3", signature=signature)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "signed/object"})
    assert send(AWSRequest(method="GET", url=url)) == (200, b"the object")
    other = url.replace("signed/object", "signed/other")
    status, body = send(AWSRequest(method="GET", url=other))
    assert (status, error_of(SERVICES[-1], body)) == (403, "SignatureDoesNotMatch")


def test_a_body_that_is_not_the_signed_one_is_refused(cloud):
    request = AWSRequest(method="PUT", url=f"{cloud.url}/services/objectstorage/{BUCKET}/swapped", data=b"signed")
    S3SigV4Auth(keys(cloud), "s3", "eucalyptus").add_auth(request)
    prepared = request.prepare()
    reply = urllib.request.Request(prepared.url, data=b"forged", headers=dict(prepared.headers), method="PUT")
    status, body = send_raw(reply)
    assert (status, error_of(SERVICES[-1], body)) == (400, "XAmzContentSHA256Mismatch")


def send_raw(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# --------------------------------------------------------------------------------------------
# the clock, injected: expiry and skew


FRONT = "http://sandbox.test:8773"
CREDS = Credentials("AKIDSANDBOX000000000", "sandbox-secret-key-0123456789abcdef0123")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def front():
    """The middleware alone in front of an application that says OK, with a clock to set."""
    clock = Clock()

    def ok(environ, start_response):
        return Response(b"OK")(environ, start_response)

    app = Authenticator(ok, [("/services/compute", EC2), ("/services/objectstorage", S3),
                             ("/services/Properties", PROPERTIES)],
                        access_key=CREDS.access_key, secret_key=CREDS.secret_key, now=clock)
    return Client(app), clock


def through(front, request: AWSRequest, at: float) -> tuple[int, str]:
    """``request`` through the middleware with the clock at ``at``: status and error code (or body)."""
    client, clock = front
    clock.now = at
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    response = client.open(url.path, query_string=url.query, base_url=f"{url.scheme}://{url.netloc}",
                           method=request.method, headers=dict(prepared.headers), data=prepared.body)
    if response.status_code == 200:
        return 200, response.get_data(as_text=True)
    root = ET.fromstring(response.data)
    return response.status_code, root.findtext("Code") or root.findtext("Errors/Error/Code")


def sigv4_time(text: str) -> float:
    return timegm(time.strptime(text, "%Y%m%dT%H%M%SZ"))


def test_presigned_s3v4_url_expires(front):
    request = AWSRequest(method="GET", url=f"{FRONT}/services/objectstorage/{BUCKET}/signed/object")
    S3SigV4QueryAuth(CREDS, "s3", "eucalyptus", expires=60).add_auth(request)
    signed_at = sigv4_time(parse_qs(urlsplit(request.url).query)["X-Amz-Date"][0])
    assert through(front, request, signed_at + 59) == (200, "OK")
    assert through(front, request, signed_at + 61) == (403, "AccessDenied")


def test_presigned_s3_v2_url_expires(front):
    request = AWSRequest(method="GET", url=f"{FRONT}/services/objectstorage/{BUCKET}/signed/object")
    HmacV1QueryAuth(CREDS, expires=60).add_auth(request)
    expires = int(parse_qs(urlsplit(request.url).query)["Expires"][0])
    assert through(front, request, expires - 1) == (200, "OK")
    assert through(front, request, expires + 1) == (403, "AccessDenied")


@pytest.mark.parametrize("path, make_signer, skewed", [
    ("/services/compute", lambda: SigV4Auth(CREDS, "ec2", "eucalyptus"), (400, "RequestExpired")),
    ("/services/objectstorage/b", lambda: S3SigV4Auth(CREDS, "s3", "eucalyptus"), (403, "RequestTimeTooSkewed")),
], ids=["ec2", "s3"])
def test_sigv4_request_time_may_be_15_minutes_off(front, path, make_signer, skewed):
    request = AWSRequest(method="GET", url=FRONT + path)
    make_signer().add_auth(request)
    signed_at = sigv4_time(request.headers["X-Amz-Date"])
    for offset in (-14 * 60, 14 * 60):
        assert through(front, request, signed_at + offset) == (200, "OK")
    for offset in (-16 * 60, 16 * 60):
        assert through(front, request, signed_at + offset) == skewed


def test_sigv2_timestamp_may_be_15_minutes_off(front):
    request = AWSRequest(method="POST", url=FRONT + "/services/Properties",
                         data={"Action": "DescribeProperties", "Version": "eucalyptus"},
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV2Auth(CREDS).add_auth(request)
    signed_at = timegm(time.strptime(request.data["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert through(front, request, signed_at + 14 * 60) == (200, "OK")
    assert through(front, request, signed_at + 16 * 60) == (400, "RequestExpired")


def test_s3_v2_header_date_may_be_15_minutes_off(front):
    request = AWSRequest(method="GET", url=f"{FRONT}/services/objectstorage/{BUCKET}/signed/object")
    HmacV1Auth(CREDS).add_auth(request)
    signed_at = parsedate_to_datetime(request.headers["Date"]).timestamp()
    assert through(front, request, signed_at + 14 * 60) == (200, "OK")
    assert through(front, request, signed_at - 16 * 60) == (403, "RequestTimeTooSkewed")


def test_sigv2_with_expires_instead_of_a_timestamp(front):
    deadline = datetime(2030, 1, 1, 12, 0, 0)
    params = {"Action": "DescribeInstances", "Version": "2016-11-15", "AWSAccessKeyId": CREDS.access_key,
              "SignatureVersion": "2", "SignatureMethod": "HmacSHA1", "Expires": deadline.isoformat() + "Z"}
    request = AWSRequest(method="GET", url=FRONT + "/services/compute", params=params)
    params["Signature"] = sha1_signature(request, params)
    assert through(front, request, timegm(deadline.timetuple()) - 1) == (200, "OK")
    assert through(front, request, timegm(deadline.timetuple()) + 1) == (400, "RequestExpired")


@pytest.mark.parametrize("path, params, headers, refused", [
    ("/services/compute", {"Action": "DescribeRegions", "AWSAccessKeyId": CREDS.access_key}, {},
     (400, "IncompleteSignature")),
    ("/services/compute", {"Action": "DescribeRegions"}, {"Authorization": "Bearer abc"}, (400, "IncompleteSignature")),
    ("/services/Properties", {"Action": "DescribeProperties"},
     {"Authorization": f"AWS4-HMAC-SHA256 Credential={CREDS.access_key}/20260101/eucalyptus/properties/aws4_request"},
     (400, "IncompleteSignature")),
    ("/services/objectstorage/b/k", {"AWSAccessKeyId": CREDS.access_key, "Signature": "abc"}, {},
     (403, "AccessDenied")),
], ids=["sigv2-without-signature", "other-scheme", "sigv4-without-signature", "s3-presigned-without-expires"])
def test_incomplete_signatures_are_refused(front, path, params, headers, refused):
    request = AWSRequest(method="GET", url=FRONT + path, params=params, headers=headers)
    assert through(front, request, time.time()) == refused


def sha1_signature(request: AWSRequest, params: dict) -> str:
    """SigV2 with HmacSHA1, as older tools sign (botocore signs HmacSHA256 only)."""
    split = urlsplit(request.url)
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(str(v), safe='-_.~')}" for k, v in sorted(params.items()))
    to_sign = f"{request.method}\n{split.netloc}\n{split.path}\n{query}"
    return base64.b64encode(hmac.new(CREDS.secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


# --------------------------------------------------------------------------------------------
# recon, given credentials the cloud refuses


@pytest.mark.parametrize("source", ["eucarc", "aws", "profile"])
def test_recon_with_a_wrong_secret_fails_at_once_naming_the_source(cloud, tmp_path: Path, source):
    eucarc_only = {k: v for k, v in cloud.env.items() if not k.startswith("AWS_")}
    no_keys = {k: v for k, v in eucarc_only.items() if k not in ("EC2_ACCESS_KEY", "EC2_SECRET_KEY")}
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[ops]\naws_access_key_id = {cloud.env['EC2_ACCESS_KEY']}\n"
                           f"aws_secret_access_key = {WRONG_SECRET}\n")
    env, named = {
        "eucarc": ({**eucarc_only, "EC2_SECRET_KEY": WRONG_SECRET}, "EC2_ACCESS_KEY / EC2_SECRET_KEY"),
        "aws": ({**cloud.env, "AWS_SECRET_ACCESS_KEY": WRONG_SECRET}, "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"),
        "profile": ({**no_keys, "AWS_PROFILE": "ops", "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
                     "AWS_CONFIG_FILE": str(tmp_path / "no-config")}, "profile 'ops' (AWS_PROFILE)"),
    }[source]
    work = copy_examples(tmp_path / "repo")
    started = time.monotonic()
    assert recon(cloud.env, "plan", "-c", "loadbalancer.toml", cwd=work).code == 0
    baseline = time.monotonic() - started  # start-up and reads on this machine, now
    proxy = FaultProxy(cloud.url)  # counts the requests: a refusal is never retried
    try:
        started = time.monotonic()
        run = recon(proxy.env(env), "plan", "-c", "loadbalancer.toml", cwd=work)
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert run.code == 1, run.both
    assert proxy.requests and set(proxy.requests.values()) == {1}, proxy.requests  # each call once
    # "Within 5 s": about 1 s on an idle machine; a loaded one slows start-up, not the refusal.
    assert elapsed < 5 + baseline
    assert "refused the credentials" in run.err and named in run.err
    assert f"access key {cloud.env['EC2_ACCESS_KEY']}" in run.err
    assert "Traceback" not in run.both
    for secret in (WRONG_SECRET, cloud.env["EC2_SECRET_KEY"]):
        assert secret not in run.both

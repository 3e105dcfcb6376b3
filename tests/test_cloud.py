"""reconciler.cloud against a tiny recording HTTP server standing in for a Eucalyptus front end.

Nothing of recon is mocked: requests go through botocore, the shipped properties model,
the retry layer and the stats hooks, over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)

from reconciler import cloud as cloud_mod
from reconciler.cloud import (
    SERVICES,
    CallStats,
    Cloud,
    CloudSettings,
    Endpoints,
    RetryPolicy,
    describe_path,
    is_transient,
    resolve_settings,
)
from reconciler.config import load as load_config
from reconciler.errors import CloudError, ConfigError

FAST = RetryPolicy(attempts=4, initial=0.001, maximum=0.005)
KEYS = {"EC2_ACCESS_KEY": "AKIDEUCA", "EC2_SECRET_KEY": "s3cr3t-euca-secret-key"}

# --------------------------------------------------------------------------- canned replies

DESCRIBE_REPLY = """<?xml version="1.0" encoding="UTF-8"?>
<euca:DescribePropertiesResponseType xmlns:euca="http://msgs.eucalyptus.com/4.0.0">
  <euca:properties>
    <euca:item>
      <euca:name>loadbalancing.loadbalancer_emi</euca:name>
      <euca:value>NULL</euca:value>
      <euca:description>EMI containing haproxy and the controller</euca:description>
    </euca:item>
    <euca:item>
      <euca:name>loadbalancing.loadbalancer_num_vm</euca:name>
      <euca:value>1</euca:value>
      <euca:description>number of VMs per load balancer zone</euca:description>
    </euca:item>
  </euca:properties>
</euca:DescribePropertiesResponseType>"""

DESCRIBE_ONE_REPLY = """<DescribePropertiesResponseType xmlns="http://msgs.eucalyptus.com/4.2.0">
  <properties><item><name>services.loadbalancing.worker.image</name><value>emi-12345678</value>
  <description>worker image</description></item></properties></DescribePropertiesResponseType>"""

MODIFY_REPLY = """<euca:ModifyPropertyValueResponseType xmlns:euca="http://msgs.eucalyptus.com/4.0.0">
  <euca:name>loadbalancing.loadbalancer_num_vm</euca:name>
  <euca:value>2</euca:value>
  <euca:oldValue>1</euca:oldValue>
</euca:ModifyPropertyValueResponseType>"""

PROPERTIES_ERROR = """<ErrorResponse xmlns="http://msgs.eucalyptus.com/4.0.0">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>0b6a4f8e-7c3e-4bd4-a1b1-000000000000</RequestId></ErrorResponse>"""

EC2_ERROR = """<?xml version="1.0"?><Response><Errors><Error><Code>{code}</Code>
<Message>{message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>"""

KEYPAIRS_REPLY = """<DescribeKeyPairsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>r-1</requestId><keySet><item><keyName>euca-elb</keyName>
<keyFingerprint>aa:bb</keyFingerprint></item></keySet></DescribeKeyPairsResponse>"""

AUTHORIZE_REPLY = """<AuthorizeSecurityGroupIngressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>r-2</requestId><return>true</return></AuthorizeSecurityGroupIngressResponse>"""


def instances_page(ids, next_token=None):
    items = "".join(
        f"<item><reservationId>r-{i}</reservationId><instancesSet><item><instanceId>{i}</instanceId>"
        f"</item></instancesSet></item>"
        for i in ids
    )
    token = f"<nextToken>{next_token}</nextToken>" if next_token else ""
    return (f'<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>r</requestId><reservationSet>{items}</reservationSet>{token}</DescribeInstancesResponse>")


ELB_REPLY = """<DescribeLoadBalancersResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/">
<DescribeLoadBalancersResult><LoadBalancerDescriptions><member><LoadBalancerName>TestLoadBalancer</LoadBalancerName>
</member></LoadBalancerDescriptions></DescribeLoadBalancersResult>
<ResponseMetadata><RequestId>r-3</RequestId></ResponseMetadata></DescribeLoadBalancersResponse>"""

S3_LIST_REPLY = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>loadbalancer-v3</Name><Prefix></Prefix>
<Marker></Marker><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>img.manifest.xml</Key><Size>10</Size></Contents></ListBucketResult>"""


# --------------------------------------------------------------------------- the fake front end


class FakeFrontEnd:
    """Records every request; answers from a queue of (status, body), else the default."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, str]] = []
        self.default: tuple[int, str] = (200, DESCRIBE_REPLY)
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and answers `Expect: 100-continue`

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    params.update(parse_qsl(body.decode(), keep_blank_values=True))
                with front._lock:
                    front.requests.append({
                        "method": self.command, "path": parts.path, "headers": dict(self.headers),
                        "params": params, "body": body,
                    })
                    status, text = front.replies.pop(0) if front.replies else front.default
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # concurrent tests must not overflow the listen backlog

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Keep the host's AWS config, proxies and instance metadata out of every test."""
    import os
    for name in list(os.environ):
        if name.startswith(("AWS_", "EC2_", "EUCA", "RECON_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def front():
    server = FakeFrontEnd()
    yield server
    server.close()


def make_cloud(front_url: str, version: str = "4.0", env=None, retry: RetryPolicy = FAST, **cloud_keys) -> Cloud:
    table = {"endpoint": front_url, "eucalyptus_version": version, **cloud_keys}
    environment = dict(KEYS if env is None else env)
    settings = resolve_settings(table, environment, Path("."))
    return Cloud(settings, environment, retry=retry)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- the properties model


def test_model_ships_as_package_data():
    from reconciler import models

    service = json.loads((models.MODELS_DIR / "properties" / "eucalyptus" / "service-2.json").read_text())
    meta = service["metadata"]
    assert (meta["apiVersion"], meta["protocol"], meta["signingName"], meta["serviceId"]) == (
        "eucalyptus", "query", "properties", "Properties")
    assert set(service["operations"]) == {"DescribeProperties", "ModifyPropertyValue"}
    assert (models.MODELS_DIR / "properties" / "eucalyptus" / "endpoint-rule-set-1.json").is_file()


@pytest.mark.parametrize("version, path", [("4.0", "/services/Empyrean"), ("4.1", "/services/Empyrean"),
                                           ("4.2", "/services/Properties"), ("5", "/services/Properties")])
def test_describe_properties_request_and_namespaced_reply(front, version, path):
    cloud = make_cloud(front.url, version)
    props = cloud.properties_describe(["loadbalancing.loadbalancer_emi", "loadbalancing."])
    (request,) = front.requests
    assert request["method"] == "POST"
    assert request["path"] == path
    p = request["params"]
    assert p["Action"] == "DescribeProperties"
    assert p["Version"] == "eucalyptus"
    assert p["Property.1"] == "loadbalancing.loadbalancer_emi"
    assert p["Property.2"] == "loadbalancing."
    assert props == [
        {"name": "loadbalancing.loadbalancer_emi", "value": "NULL",
         "description": "EMI containing haproxy and the controller"},
        {"name": "loadbalancing.loadbalancer_num_vm", "value": "1",
         "description": "number of VMs per load balancer zone"},
    ]


def test_describe_all_sends_no_property_and_single_item_parses_as_list(front):
    front.default = (200, DESCRIBE_ONE_REPLY)
    cloud = make_cloud(front.url, "4.2")
    props = cloud.properties_describe()
    assert not any(k.startswith("Property") for k in front.requests[0]["params"])
    assert props == [{"name": "services.loadbalancing.worker.image", "value": "emi-12345678",
                      "description": "worker image"}]


def test_modify_property_returns_old_value_and_goes_to_properties_path(front):
    front.default = (200, MODIFY_REPLY)
    cloud = make_cloud(front.url, "4.0")
    result = cloud.modify_property("loadbalancing.loadbalancer_num_vm", "2")
    assert result == {"name": "loadbalancing.loadbalancer_num_vm", "value": "2", "old_value": "1"}
    (request,) = front.requests
    assert request["path"] == "/services/Properties"
    p = request["params"]
    assert (p["Action"], p["Version"], p["Name"], p["Value"]) == (
        "ModifyPropertyValue", "eucalyptus", "loadbalancing.loadbalancer_num_vm", "2")
    assert "Reset" not in p


def test_modify_property_reset(front):
    front.default = (200, MODIFY_REPLY)
    cloud = make_cloud(front.url, "4.0")
    cloud.modify_property("loadbalancing.loadbalancer_num_vm", reset=True)
    p = front.requests[0]["params"]
    assert p["Reset"] == "true" and "Value" not in p
    with pytest.raises(ValueError):
        cloud.modify_property("x", "1", reset=True)
    with pytest.raises(ValueError):
        cloud.modify_property("x")


def test_explicit_properties_url_serves_describe_and_modify(front):
    cloud = make_cloud(front.url, "4.0", properties=front.url + "/custom/Properties")
    cloud.properties_describe(["a"])
    front.default = (200, MODIFY_REPLY)
    cloud.modify_property("a", "b")
    assert [r["path"] for r in front.requests] == ["/custom/Properties", "/custom/Properties"]


def test_sigv4_by_default(front):
    cloud = make_cloud(front.url, "4.2")
    cloud.properties_describe(["a"])
    request = front.requests[0]
    auth = request["headers"]["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEUCA/")
    assert "/eucalyptus/properties/aws4_request" in auth
    assert "Signature" not in request["params"] and "SignatureVersion" not in request["params"]


def test_sigv2_hmacsha256_when_selected(front):
    cloud = make_cloud(front.url, "4.0", properties_signature="v2")
    cloud.properties_describe(["loadbalancing."])
    request = front.requests[0]
    p = dict(request["params"])
    assert "Authorization" not in request["headers"]
    assert p["SignatureVersion"] == "2"
    assert p["SignatureMethod"] == "HmacSHA256"
    assert p["AWSAccessKeyId"] == "AKIDEUCA"
    assert "Timestamp" in p
    # Recompute the SigV2 signature the way the cloud checks it.
    signature = p.pop("Signature")
    canonical = "&".join(f"{quote(k, safe='')}={quote(v, safe='-_~')}" for k, v in sorted(p.items()))
    to_sign = f"POST\n{request['headers']['Host']}\n/services/Empyrean\n{canonical}"
    expected = base64.b64encode(
        hmac.new(KEYS["EC2_SECRET_KEY"].encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
    assert signature == expected


def test_sigv2_applies_to_properties_only(front):
    front.default = (200, KEYPAIRS_REPLY)
    cloud = make_cloud(front.url, "4.0", properties_signature="v2")
    cloud.call("ec2", "describe_key_pairs")
    assert front.requests[0]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256")


# --------------------------------------------------------------------------- retries and errors


def test_503_twice_then_ok_is_retried_and_counted(front):
    front.replies = [(503, "<html>busy</html>"), (503, "Service Unavailable")]
    cloud = make_cloud(front.url)
    props = cloud.properties_describe(["loadbalancing."])
    assert len(props) == 2
    assert cloud.stats.retries == 2
    assert cloud.stats.calls == 3
    assert cloud.stats.by_operation() == {"properties.DescribeProperties": 3}


def test_500_internal_error_is_retried(front):
    front.replies = [(500, PROPERTIES_ERROR.format(code="InternalError", message="oops"))]
    cloud = make_cloud(front.url)
    cloud.properties_describe()
    assert (cloud.stats.calls, cloud.stats.retries) == (2, 1)


def test_garbage_reply_is_retried_then_reported(front):
    front.default = (200, "this is not XML")
    cloud = make_cloud(front.url, retry=RetryPolicy(attempts=2, initial=0.001, maximum=0.001))
    with pytest.raises(CloudError) as info:
        cloud.properties_describe()
    assert info.value.code == "InvalidReply" and "/services/Empyrean" in info.value.message
    assert cloud.stats.calls == 2


def test_validation_error_fails_fast_with_cloud_message(front):
    front.default = (400, PROPERTIES_ERROR.format(code="InvalidParameterValue",
                                                  message="Unknown property: loadbalancing.nope"))
    cloud = make_cloud(front.url)
    with pytest.raises(CloudError) as info:
        cloud.modify_property("loadbalancing.nope", "1", where="properties.loadbalancing.nope")
    err = info.value
    assert cloud.stats.calls == 1 and cloud.stats.retries == 0
    assert err.code == "InvalidParameterValue"
    assert err.operation == "ModifyPropertyValue"
    assert err.where == "properties.loadbalancing.nope"
    assert err.message == "ModifyPropertyValue failed: InvalidParameterValue: Unknown property: loadbalancing.nope"
    assert isinstance(err.__cause__, ClientError)


def test_throttling_is_retried(front):
    front.replies = [(400, EC2_ERROR.format(code="Throttling", message="Rate exceeded")),
                     (503, EC2_ERROR.format(code="RequestLimitExceeded", message="slow down"))]
    front.default = (200, KEYPAIRS_REPLY)
    cloud = make_cloud(front.url)
    reply = cloud.call("ec2", "describe_key_pairs")
    assert reply["KeyPairs"] == [{"KeyName": "euca-elb", "KeyFingerprint": "aa:bb"}]
    assert front.requests[0]["path"] == "/services/compute"
    assert (cloud.stats.calls, cloud.stats.retries) == (3, 2)
    assert cloud.stats.by_operation() == {"ec2.DescribeKeyPairs": 3}


def test_throttling_that_never_ends_gives_up_after_the_policy(front):
    front.default = (400, EC2_ERROR.format(code="Throttling", message="Rate exceeded"))
    cloud = make_cloud(front.url, retry=RetryPolicy(attempts=3, initial=0.001, maximum=0.002))
    with pytest.raises(CloudError) as info:
        cloud.call("ec2", "describe_key_pairs", where="keypairs")
    assert info.value.code == "Throttling"
    assert "after 3 attempts" in info.value.message
    assert (cloud.stats.calls, cloud.stats.retries) == (3, 2)


def test_connection_refused_is_bounded_and_hints(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    cloud = make_cloud(url, retry=RetryPolicy(attempts=3, initial=0.001, maximum=0.002))
    with pytest.raises(CloudError) as info:
        cloud.properties_describe(["a"], where="properties")
    err = info.value
    assert f"{url}/services/Empyrean" in err.message
    assert "reachable" in err.hint and "eucarc" in err.hint
    assert err.code == "ConnectionError" and err.where == "properties"
    assert (cloud.stats.calls, cloud.stats.retries) == (3, 2)


def test_ignore_codes_returns_none(front):
    front.default = (400, EC2_ERROR.format(code="InvalidPermission.Duplicate", message="already there"))
    cloud = make_cloud(front.url)
    assert cloud.call("ec2", "authorize_security_group_ingress", ignore_codes={"InvalidPermission.Duplicate"},
                      GroupName="g", IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0") is None
    with pytest.raises(CloudError) as info:
        cloud.call("ec2", "authorize_security_group_ingress", GroupName="g", IpProtocol="tcp",
                   FromPort=22, ToPort=22, CidrIp="0.0.0.0/0")
    assert info.value.code == "InvalidPermission.Duplicate"
    assert cloud.stats.calls == 2


def test_auth_and_permission_errors_have_hints(front):
    cloud = make_cloud(front.url)
    front.default = (401, EC2_ERROR.format(code="AuthFailure", message="bad key"))
    with pytest.raises(CloudError) as info:
        cloud.call("ec2", "describe_key_pairs")
    assert "EC2_ACCESS_KEY" in info.value.hint and cloud.stats.calls == 1
    assert str(info.value).startswith(
        f"DescribeKeyPairs failed: {front.url}/services/compute refused the credentials (access key AKIDEUCA "
        "from the eucarc variables EC2_ACCESS_KEY / EC2_SECRET_KEY in the environment): AuthFailure: bad key")
    assert KEYS["EC2_SECRET_KEY"] not in str(info.value)
    front.default = (403, PROPERTIES_ERROR.format(code="AccessDenied", message="not an admin"))
    with pytest.raises(CloudError) as info:
        cloud.properties_describe()
    assert "administrator" in info.value.hint


def test_parameter_errors_and_unknown_operations():
    cloud = make_cloud("http://127.0.0.1:9")
    with pytest.raises(CloudError) as info:
        cloud.call("ec2", "describe_key_pairs", NoSuchParam=1)
    assert info.value.code == "ParamValidation" and isinstance(info.value.__cause__, ParamValidationError)
    assert cloud.stats.calls == 0
    with pytest.raises(ValueError):
        cloud.call("ec2", "no_such_operation")
    with pytest.raises(ValueError):
        cloud.client("iam")


# --------------------------------------------------------------------------- pagination and services


def test_paginate_follows_tokens_and_retries_each_page(front):
    front.replies = [(200, instances_page(["i-1", "i-2"], "t1")), (503, "busy"),
                     (200, instances_page(["i-3"], "t2")), (200, instances_page([]))]
    cloud = make_cloud(front.url)
    ids = [i["InstanceId"] for i in cloud.paginate("ec2", "describe_instances", "Reservations[].Instances[]",
                                                    Filters=[{"Name": "tag:recon:stack", "Values": ["prod"]}])]
    assert ids == ["i-1", "i-2", "i-3"]
    tokens = [r["params"].get("NextToken") for r in front.requests]
    assert tokens == [None, "t1", "t1", "t2"]
    assert all(r["params"]["Filter.1.Name"] == "tag:recon:stack" for r in front.requests)
    assert (cloud.stats.calls, cloud.stats.retries) == (4, 1)


def test_paginate_without_a_paginator_is_one_call(front):
    front.default = (200, KEYPAIRS_REPLY)
    cloud = make_cloud(front.url)
    assert cloud.paginate("ec2", "describe_key_pairs", "KeyPairs") == [
        {"KeyName": "euca-elb", "KeyFingerprint": "aa:bb"}]
    front.default = (200, DESCRIBE_REPLY)
    assert [p["name"] for p in cloud.paginate("properties", "describe_properties", "properties")] == [
        "loadbalancing.loadbalancer_emi", "loadbalancing.loadbalancer_num_vm"]
    assert cloud.stats.calls == 2


def test_elb_endpoint_and_version(front):
    front.default = (200, ELB_REPLY)
    cloud = make_cloud(front.url)
    names = [lb["LoadBalancerName"] for lb in cloud.paginate("elb", "describe_load_balancers",
                                                              "LoadBalancerDescriptions")]
    assert names == ["TestLoadBalancer"]
    request = front.requests[0]
    assert request["path"] == "/services/LoadBalancing"
    assert request["params"]["Version"] == "2012-06-01"


def test_s3_is_path_style_sigv4_without_checksum_trailers(front):
    front.default = (200, S3_LIST_REPLY)
    cloud = make_cloud(front.url)
    keys = cloud.paginate("s3", "list_objects_v2", "Contents[].Key", Bucket="loadbalancer-v3")
    assert keys == ["img.manifest.xml"]
    assert front.requests[0]["path"] == "/services/objectstorage/loadbalancer-v3"
    assert front.requests[0]["headers"]["Host"] == front.url.split("//")[1]
    front.default = (200, "")
    cloud.call("s3", "put_object", Bucket="loadbalancer-v3", Key="state.json", Body=b"{}")
    put = front.requests[-1]
    assert put["method"] == "PUT" and put["path"] == "/services/objectstorage/loadbalancer-v3/state.json"
    assert put["body"] == b"{}"
    headers = {k.lower(): v for k, v in put["headers"].items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256")
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert "x-amz-trailer" not in headers


def test_clients_are_cached_and_thread_safe(front):
    front.default = (200, KEYPAIRS_REPLY)
    cloud = make_cloud(front.url)
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: cloud.client("ec2"), range(16)))
        list(pool.map(lambda _: cloud.call("ec2", "describe_key_pairs"), range(20)))
    assert all(c is clients[0] for c in clients)
    assert cloud.stats.calls == 20
    assert cloud.stats.by_operation() == {"ec2.DescribeKeyPairs": 20}


def test_properties_needs_a_url():
    settings = resolve_settings({}, KEYS, Path("."))
    cloud = Cloud(settings, KEYS, retry=FAST)
    with pytest.raises(ConfigError, match="properties"):
        cloud.properties_describe()


# --------------------------------------------------------------------------- credentials


def test_credentials_precedence(front, tmp_path, monkeypatch):
    aws = {"AWS_ACCESS_KEY_ID": "AKIDAWS", "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
           "AWS_SESSION_TOKEN": "tok-value"}
    make_cloud(front.url, env={**KEYS, **aws}).properties_describe()
    headers = front.requests[-1]["headers"]
    assert "Credential=AKIDAWS/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "tok-value"

    make_cloud(front.url, env=KEYS).properties_describe()
    assert "Credential=AKIDEUCA/" in front.requests[-1]["headers"]["Authorization"]

    credentials = tmp_path / "credentials"
    credentials.write_text("[admin]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    # An explicit [cloud].profile wins over keys in the environment ...
    cloud = make_cloud(front.url, env={**KEYS, **aws}, profile="admin")
    cloud.properties_describe()
    assert "Credential=AKIDPROFILE/" in front.requests[-1]["headers"]["Authorization"]
    assert cloud.settings.profile == "admin"
    # ... AWS_PROFILE from the environment does not.
    make_cloud(front.url, env={**KEYS, "AWS_PROFILE": "admin"}).properties_describe()
    assert "Credential=AKIDEUCA/" in front.requests[-1]["headers"]["Authorization"]
    make_cloud(front.url, env={"AWS_PROFILE": "admin"}).properties_describe()
    assert "Credential=AKIDPROFILE/" in front.requests[-1]["headers"]["Authorization"]

    with pytest.raises(ConfigError) as info:
        make_cloud(front.url, env=KEYS, profile="nobody")
    assert info.value.where == "[cloud].profile"


def test_missing_and_partial_credentials(front):
    cloud = make_cloud(front.url, env={})
    with pytest.raises(CloudError) as info:
        cloud.properties_describe()
    assert info.value.code == "NoCredentials"
    assert "EC2_ACCESS_KEY" in info.value.hint and "AWS_ACCESS_KEY_ID" in info.value.hint
    assert front.requests == []
    with pytest.raises(ConfigError, match="EC2_SECRET_KEY"):
        make_cloud(front.url, env={"EC2_ACCESS_KEY": "AK"})
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        make_cloud(front.url, env={"AWS_SECRET_ACCESS_KEY": "x"})


def test_secrets_never_in_repr_or_errors(front):
    secret, token = KEYS["EC2_SECRET_KEY"], "session-token-secret"
    env = {**KEYS, "AWS_ACCESS_KEY_ID": "AKIDAWS", "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
           "AWS_SESSION_TOKEN": token}
    cloud = make_cloud(front.url, env=env)
    front.default = (403, PROPERTIES_ERROR.format(code="AccessDenied", message="no"))
    with pytest.raises(CloudError) as info:
        cloud.properties_describe()
    texts = [repr(cloud.settings), repr(cloud), str(cloud), repr(cloud.stats), str(info.value),
             json.dumps(cloud.stats.as_dict())]
    for text in texts:
        for value in (secret, "aws-secret-value", token):
            assert value not in text


# --------------------------------------------------------------------------- is_transient, policy, stats


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "DescribeKeyPairs")


@pytest.mark.parametrize("exc, transient", [
    (client_error("Throttling", 400), True),
    (client_error("ThrottlingException", 400), True),
    (client_error("RequestLimitExceeded", 503), True),
    (client_error("RequestThrottled", 400), True),
    (client_error("SlowDown", 503), True),
    (client_error("TooManyRequestsException", 429), True),
    (client_error("InternalError", 500), True),
    (client_error("InternalFailure", 500), True),
    (client_error("InternalFailure", 400), False),     # Eucalyptus LoadBalancing's refusal (no LB emi)
    (client_error("ServiceUnavailable", 503), True),
    (client_error("502", 502), True),
    (client_error("NotImplemented", 501), False),
    (client_error("InvalidParameterValue", 400), False),
    (client_error("AuthFailure", 401), False),
    (client_error("UnauthorizedOperation", 403), False),
    (client_error("InvalidKeyPair.NotFound", 400), False),
    (client_error("NoSuchBucket", 404), False),
    (EndpointConnectionError(endpoint_url="http://x"), True),
    (ConnectionClosedError(endpoint_url="http://x"), True),
    (ReadTimeoutError(endpoint_url="http://x"), True),
    (ConnectTimeoutError(endpoint_url="http://x"), True),
    (ConnectionResetError(), True),
    (SSLError(endpoint_url="http://x", error="bad cert"), False),
    (ValueError("x"), False),
    (CloudError("x"), False),
])
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


def test_retry_policy_from_env():
    assert RetryPolicy.from_env({}) == RetryPolicy(6, 0.5, 20.0)
    assert RetryPolicy.from_env({"RECON_RETRY_ATTEMPTS": "2", "RECON_RETRY_INITIAL": "0.01",
                                 "RECON_RETRY_MAX": "0.1"}) == RetryPolicy(2, 0.01, 0.1)
    for env in ({"RECON_RETRY_ATTEMPTS": "many"}, {"RECON_RETRY_ATTEMPTS": "0"}, {"RECON_RETRY_MAX": "-1"},
                {"RECON_RETRY_INITIAL": "nan"}):
        with pytest.raises(ConfigError) as info:
            RetryPolicy.from_env(env)
        assert next(iter(env)) in info.value.where


def test_cloud_takes_retry_policy_from_env(tmp_path):
    env = {**KEYS, "RECON_RETRY_ATTEMPTS": "2", "RECON_RETRY_INITIAL": "0.001", "RECON_RETRY_MAX": "0.001"}
    settings = resolve_settings({"endpoint": f"http://127.0.0.1:{closed_port()}"}, env, tmp_path)
    cloud = Cloud(settings, env)
    with pytest.raises(CloudError):
        cloud.call("ec2", "describe_key_pairs")
    assert cloud.stats.calls == 2


def test_call_stats_phases_and_threads():
    stats = CallStats()
    with stats.phase("read"):
        pass
    with stats.phase("read"):
        pass
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: stats.record_call(f"ec2.Op{i % 2}"), range(1000)))
    stats.record_retry()
    data = stats.as_dict()
    assert set(data) == {"calls", "retries", "phases", "operations"}
    assert data["calls"] == 1000 and data["retries"] == 1
    assert data["operations"] == {"ec2.Op0": 500, "ec2.Op1": 500}
    assert set(data["phases"]) == {"read"} and data["phases"]["read"] >= 0


# --------------------------------------------------------------------------- resolve_settings


def urls(settings: CloudSettings) -> dict:
    e = settings.endpoints
    return {"compute": e.compute, "objectstorage": e.objectstorage, "loadbalancing": e.loadbalancing,
            "properties": e.properties, "describe": e.properties_describe}


FE = "http://clc:8773"


@pytest.mark.parametrize("version, describe", [
    ("3.4", "/services/Configuration"), ("4.0", "/services/Empyrean"), ("4.1", "/services/Empyrean"),
    ("4.2", "/services/Properties"), ("4.3", "/services/Properties"), ("4.4", "/services/Properties"),
    ("5", "/services/Properties"), ("5.0", "/services/Properties"),
])
def test_endpoint_derived_urls_per_version(version, describe):
    settings = resolve_settings({"endpoint": FE + "/", "eucalyptus_version": version}, {}, Path("."))
    got = urls(settings)
    assert got["describe"] == FE + describe
    assert got["properties"] == FE + "/services/Properties"
    assert got["loadbalancing"] == FE + "/services/LoadBalancing"
    if version.startswith("3"):
        assert (got["compute"], got["objectstorage"]) == (FE + "/services/Eucalyptus", FE + "/services/Walrus")
    else:
        assert (got["compute"], got["objectstorage"]) == (FE + "/services/compute", FE + "/services/objectstorage")
    assert describe_path(version) == describe


def test_defaults():
    settings = resolve_settings({}, {}, Path("."))
    assert settings == CloudSettings(endpoints=Endpoints(), region="eucalyptus", eucalyptus_version="4.0",
                                     properties_signature="v4", ca_bundle=None, profile=None)
    assert settings.version_info == (4, 0)


def test_explicit_urls_override_endpoint():
    settings = resolve_settings({"endpoint": FE, "compute": "https://ec2.example/x",
                                 "properties": "http://props:8773/services/Properties"}, {}, Path("."))
    assert urls(settings) == {
        "compute": "https://ec2.example/x", "objectstorage": FE + "/services/objectstorage",
        "loadbalancing": FE + "/services/LoadBalancing",
        "properties": "http://props:8773/services/Properties",
        "describe": "http://props:8773/services/Properties",
    }


EUCARC = {
    "EC2_URL": "http://10.0.0.1:8773/services/compute",
    "S3_URL": "http://10.0.0.2:8773/services/objectstorage",
    "AWS_ELB_URL": "http://10.0.0.3:8773/services/LoadBalancing",
    "EUCA_PROPERTIES_URL": "http://10.0.0.4:8773/services/Properties",
    "AWS_DEFAULT_REGION": "euca-east",
}


@pytest.mark.parametrize("env, table, expected", [
    pytest.param(EUCARC, {}, {
        "compute": EUCARC["EC2_URL"], "objectstorage": EUCARC["S3_URL"], "loadbalancing": EUCARC["AWS_ELB_URL"],
        "properties": EUCARC["EUCA_PROPERTIES_URL"], "describe": EUCARC["EUCA_PROPERTIES_URL"]}, id="eucarc"),
    pytest.param({"EC2_URL": "http://10.0.0.1:8773/services/compute/"}, {"eucalyptus_version": "4.0"}, {
        "compute": "http://10.0.0.1:8773/services/compute/",
        "objectstorage": "http://10.0.0.1:8773/services/objectstorage",
        "loadbalancing": "http://10.0.0.1:8773/services/LoadBalancing",
        "properties": "http://10.0.0.1:8773/services/Properties",
        "describe": "http://10.0.0.1:8773/services/Empyrean"}, id="front-end-from-EC2_URL"),
    pytest.param({"EC2_URL": "http://10.0.0.1:8773/services/compute", "S3_URL": "http://walrus:8773/s3"},
                 {"eucalyptus_version": "4.2"}, {
        "compute": "http://10.0.0.1:8773/services/compute", "objectstorage": "http://walrus:8773/s3",
        "loadbalancing": "http://10.0.0.1:8773/services/LoadBalancing",
        "properties": "http://10.0.0.1:8773/services/Properties",
        "describe": "http://10.0.0.1:8773/services/Properties"}, id="EC2_URL-plus-S3_URL"),
    pytest.param({"EC2_URL": "https://ec2.us-east-1.amazonaws.com"}, {}, {
        "compute": "https://ec2.us-east-1.amazonaws.com", "objectstorage": None, "loadbalancing": None,
        "properties": None, "describe": None}, id="EC2_URL-not-a-front-end"),
    pytest.param(EUCARC, {"endpoint": FE}, {
        "compute": FE + "/services/compute", "objectstorage": FE + "/services/objectstorage",
        "loadbalancing": FE + "/services/LoadBalancing", "properties": FE + "/services/Properties",
        "describe": FE + "/services/Empyrean"}, id="file-endpoint-beats-env"),
    pytest.param(EUCARC, {"loadbalancing": "http://elb:8773/services/LoadBalancing"}, {
        "compute": EUCARC["EC2_URL"], "objectstorage": EUCARC["S3_URL"],
        "loadbalancing": "http://elb:8773/services/LoadBalancing",
        "properties": EUCARC["EUCA_PROPERTIES_URL"], "describe": EUCARC["EUCA_PROPERTIES_URL"]},
        id="file-key-beats-env"),
    pytest.param({"AWS_ENDPOINT_URL_EC2": "http://moto:5000"}, {}, {
        "compute": "http://moto:5000", "objectstorage": None, "loadbalancing": None,
        "properties": None, "describe": None}, id="aws-endpoint-url"),
])
def test_environment_urls(env, table, expected):
    assert urls(resolve_settings(table, env, Path("."))) == expected


def test_region_signature_profile_ca_bundle(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"AWS_DEFAULT_REGION": "env-region", "AWS_REGION": "other", "AWS_PROFILE": "envprof",
           "AWS_CA_BUNDLE": "/env/ca.pem"}
    s = resolve_settings({}, env, tmp_path)
    assert (s.region, s.profile, s.ca_bundle, s.properties_signature) == ("env-region", "envprof", "/env/ca.pem", "v4")
    assert resolve_settings({}, {"AWS_REGION": "other"}, tmp_path).region == "other"
    s = resolve_settings({"region": "file-region", "profile": "fileprof", "ca_bundle": "certs/ca.pem",
                          "properties_signature": "v2"}, env, tmp_path)
    assert (s.region, s.profile, s.properties_signature) == ("file-region", "fileprof", "v2")
    assert Path(s.ca_bundle) == tmp_path / "certs" / "ca.pem"


@pytest.mark.parametrize("table, key", [
    ({"endpoint": "ftp://clc:8773"}, "endpoint"),
    ({"endpoint": "clc:8773"}, "endpoint"),
    ({"endpoint": "http://clc:8773/services/compute"}, "endpoint"),
    ({"compute": "not a url"}, "compute"),
    ({"objectstorage": "file:///tmp/x"}, "objectstorage"),
    ({"loadbalancing": ""}, "loadbalancing"),
    ({"eucalyptus_version": "6.1"}, "eucalyptus_version"),
    ({"eucalyptus_version": "4.9"}, "eucalyptus_version"),
    ({"eucalyptus_version": "latest"}, "eucalyptus_version"),
    ({"region": "no spaces please"}, "region"),
    ({"ca_bundle": "missing.pem"}, "ca_bundle"),
])
def test_bad_values_name_the_key(table, key, tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_settings(table, {}, tmp_path)
    assert info.value.where == f"[cloud].{key}"


def cloud_table_problem(tmp_path: Path, line: str) -> str:
    """The error loading a file whose [cloud] table holds ``line`` (on line 4)."""
    path = tmp_path / "recon.toml"
    path.write_text(f'[stack]\nname = "s"\n[cloud]\n{line}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.mark.parametrize("line, expected", [
    ("properties = 8773", "cloud.properties: expected string, got integer"),
    ('properties_signature = "v3"', "cloud.properties_signature: 'v3' is not one of 'v4', 'v2'"),
    ('properties_signature = "V2"', "cloud.properties_signature: 'V2' is not one of 'v4', 'v2'"),
    ("eucalyptus_version = true", "cloud.eucalyptus_version: expected string, got boolean"),
    ("eucalyptus_version = 4.2", "cloud.eucalyptus_version: expected string, got float"),
    ("profile = 3", "cloud.profile: expected string, got integer"),
    ("timeout = 0", "cloud.timeout: 0 is below the minimum 1"),
    (f'endpiont = "{FE}"', "cloud.endpiont: unknown key 'endpiont' (did you mean 'endpoint'?)"),
])
def test_the_file_check_names_the_key_and_line(line, expected, tmp_path):
    """Keys and types of [cloud] are checked once, with the file (resolve_settings takes the result)."""
    problem = cloud_table_problem(tmp_path, line)
    assert f"recon.toml:4: {expected}" in problem, problem


def test_bad_environment_url_names_the_variable():
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, {"S3_URL": "walrus:8773"}, Path("."))
    assert "S3_URL" in info.value.where


def test_a_checked_table_resolves(tmp_path):
    path = tmp_path / "recon.toml"
    path.write_text(f'[stack]\nname = "s"\n[cloud]\nendpoint = "{FE}"\neucalyptus_version = "5"\n'
                    'properties_signature = "v2"\ntimeout = 7\n')
    settings = resolve_settings(load_config(path).cloud, {}, tmp_path)
    assert (settings.version_info, settings.properties_signature, settings.timeout) == ((5, 0), "v2", 7)
    assert settings.endpoints.compute == FE + "/services/compute"


def test_every_service_has_a_client(front):
    cloud = make_cloud(front.url)
    assert {s: cloud.client(s).meta.endpoint_url for s in SERVICES} == {
        "ec2": front.url + "/services/compute", "s3": front.url + "/services/objectstorage",
        "elb": front.url + "/services/LoadBalancing", "autoscaling": front.url + "/services/AutoScaling",
        "properties": front.url + "/services/Properties"}
    assert cloud_mod.Endpoints(compute="x").for_service("ec2") == "x"

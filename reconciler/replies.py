"""Is a successful reply the service's own protocol?

A proxy's login page, a web server on the wrong port, a captive portal: an HTTP 200 carrying
HTML. botocore reads it as an empty result (EC2, S3: "there is nothing"), or fails with a bare
``KeyError`` on the missing result element (ELB). :func:`check_reply` runs on every reply before
botocore parses it and raises :class:`NotTheProtocol` instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NotTheProtocol", "check_reply"]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
# The first element: "<?xml …?>", "<!DOCTYPE …>" and "<!-- … -->" do not match.
_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


class NotTheProtocol(Exception):
    """A 2xx reply that is not the service's protocol; the message says what it is instead."""


def check_reply(operation_model: Any, response_dict: Mapping, **_: Any) -> None:
    """botocore ``before-parse`` handler: raise :class:`NotTheProtocol` for a reply that is not one.

    A successful reply must not be an HTML page, and a query-protocol one (EC2, ELB, properties)
    must have the operation's response element at its root (``DescribeInstancesResponse``;
    Eucalyptus's properties service says ``DescribePropertiesResponseType``). A streamed object
    body is judged by its Content-Type alone: recon stores no HTML objects. Error replies are left
    to botocore, which reads HTML ones as generic errors.
    """
    status = response_dict.get("status_code") or 0
    if not 200 <= status < 300:
        return
    content_type = str((response_dict.get("headers") or {}).get("content-type") or "")
    html = content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES
    body = response_dict.get("body")
    root = None
    if isinstance(body, bytes) and not operation_model.has_streaming_output:
        if not body.strip():
            return
        match = _ROOT.search(body[:4096])
        root = match.group(1).decode("ascii") if match else None
        html = html or (root or "").lower() == "html"
    if html:
        raise NotTheProtocol(f"an HTML page (HTTP {status}, Content-Type {content_type or 'not given'})")
    protocol = operation_model.service_model.protocol
    if protocol in ("query", "ec2") and root is not None and not root.startswith(operation_model.name):
        raise NotTheProtocol(f"a <{root}> document (HTTP {status}) where <{operation_model.name}Response> "
                             "was expected")

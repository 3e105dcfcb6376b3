"""A stand-in for the cloud that plays back the replies a fixture lists, and one that records them.

Kinds reach the cloud only through four methods of ``ctx.cloud``: ``call``, ``paginate``,
``properties_describe`` and ``modify_property``. :class:`ScriptedCloud` implements exactly those:
each is one expected exchange ``{"call": "SERVICE.OPERATION", "params": {...}, "reply": ...}`` (or
``"error": {"code", "message"}`` instead of ``reply``), taken in order; a call that is not the next
expected one fails the test. ``paginate`` gets one page (the reply) and returns what its result key
selects; ``properties_describe`` and ``modify_property`` are recorded under their own names with
their own arguments (``names``; ``name``, ``value`` or ``reset``), replies as they return them. A
reply's ``Body`` (text) comes back readable, as the real client's does.
Call options (``where``, ``ignore_codes``…) are not part of the exchange, but an error whose code
is in ``ignore_codes`` returns None, as the real client does.

:class:`RecordingCloud` wraps a real cloud client and writes the same exchanges down
(``kinds/record.py`` makes fixtures with it from the sandbox).
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import threading
from typing import Any, Collection

import jmespath

from reconciler.errors import CloudError

#: Arguments of Cloud.call that say how to call, not what.
CALL_OPTIONS = ("where", "ignore_codes", "done_if_retried", "fenced", "deadline", "slim")


def plain(value: Any) -> Any:
    """``value`` as JSON holds it: bytes as text, tuples as lists, datetimes as ISO text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if hasattr(value, "read"):  # a streamed body
        return plain(value.read())
    return value


def _split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the operation's parameters, the call options)."""
    return ({k: v for k, v in params.items() if k not in CALL_OPTIONS},
            {k: v for k, v in params.items() if k in CALL_OPTIONS})


def _describe_params(names) -> dict[str, Any]:
    return {"names": [names] if isinstance(names, str) else list(names)}


def _modify_params(name: str, value: str | None, reset: bool) -> dict[str, Any]:
    return {"name": name, **({"reset": True} if reset else {"value": value})}


class ScriptedCloud:
    """The cloud of one fixture: its expected exchanges, in order."""

    def __init__(self, exchanges: list[dict[str, Any]]):
        self.expected = list(exchanges)
        self.made: list[dict[str, Any]] = []
        #: What went wrong, kept even if the code under test swallows the AssertionError.
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def _exchange(self, name: str, params: dict[str, Any], ignore_codes: Collection[str] = ()) -> Any:
        got = {"call": name, "params": plain(params)}
        with self._lock:
            index = len(self.made)
            expected = self.expected[index] if index < len(self.expected) else None
            wanted = expected and {"call": expected["call"], "params": expected.get("params", {})}
            if wanted != got:
                message = (f"unexpected cloud call #{index + 1}: {json.dumps(got, sort_keys=True)}\n"
                           f"expected: {json.dumps(wanted, sort_keys=True)}")
                self.failures.append(message)
                raise AssertionError(message)
            self.made.append(got)
        if "error" in expected:
            code = expected["error"]["code"]
            if code in ignore_codes:
                return None
            raise CloudError(f"{code}: {expected['error'].get('message', '')}", where=name, code=code,
                             operation=name.split(".", 1)[1])
        reply = expected.get("reply")
        if isinstance(reply, dict) and isinstance(reply.get("Body"), str):   # a body comes back readable
            reply = {**reply, "Body": io.BytesIO(reply["Body"].encode())}
        return reply

    def call(self, service: str, operation: str, /, **params: Any) -> dict | None:
        params, options = _split(params)
        return self._exchange(f"{service}.{operation}", params, options.get("ignore_codes", ()))

    def paginate(self, service: str, operation: str, result_key: str, /, **params: Any) -> list:
        reply = self.call(service, operation, **params)
        return (jmespath.search(result_key, reply) if reply else None) or []

    def properties_describe(self, names=(), *, where: str | None = None) -> list[dict]:
        return self._exchange("properties.properties_describe", _describe_params(names))

    def modify_property(self, name: str, value: str | None = None, *, reset: bool = False,
                        where: str | None = None) -> dict:
        return self._exchange("properties.modify_property", _modify_params(name, value, reset))

    def check_done(self) -> None:
        """Every exchange expected was made, and nothing else."""
        assert not self.failures, self.failures[0]
        left = self.expected[len(self.made):]
        assert not left, f"{len(left)} expected cloud call(s) not made, the first: {json.dumps(left[0])}"


class RecordingCloud:
    """A real cloud client, with every exchange written down as :class:`ScriptedCloud` expects it.

    ``paginate`` is recorded as one call of the operation (one page: the sandbox's are small).
    """

    def __init__(self, cloud: Any):
        self.cloud = cloud
        self.made: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _record(self, name: str, params: dict[str, Any], run, ignore_codes: Collection[str] = ()) -> Any:
        entry: dict[str, Any] = {"call": name, "params": plain(params)}
        try:
            reply = run()
        except CloudError as exc:
            entry["error"] = {"code": exc.code, "message": str(exc)}
            with self._lock:
                self.made.append(entry)
            if exc.code in ignore_codes:
                return None
            raise
        entry["reply"] = plain(reply)
        with self._lock:
            self.made.append(entry)
        return reply

    def call(self, service: str, operation: str, /, **params: Any) -> dict | None:
        own, options = _split(params)
        ignore = options.pop("ignore_codes", ())
        return self._record(f"{service}.{operation}", own,
                            lambda: self.cloud.call(service, operation, **own, **options), ignore)

    def paginate(self, service: str, operation: str, result_key: str, /, **params: Any) -> list:
        reply = self.call(service, operation, **params)
        assert not (reply or {}).get("NextToken"), "a reply of more than one page: record fewer resources"
        return (jmespath.search(result_key, reply) if reply else None) or []

    def properties_describe(self, names=(), *, where: str | None = None) -> list[dict]:
        return self._record("properties.properties_describe", _describe_params(names),
                            lambda: self.cloud.properties_describe(names, where=where))

    def modify_property(self, name: str, value: str | None = None, *, reset: bool = False,
                        where: str | None = None) -> dict:
        return self._record("properties.modify_property", _modify_params(name, value, reset),
                            lambda: self.cloud.modify_property(name, value, reset=reset, where=where))

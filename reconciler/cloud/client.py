"""The Cloud: botocore clients for one cloud, and the single place cloud calls are made.

:meth:`Cloud.call` runs each HTTP attempt within its deadline, retries what
:func:`~reconciler.cloud.retry.is_transient` calls transient, checks the fence before a call that
changes something, and turns every failure into a :class:`~reconciler.errors.CloudError`;
:meth:`Cloud.paginate` and the properties-API helpers are built on it.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Callable

import jmespath
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, DataNotFoundError, ProfileNotFound

from reconciler import __version__
from reconciler.crashpoints import is_mutating
from reconciler.deadline import Deadline, run_attempt
from reconciler.errors import CloudError, ConfigError
from reconciler.replies import NotTheProtocol, check_reply

from . import calllog
from .credentials import make_session, refused
from .failures import FailedCall, client_error, cloud_error, error_code, host_of
from .hints import AUTH_CODES
from .retry import RetryPolicy, retrying
from .settings import CloudSettings
from .slim import READERS, SlimReader, current as current_reader, slim_reply
from .stats import CallStats

log = logging.getLogger(__name__)

MAX_POOL_CONNECTIONS = 32  # above the default --parallelism, so no pool-full churn


class Cloud:
    """Sessions and clients for one cloud, and the single place cloud calls are made."""

    def __init__(
        self,
        settings: CloudSettings,
        env: Mapping[str, str],
        *,
        stats: CallStats | None = None,
        retry: RetryPolicy | None = None,
        after_call: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else CallStats()
        self.retry = retry if retry is not None else RetryPolicy.from_env(env)
        self.deadline = Deadline(settings.timeout)
        #: Called with (service, operation) after every call that succeeded: the test-only crash
        #: points (:meth:`reconciler.crashpoints.CrashPoints.after`), or nothing.
        self._after_call = after_call
        #: Called with "service.Operation" before every call that changes something (see :meth:`fenced`).
        self._fence: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._session, self.credential_source = make_session(settings, env)

    def __repr__(self) -> str:
        return f"Cloud(settings={self.settings!r}, credentials={self.credential_source!r})"

    # ---- session and clients

    def endpoint_url(self, service: str, operation: str | None = None) -> str | None:
        """The URL a call goes to (``None``: botocore's default for the region)."""
        if service == "properties" and operation == "describe_properties":
            return self.settings.endpoints.properties_describe
        return self.settings.endpoints.for_service(service)

    def client(self, service: str):
        """The botocore client for one of :data:`SERVICES`, made once (thread-safe).

        For ``properties`` this is the ModifyPropertyValue endpoint; :meth:`call` sends
        DescribeProperties to the describe endpoint by itself.
        """
        return self._client(service, self.endpoint_url(service))

    def _client_for(self, service: str, operation: str):
        return self._client(service, self.endpoint_url(service, operation))

    def _client(self, service: str, url: str | None):
        key = (service, url)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._clients[key] = self._create_client(service, url)
        return client

    def _create_client(self, service: str, url: str | None):
        if service == "properties" and url is None:
            raise ConfigError(
                "no URL for the Eucalyptus properties service",
                where="[cloud]",
                hint="set [cloud].endpoint (the front end) or [cloud].properties, or EUCA_PROPERTIES_URL",
            )
        options: dict[str, Any] = {
            "connect_timeout": self.deadline.connect,
            "read_timeout": self.deadline.read,
            "retries": {"total_max_attempts": 1, "mode": "standard"},  # tenacity is the only retry layer
            "max_pool_connections": MAX_POOL_CONNECTIONS,
            "user_agent_extra": f"recon/{__version__}",
        }
        if service == "s3":
            options["s3"] = {"addressing_style": "path"}
            options["signature_version"] = "s3v4"
            # Newer botocore adds CRC trailers / aws-chunked bodies by default, which
            # Eucalyptus object storage (and older S3 clones) do not understand.
            for name in ("request_checksum_calculation", "response_checksum_validation"):
                if name in Config.OPTION_DEFAULTS:
                    options[name] = "when_required"
        elif service == "properties":
            options["signature_version"] = "v2" if self.settings.properties_signature == "v2" else "v4"
        kwargs: dict[str, Any] = {"region_name": self.settings.region, "config": Config(**options)}
        if url is not None:
            kwargs["endpoint_url"] = url
        if self.settings.ca_bundle:
            kwargs["verify"] = self.settings.ca_bundle
        try:
            client = self._session.create_client(service, **kwargs)
        except ProfileNotFound as exc:
            raise ConfigError(str(exc), where="[cloud].profile") from exc
        except BotoCoreError as exc:
            raise CloudError(f"cannot make a {service} client: {exc}", where="[cloud]") from exc
        client.meta.events.register("before-send", self._counter(service))
        client.meta.events.register("before-parse", check_reply)
        client.meta.events.register("before-parse", slim_reply)  # after check_reply
        return client

    def _counter(self, service: str) -> Callable[..., None]:
        stats = self.stats

        def count(event_name: str = "", **_: Any) -> None:
            # event_name is "before-send.<service-id>.<OperationName>"; one per HTTP attempt.
            stats.record_call(f"{service}.{event_name.rsplit('.', 1)[-1]}")

        return count

    # ---- calls

    @contextmanager
    def fenced(self, check: Callable[[str], None]) -> Iterator[None]:
        """While in this block, ``check("service.Operation")`` runs before every call that changes
        something, and may raise to stop it: an apply checks there that it still holds the state
        lock. Calls made with ``fenced=False`` (the state backend's own) are not checked."""
        self._fence = check
        try:
            yield
        finally:
            self._fence = None

    def call(
        self,
        service: str,
        operation: str,
        /,
        *,
        where: str | None = None,
        ignore_codes: Collection[str] = (),
        done_if_retried: Collection[str] = (),
        fenced: bool = True,
        deadline: Deadline | None = None,
        slim: bool = False,
        **params: Any,
    ) -> dict | None:
        """Call ``operation`` (botocore method name, ``"describe_key_pairs"``) with ``params``.

        Transient failures are retried per :attr:`retry`, within :attr:`deadline`: an attempt
        without a complete reply by its deadline is one of them. An error whose code is in
        ``ignore_codes`` returns ``None``, and so does one in ``done_if_retried`` on a
        retried attempt: an earlier attempt took effect but its reply was lost (a create
        then says "already exists"). Anything else raises :class:`CloudError`.
        A streamed reply body (``get_object``'s ``Body``) is read within the attempt.
        ``deadline`` replaces the cloud's own bounds for this call (a lease renewal is given less);
        ``fenced=False`` skips the check :meth:`fenced` installs. ``slim=True`` reads a success reply
        with the operation's :class:`~reconciler.cloud.slim.SlimReader`: only the fields it names.
        """
        client, method, api_name = self._operation(service, operation)
        url = client.meta.endpoint_url
        reader = self._reader(service, api_name) if slim else None
        attempts = _Attempts(lambda: _send(method, params, reader), service, api_name, url, deadline or self.deadline,
                             self._fence_for(api_name) if fenced else None)
        try:
            reply = retrying(self.retry, self.stats, attempts.name, attempts.deadline)(attempts)
            if self._after_call is not None:
                self._after_call(service, api_name)
            return reply
        except ClientError as exc:
            code = error_code(exc)
            if code in ignore_codes or (attempts.count > 1 and code in done_if_retried):
                log.debug("%s.%s: %s ignored (attempt %d)", service, api_name, code, attempts.count)
                return None
            raise client_error(exc, attempts.failed(where), self._refused_by(code, url)) from exc
        except Exception as exc:
            error = cloud_error(exc, attempts.failed(where))
            if error is None:
                raise
            raise error from exc

    def _operation(self, service: str, operation: str) -> tuple[Any, Callable[..., dict], str]:
        """The client that ``operation`` is sent with, its bound method and the API's name for it."""
        client = self._client_for(service, operation)
        method = getattr(client, operation, None)
        if method is None or operation not in client.meta.method_to_api_mapping:
            raise ValueError(f"{service} has no operation {operation!r} in recon's clients: they are made with the "
                             "operations of reconciler.cloud.trimmed.OPERATIONS")
        return client, method, client.meta.method_to_api_mapping[operation]

    @staticmethod
    def _reader(service: str, api_name: str) -> SlimReader:
        reader = READERS.get((service, api_name))
        if reader is None:
            raise ValueError(f"{service}.{api_name} has no slim reader")
        return reader

    def _fence_for(self, api_name: str) -> Callable[[str], None] | None:
        """The fence's check, for a call that changes something while :meth:`fenced` holds one."""
        return self._fence if is_mutating(api_name) else None

    def _refused_by(self, code: str, url: str) -> str:
        """For an error code that refuses the caller, whose credentials were refused (else "")."""
        if code not in AUTH_CODES:
            return ""
        return refused(self._session, self.credential_source, url) + ": "

    def paginate(self, service: str, operation: str, result_key: str, /, *, where: str | None = None,
                 slim: bool = False, **params: Any) -> list:
        """All of ``result_key`` over every page of ``operation``.

        Follows botocore's pagination model when the operation has one (else makes one call);
        each page's request is retried on its own. ``result_key`` is a JMESPath expression,
        usually a top-level key (``"KeyPairs"``); ``"Reservations[].Instances[]"`` works too.
        ``slim`` is :meth:`call`'s, for every page.
        """
        client, _, api_name = self._operation(service, operation)
        expression = jmespath.compile(result_key)
        config = self._pagination_config(client, api_name)
        if config is None:
            return _items(expression, self.call(service, operation, where=where, slim=slim, **params))

        input_tokens = _as_list(config["input_token"])
        output_tokens = [jmespath.compile(t) for t in _as_list(config["output_token"])]
        more_results = jmespath.compile(config["more_results"]) if config.get("more_results") else None
        request = dict(params)
        items: list = []
        seen: set[str] = set()
        while True:
            page = self.call(service, operation, where=where, slim=slim, **request)
            items.extend(_items(expression, page))
            if more_results is not None and not more_results.search(page):
                break
            tokens = [t.search(page) for t in output_tokens]
            if all(token in (None, "") for token in tokens):
                break
            marker = repr(tokens)
            if marker in seen:
                raise CloudError(f"{api_name} failed: the cloud returned the same page token twice",
                                 where=where, code="PaginationLoop", operation=api_name)
            seen.add(marker)
            for name, token in zip(input_tokens, tokens):
                if token in (None, ""):
                    request.pop(name, None)
                else:
                    request[name] = token
        return items

    def _pagination_config(self, client, api_name: str) -> dict | None:
        model = client.meta.service_model
        loader = self._session.get_component("data_loader")
        try:
            data = loader.load_service_model(model.service_name, "paginators-1", model.api_version)
        except DataNotFoundError:
            return None
        return data.get("pagination", {}).get(api_name)

    # ---- the properties service

    def properties_describe(self, names: Sequence[str] = (), *, where: str | None = None) -> list[dict]:
        """``[{"name", "value", "description"}]`` for the given names or prefixes (all when none)."""
        if isinstance(names, str):
            names = [names]
        params: dict[str, Any] = {"Properties": list(names)} if names else {}
        reply = self.call("properties", "describe_properties", where=where, **params) or {}
        return [
            {"name": item.get("name"), "value": item.get("value"), "description": item.get("description")}
            for item in reply.get("properties") or []
            if item is not None
        ]

    def modify_property(self, name: str, value: str | None = None, *, reset: bool = False,
                        where: str | None = None) -> dict:
        """Set property ``name`` to ``value`` (or back to its default with ``reset=True``).

        Returns ``{"name", "value", "old_value"}`` as the cloud reports them.
        """
        if reset == (value is not None):
            raise ValueError("give either a value or reset=True")
        params: dict[str, Any] = {"Name": name}
        if reset:
            params["Reset"] = True
        else:
            params["Value"] = str(value)
        reply = self.call("properties", "modify_property_value", where=where, **params) or {}
        return {"name": reply.get("name", name), "value": reply.get("value"), "old_value": reply.get("oldValue")}


def _send(method: Callable[..., dict], params: Mapping[str, Any], reader: SlimReader | None = None) -> dict:
    """One HTTP attempt (its reply read by ``reader`` where there is one); a streamed reply body is
    read within it."""
    token = current_reader.set(reader)  # botocore parses in this thread, within method()
    try:
        reply = method(**params)
    except KeyError as exc:  # botocore's parser, on a document without the result element
        raise NotTheProtocol(f"a reply without the <{exc.args[0] if exc.args else '?'}> element") from exc
    finally:
        current_reader.reset(token)
    body = reply.get("Body")
    if hasattr(body, "read"):
        reply["Body"] = io.BytesIO(body.read())
    return reply


class _Attempts:
    """The attempts of one call, each run within its deadline after the fence's check."""

    def __init__(self, send: Callable[[], dict], service: str, api_name: str, url: str, deadline: Deadline,
                 fence: Callable[[str], None] | None) -> None:
        self.send, self.service, self.api_name, self.url = send, service, api_name, url
        self.deadline, self.fence = deadline, fence
        self.name = f"{service}.{api_name}"
        self.started = time.monotonic()
        self.count = 0

    def __call__(self) -> dict:
        if self.fence is not None:  # every attempt: a retry may come long after the first one
            self.fence(self.name)
        self.count += 1
        sent = time.monotonic()
        try:
            reply = run_attempt(self.send, self.deadline.for_attempt(self.started),
                                notice_after=self.deadline.notice_after, still_waiting=self.still_waiting)
        except BaseException as exc:
            calllog.attempt(self.name, self.count, self.url, time.monotonic() - sent, error=exc)
            raise
        calllog.attempt(self.name, self.count, self.url, time.monotonic() - sent, reply=reply)
        return reply

    def still_waiting(self, waited: float) -> None:
        again = f", attempt {self.count}" if self.count > 1 else ""
        log.info("no answer from %s (%s%s) after %g s, still waiting…", host_of(self.url), self.api_name, again,
                 waited)

    def failed(self, where: str | None) -> FailedCall:
        """What the error of this call, failed now, names."""
        return FailedCall(self.service, self.api_name, self.url, where, self.count, self.deadline.timeout,
                          time.monotonic() - self.started)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _items(expression, page: Mapping | None) -> list:
    if not page:
        return []
    found = expression.search(page)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]

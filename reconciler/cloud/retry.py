"""Which failures are worth another attempt, and how often and how long recon waits between them.

tenacity is the only retry layer (botocore's own retries are switched off in
:mod:`reconciler.cloud.client`), so :class:`~reconciler.cloud.stats.CallStats` sees every attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    SSLError as BotoSSLError,
)
from botocore.parsers import ResponseParserError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_random_exponential

from reconciler.deadline import Deadline
from reconciler.errors import ConfigError

from .settings import env_string
from .stats import CallStats

try:  # urllib3 is always there with botocore; be defensive about its layout anyway.
    from urllib3.exceptions import ProtocolError as _Urllib3ProtocolError
except ImportError:  # pragma: no cover
    _Urllib3ProtocolError = ()  # type: ignore[assignment]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (tenacity ``wait_random_exponential``).

    Attempt *n* (from 1) fails transiently → wait uniformly in
    ``[0, min(maximum, initial * 2**(n-1))]`` seconds, up to ``attempts`` attempts in all.
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("waits must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """Defaults, overridden by ``RECON_RETRY_ATTEMPTS`` / ``RECON_RETRY_INITIAL`` / ``RECON_RETRY_MAX``."""
        values: dict[str, Any] = {}
        for name, field, kind in (
            ("RECON_RETRY_ATTEMPTS", "attempts", int),
            ("RECON_RETRY_INITIAL", "initial", float),
            ("RECON_RETRY_MAX", "maximum", float),
        ):
            raw = env_string(env, name)
            if raw is None:
                continue
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{raw!r} is not a{'n integer' if kind is int else ' number'}",
                                  where=f"environment variable {name}") from None
            if value < (1 if kind is int else 0) or value != value:  # also rejects NaN
                raise ConfigError(f"{raw!r} is out of range", where=f"environment variable {name}")
            values[field] = value
        return cls(**values)


_THROTTLING_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
})
_TRANSIENT_CODES = _THROTTLING_CODES | {
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
}


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` later may succeed: throttling, HTTP 5xx (not 501), connection errors,
    no answer within the attempt's deadline (:class:`~reconciler.deadline.NoAnswer`).

    Validation, authentication, authorization and not-found errors are not transient.
    """
    if isinstance(exc, ClientError):
        response = exc.response or {}
        code = (response.get("Error") or {}).get("Code")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if code == "InternalFailure" and status == 400:
            # Eucalyptus' LoadBalancing refuses what it cannot do this way (InternalFailure400Exception:
            # "Failed to create the loadbalancer: No loadbalancer EMI is found"): asking again will not help
            return False
        if code in _TRANSIENT_CODES:
            return True
        if isinstance(status, int):
            return status == 429 or (500 <= status < 600 and status != 501)
        return False
    if isinstance(exc, ResponseParserError):
        # An unparseable reply: typically a proxy's or load balancer's plain-text 502/503 page.
        return True
    if isinstance(exc, BotoSSLError):  # a certificate problem does not go away by waiting
        return False
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError,
        # ConnectionClosedError (ProtocolError/reset), ReadTimeoutError, ResponseStreamingError
        return True
    if _Urllib3ProtocolError and isinstance(exc, _Urllib3ProtocolError):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))  # builtins (resets while streaming)


def retrying(policy: RetryPolicy, stats: CallStats, label: str, deadline: Deadline) -> Retrying:
    """The tenacity loop for one call (``label`` = ``"service.Operation"``) within ``deadline``."""

    def before_sleep(state) -> None:
        stats.record_retry()
        exc = state.outcome.exception() if state.outcome else None
        reason = (exc.response.get("Error") or {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
        log.debug("%s: attempt %d failed (%s), retrying", label, state.attempt_number, reason)

    return Retrying(
        # no attempt starts in the last second of the call's budget
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(deadline.budget - 1),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )

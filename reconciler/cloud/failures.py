"""How one failed cloud call is reported: each kind of failure becomes a :class:`CloudError`
with a message naming the operation and the URL, and a hint where one helps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    EndpointProviderError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError as BotoSSLError,
)
from botocore.parsers import ResponseParserError

from reconciler.deadline import NoAnswer
from reconciler.errors import CloudError
from reconciler.replies import NotTheProtocol

from .hints import CREDENTIALS_HINT, NOT_THE_SERVICE_HINT, UNREACHABLE_HINT, hint_for
from .retry import is_transient


@dataclass(frozen=True)
class FailedCall:
    """What the error of a failed call names: the call, where it came from and how it went."""

    service: str
    api_name: str
    url: str
    where: str | None
    attempts: int
    timeout: float  # each attempt's bound, seconds
    waited: float  # seconds from the first attempt to the failure

    @property
    def host(self) -> str:
        return host_of(self.url)

    def error(self, text: str, code: str, hint: str | None = None) -> CloudError:
        return CloudError(f"{self.api_name} failed: {text}", where=self.where, hint=hint, code=code,
                          operation=self.api_name)


def host_of(url: str) -> str:
    """The host (and port) a URL names, for messages; the URL itself if it names none."""
    return urlsplit(url).netloc or url


def error_code(exc: ClientError) -> str:
    """The cloud's error code in a ClientError ("Unknown" when it sent none)."""
    return str((exc.response.get("Error") or {}).get("Code") or "Unknown")


def client_error(exc: ClientError, call: FailedCall, who: str = "") -> CloudError:
    """An error the cloud answered with; ``who`` says whose credentials it refused, if it did."""
    code = error_code(exc)
    message = str((exc.response.get("Error") or {}).get("Message") or "").strip()
    text = f"{who}{code}" + (f": {message}" if message else "")
    if call.attempts > 1:
        text += f" (after {call.attempts} attempts)"
    return call.error(text, code, hint_for(call.service, code))


def _no_answer(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(
        f"no answer from {call.host} after {call.waited:.0f} s ({_count(call.attempts, 'attempt')})", "Timeout",
        f"each attempt waits up to {call.timeout} s: is the cloud overloaded, or is {call.url} not it? "
        "a slow cloud is given longer with [cloud] timeout (or RECON_CALL_TIMEOUT)")


def _not_the_protocol(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"{call.url} sent {exc}, not the service's reply", "InvalidReply", NOT_THE_SERVICE_HINT)


def _no_credentials(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"no usable credentials ({exc})", "NoCredentials", CREDENTIALS_HINT)


def _tls(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"TLS error talking to {call.url}: {exc}", "SSLError",
                      "a private CA is given with [cloud].ca_bundle (or AWS_CA_BUNDLE)")


def _invalid_parameters(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"invalid parameters: {exc}", "ParamValidation")


def _no_endpoint(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"no endpoint: {exc}", "NoEndpoint", "set [cloud].endpoint")


def _not_the_xml(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"{call.url} sent a reply that is not the service's XML "
                      f"(after {_count(call.attempts, 'attempt')})", "InvalidReply", NOT_THE_SERVICE_HINT)


def _unreachable(exc: Exception, call: FailedCall) -> CloudError:
    return call.error(f"cannot reach {call.url} (after {_count(call.attempts, 'attempt')}): {exc}",
                      "ConnectionError", UNREACHABLE_HINT)


#: Failures by type, the first that matches wins.
_BY_TYPE: tuple[tuple[type[Exception] | tuple[type[Exception], ...], Callable[[Exception, FailedCall], CloudError]], ...] = (
    (NoAnswer, _no_answer),
    (NotTheProtocol, _not_the_protocol),
    ((NoCredentialsError, PartialCredentialsError, CredentialRetrievalError), _no_credentials),
    (BotoSSLError, _tls),
    (ParamValidationError, _invalid_parameters),
    (EndpointProviderError, _no_endpoint),
    (ResponseParserError, _not_the_xml),
)


def cloud_error(exc: Exception, call: FailedCall) -> CloudError | None:
    """The CloudError reporting ``exc`` (not a ClientError), or None if it is no cloud failure
    but a bug, to be raised as it is."""
    for types, report in _BY_TYPE:
        if isinstance(exc, types):
            return report(exc, call)
    if is_transient(exc):
        return _unreachable(exc, call)
    if isinstance(exc, BotoCoreError):
        return call.error(str(exc), type(exc).__name__)
    return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

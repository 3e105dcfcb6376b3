"""The one choke point for cloud calls: settings, sessions, endpoints, eucarc, retries, stats.

Everything recon sends to a cloud goes through :meth:`Cloud.call` (or :meth:`Cloud.paginate`,
which is built on it). That is where

- endpoints are chosen (Eucalyptus front-end URL layout, eucarc variables, explicit URLs),
- credentials are chosen (environment keys, eucarc keys, profiles), never printed,
- each HTTP attempt has a wall-clock deadline and the whole call a budget
  (:mod:`reconciler.deadline`; ``[cloud] timeout`` / ``RECON_CALL_TIMEOUT``),
- transient failures (throttling, 5xx, connection errors, no answer in time) are retried with
  exponential backoff and full jitter by tenacity -- botocore's own retries are switched off so
  that there is exactly one retry layer and :class:`CallStats` sees every HTTP attempt,
- a successful reply that is not the service's protocol (an HTML page) is refused before
  botocore reads it as an empty result (:mod:`reconciler.replies`),
- botocore errors become :class:`~reconciler.errors.CloudError` naming the call, the
  cloud's error code and message, and a hint where one helps.

The Eucalyptus properties service has no botocore model of its own; recon ships one in
``reconciler/models`` and adds that folder to the loader of the botocore session it makes.

One module per concern:

- :mod:`.settings` -- the ``[cloud]`` table and the environment resolved into :class:`CloudSettings`;
- :mod:`.endpoints` -- service URL paths per Eucalyptus version, :class:`Endpoints`;
- :mod:`.credentials` -- the botocore session (shared model loader) and the credential chain;
- :mod:`.retry` -- transient failures, :class:`RetryPolicy`, the tenacity loop;
- :mod:`.hints` -- authentication/authorization error codes and the hints errors give;
- :mod:`.failures` -- a failed call's exception turned into the :class:`~reconciler.errors.CloudError`
  that reports it;
- :mod:`.stats` -- :class:`CallStats`, requests and retries per operation, seconds per phase;
- :mod:`.client` -- :class:`Cloud`: clients, :meth:`~Cloud.call`, :meth:`~Cloud.paginate`,
  fencing, the properties API.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .endpoints import SERVICES, Endpoints, describe_path, parse_version
from .settings import (
    CLOUD_FIELDS, DEFAULT_EUCALYPTUS_VERSION, DEFAULT_REGION, CloudSettings, resolve_settings,
)
from .stats import CallStats

if TYPE_CHECKING:
    from .client import Cloud
    from .retry import RetryPolicy, is_transient

#: Names whose modules import botocore: loaded on first use, so that a command that never calls
#: the cloud (validate, fmt, schema) does not pay for botocore.
_LAZY = {"Cloud": ".client", "RetryPolicy": ".retry", "is_transient": ".retry"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "SERVICES",
    "CLOUD_FIELDS",
    "DEFAULT_REGION",
    "DEFAULT_EUCALYPTUS_VERSION",
    "Endpoints",
    "CloudSettings",
    "resolve_settings",
    "describe_path",
    "parse_version",
    "CallStats",
    "RetryPolicy",
    "Cloud",
    "is_transient",
]

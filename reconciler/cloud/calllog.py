"""The debug log of cloud calls (``recon --debug``, ``RECON_LOG=debug``): one line per HTTP attempt, with
the service and action, the attempt's number, the HTTP status (and the cloud's error code) or what
went wrong instead, and how long it took.

Neither request nor reply bodies are logged, nor headers, so no credential or value sent; and each
line passes through :func:`~reconciler.redact.redact` on its way out, as everything recon prints
does. The lines go to the ``reconciler.calls`` logger; :func:`enable` sends recon's debug records
(these, and the retry notes of :mod:`.retry`) to stderr or to a file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..redact import redact
from .failures import host_of

log = logging.getLogger("reconciler.calls")


def attempt(name: str, number: int, url: str | None, seconds: float, *, reply: Any = None,
            error: BaseException | None = None) -> None:
    """Log one HTTP attempt of ``name`` (``"ec2.DescribeKeyPairs"``) that took ``seconds``."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    log.debug("%s attempt %d: %s in %.3fs (%s)", name, number, outcome(reply, error), seconds,
              host_of(url) if url else "default endpoint")


def outcome(reply: Any, error: BaseException | None) -> str:
    """``HTTP 200``; ``HTTP 400 InvalidKeyPair.NotFound``; or the failure's kind without an HTTP reply."""
    if error is None:
        status = ((reply or {}).get("ResponseMetadata") or {}).get("HTTPStatusCode") if isinstance(reply, dict) else None
        return f"HTTP {status}" if status else "done"
    if isinstance(error, ClientError):
        response = error.response or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode", "?")
        return f"HTTP {status} {(response.get('Error') or {}).get('Code', '')}".rstrip()
    return f"failed: {type(error).__name__}"


class _Redacted(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _BelowInfo(logging.Filter):
    """On stderr the notes from INFO up are printed already (``terminal.LogLines``): only the debug ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.INFO


def enable(path: Path | None) -> None:
    """Send recon's debug log to ``path`` (appended to), or to stderr when None."""
    if path is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_BelowInfo())
    else:
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_Redacted("%(asctime)s debug %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("reconciler")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

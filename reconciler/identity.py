"""Which cloud and account recon talks to, and the refusal to plan one stack's state on another.

A cloud is known by the account the credentials belong to and the region: those are compared.
The front-end host (host:port of the compute endpoint) is shown with them but compared only
when an account is unknown, because one cloud can be reached under several names and ports
(a proxy, a load balancer in front of the front end, localhost and 127.0.0.1). State records
the identity at its first write; a plan against another account or region is refused unless
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .cloud import CloudSettings
from .errors import PlanError, StateError

#: Where a sourced eucarc puts the account number (no cloud call needed then).
ACCOUNT_VARIABLES = ("EC2_USER_ID", "EC2_ACCOUNT_NUMBER")


@dataclass(frozen=True)
class CloudIdentity:
    host: str
    account: str
    region: str

    def describe(self) -> str:
        return f"{self.host} (account {self.account or 'unknown'}, region {self.region})"

    def difference(self, other: "CloudIdentity") -> str | None:
        """How ``other`` is another cloud ("another account", ...), or None when it is this one: the
        same account and region, or, when either account is unknown, the same front-end host."""
        if not self.account or not other.account:
            return None if self.host == other.host else "another front end (and an account not known)"
        if self.account != other.account:
            return "another account"
        if self.region and other.region and self.region != other.region:
            return "another region"
        return None

    def to_json(self) -> dict[str, str]:
        return {"host": self.host, "account": self.account, "region": self.region}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "CloudIdentity":
        try:
            return cls(str(data["host"]), str(data.get("account", "")), str(data.get("region", "")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"its cloud identity is damaged: {exc}", where=where)


def front_end_host(settings: CloudSettings) -> str:
    """host:port of the compute endpoint (the front end); AWS's regional host without one."""
    url = settings.endpoints.compute
    if not url:
        return f"ec2.{settings.region}.amazonaws.com"
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1].lower() or url


def resolve(settings: CloudSettings, env: Mapping[str, str], owner_of_default_group: Callable[[], str]) -> CloudIdentity:
    """The identity of the cloud the settings reach: the account from the environment a eucarc
    sets, else from one cheap call (``owner_of_default_group``)."""
    account = next((env[name].strip() for name in ACCOUNT_VARIABLES if env.get(name, "").strip()), "")
    return CloudIdentity(front_end_host(settings), account or owner_of_default_group(), settings.region)


def check(recorded: CloudIdentity | None, current: CloudIdentity, *, stack: str, where: str,
          allow_other: bool) -> None:
    """Refuse when the state was written for another cloud or account (unless ``allow_other``)."""
    difference = None if recorded is None or allow_other else recorded.difference(current)
    if difference is None:
        return
    raise PlanError(f"the state of stack {stack!r} belongs to cloud {recorded.describe()}, but this run talks to "
                    f"cloud {current.describe()}, {difference}; refusing to plan it there (every resource would "
                    "look gone and be made again)", where=where,
                    hint="source the eucarc of the cloud the state belongs to, or pass --allow-other-cloud to "
                         "plan against this cloud anyway (the state then records this cloud on its next write)")

"""The drift report: the plan seen from cron, in groups like driftctl's.

- changed: managed resources whose attributes moved outside recon;
- missing: in state, gone from the cloud;
- unmanaged: carrying this stack's tags, in neither the file nor the state; with ``--all-unmanaged``
  also the account's key pairs, groups, load balancers and images that no stack's tags claim
  (``unowned``, see ``reconciler/unowned.py``);
- pending: the file asks for something never applied (an edit not yet rolled out);
- reported: what differs and recon leaves as it is, saying why (load balancers' workers still on
  an older image under ``workers = "report"``).

``[drift] ignore`` takes addresses or ``ADDRESS.attribute.path`` patterns with shell
wildcards (``load_balancers.*.instances``, ``properties.cloud.*``); ``[drift] ignore_unmanaged``
takes ``KIND.NAME`` patterns that only unmanaged resources are matched against.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Sequence

from .addresses import Address
from .plan import Change, Plan


@dataclass
class DriftReport:
    stack: str
    changed: list[Change] = field(default_factory=list)
    missing: list[Change] = field(default_factory=list)
    pending: list[Change] = field(default_factory=list)
    unmanaged: list[tuple[Address, str]] = field(default_factory=list)  # address, cloud id
    #: Unmanaged and not tagged by recon (--all-unmanaged): address, cloud id.
    unowned: list[tuple[Address, str]] = field(default_factory=list)
    reported: list[tuple[Address, str]] = field(default_factory=list)   # address, what differs
    ignored: int = 0

    @property
    def in_sync(self) -> bool:
        return not (self.changed or self.missing or self.pending or self.unmanaged or self.unowned or self.reported)

    def counts(self) -> dict[str, int]:
        return {"changed": len(self.changed), "missing": len(self.missing),
                "unmanaged": len(self.unmanaged) + len(self.unowned), "pending": len(self.pending),
                "reported": len(self.reported),
                "ignored": self.ignored}


def _matches(patterns: Sequence[str], text: str) -> bool:
    return any(fnmatchcase(text, pattern) for pattern in patterns)


def report(plan: Plan, ignore: Sequence[str] = (), *, unowned: Sequence[tuple[Address, str]] = (),
           ignore_unmanaged: Sequence[str] = ()) -> DriftReport:
    """The plan's drift, and ``unowned`` resources, less what the patterns ignore."""
    out = DriftReport(plan.stack)
    for change in sorted(plan.actionable, key=lambda c: c.key):
        address = str(change.address)
        if _matches(ignore, address):
            out.ignored += 1
            continue
        kept = [p for p in change.changed_paths if not _matches(ignore, f"{address}.{p}")]
        if change.changed_paths and not kept and change.drift != "missing":
            out.ignored += 1
            continue
        if len(kept) != len(change.changed_paths):
            change = replace(change, changed_paths=kept,
                             replace_paths=[p for p in change.replace_paths if p in kept])
        {"changed": out.changed, "missing": out.missing}.get(change.drift or "", out.pending).append(change)
    unmanaged_ignore = [*ignore, *ignore_unmanaged]
    for found, into, patterns in ((plan.unmanaged, out.unmanaged, unmanaged_ignore),
                                  (unowned, out.unowned, unmanaged_ignore), (plan.reported, out.reported, ignore)):
        for address, what in found:
            if _matches(patterns, str(address)):
                out.ignored += 1
            else:
                into.append((address, what))
    return out

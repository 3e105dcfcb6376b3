"""What a plan says about each LB image revision it installs: a step after the planner, no I/O.

The notes of a change that creates or replaces a revision say, in this order:

- the version it installs: one above the highest among the images the account can see, as
  ``euca-install-load-balancer`` counts, then one more for each other revision the plan installs
  (in address order); apply installs it as that version unless something took it meanwhile (a
  ``loadbalancer-vN`` bucket someone left), and says so;
- the servo release, where recon read it, and ``haproxy -c`` on the template;
- warnings: a template ``timeout client`` / ``timeout server`` the servo (1.1 and later) overrides in
  every listener with the load balancer's idle timeout, and listeners the servo would leave out;
- for each load balancer of the file, ``haproxy -c`` on the configuration the servo writes for it
  and the command that prints it;
- the template against the revision installed now (from state), then against the base image;
- the other files recon writes.

Prose lines never start with ``+``, ``-``, ``@`` or a space, so a renderer can tell them from the
lines of a diff.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import replace
from typing import Any, Mapping

from ..imagebuild.servo import (DEFAULT_IDLE_TIMEOUT, IDLE_TIMEOUT_RANGE, LISTENER_TIMEOUTS, OVERRIDDEN,
                                TEMPLATE_PATH, ServoRelease, time_seconds)
from ..plan import Action, Change, Plan, contains_unknown
from .lb_images import IMAGE_PREFIX, KIND as LB_IMAGES, PLANNED_VERSION

INSTALLS = frozenset({Action.CREATE, Action.REPLACE, Action.CREATE_THEN_DELETE})
#: What a plan shows of a revision it retires (state also keeps its template, for the diffs above).
RETIRED_VIEW = ("source", "base_sha256", "digest", "image_id", "version", "location")


def review(plan: Plan, live: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Give each revision the plan installs its notes, and a replacement the version it replaces (the
    plan's changes are replaced by changes that say so)."""
    versions = [item.get("version") or 0 for item in live.get("lb_images", {}).values()]
    upcoming = max([0, *versions]) + 1
    reviewed = {}
    for change in sorted(plan.changes, key=lambda c: c.key):
        if change.kind != "lb_images":
            continue
        if change.action is Action.DELETE and change.before:
            before = {k: v for k, v in change.before.items() if k in RETIRED_VIEW}
            reviewed[change.key] = replace(change, before=before, changed_paths=sorted(before))
        if change.action not in INSTALLS or change.payload.desired is None or contains_unknown(change.payload.desired):
            continue
        resumes = change.payload.resumes
        resumed = (resumes or {}).get("version")       # an interrupted install's bucket
        version = resumed or upcoming
        reviewed[change.key] = installing(change, version)
        if not resumed:
            upcoming += 1
    plan.changes = [reviewed.get(change.key, change) for change in plan.changes]


def installing(change: Change, version: int) -> Change:
    """The change of a revision the plan installs as ``version``: its notes, the version in what apply
    installs, and the revision it replaces in its reason."""
    payload = change.payload
    reason = change.reason
    if payload.prior and change.action is not Action.CREATE:
        reason = "; ".join(filter(None, [
            f"replaces {installed_label(payload.prior)}, deleted once nothing uses it",
            LB_IMAGES.resume_reason(change.name, payload.resumes) if payload.resumes else ""]))
    return replace(change, notes=revision_notes(change.name, payload.desired, payload.prior, version), reason=reason,
                   payload=replace(payload, config={**(payload.config or {}), PLANNED_VERSION: version}))


def installed_label(prior: Mapping[str, Any]) -> str:
    """``v2 (emi-…)``: how a plan names the revision installed now."""
    version = f"v{prior['version']}" if prior.get("version") else f"revision {prior.get('digest')}"
    return f"{version} ({prior['image_id']})" if prior.get("image_id") else version


def suggested_idle_timeout(value: Any) -> int:
    """The idle timeout (whole seconds, within what the servo takes) a template timeout asks for."""
    low, high = IDLE_TIMEOUT_RANGE
    return min(max(math.ceil(time_seconds(str(value))), low), high)


def override_warnings(attrs: Mapping[str, Any]) -> list[str]:
    """Template settings the servo overrides in every listener, with the attribute to set instead."""
    servo = attrs.get("servo")
    if not servo or not ServoRelease(**servo).at_least(*LISTENER_TIMEOUTS):
        return []
    defaults = attrs.get("haproxy", {}).get("defaults", {})
    overridden = [key for key in OVERRIDDEN if key in defaults]
    if not overridden:
        return []
    effective = attrs.get("effective", {})
    timeouts = {found["idle_timeout"] for found in effective.values()} or {DEFAULT_IDLE_TIMEOUT}
    written = f"{timeouts.pop()}s" if len(timeouts) == 1 else "Ns"
    where = ", ".join(f"load_balancers.{lb} (its idle timeout: {found['idle_timeout']} s)"
                      for lb, found in sorted(effective.items())) or "each load balancer"
    settings = " and ".join(f'"{key}" = "{defaults[key]}"' for key in overridden)
    lines = " and ".join(f'"{key} {written}"' for key in overridden)
    seconds = max(suggested_idle_timeout(defaults[key]) for key in overridden)
    return [f"Warning: {settings} {'does' if len(overridden) == 1 else 'do'} not reach listener traffic: servo "
            f"{servo['version']} writes {lines} into each listener from the load balancer's idle timeout; "
            f"set attributes = {{ idle_timeout = {seconds} }} on {where} instead"]


def _diff(old: str, new: str, old_label: str, new_label: str) -> list[str]:
    name = TEMPLATE_PATH.lstrip("/")
    return [line.rstrip("\n") for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"{old_label}/{name}",
        tofile=f"{new_label}/{name}")]


def revision_notes(name: str, attrs: Mapping[str, Any], prior: Mapping[str, Any] | None, version: int) -> list[str]:
    """The notes of a change installing the revision ``attrs`` as ``version`` (see the module docstring)."""
    lines = [f"installs as v{version}: image {IMAGE_PREFIX}-v{version} in bucket loadbalancer-v{version}"]
    servo = attrs.get("servo")
    lines.append(f"servo {servo['version']} (read from {servo['source']})" if servo else
                 "servo release unknown: the image has no Eucalyptus_Loadbalancer_Servo-*.egg-info; set "
                 "servo_version in the block to see the configuration HAProxy will run")
    check = attrs.get("haproxy_check")
    lines.append(f"haproxy -c: {check} (the template)" + (", haproxy is not installed here" if check == "skipped"
                                                          else ""))
    lines += override_warnings(attrs)
    for lb, found in sorted(attrs.get("effective", {}).items()):
        frontends = [line.split()[1] for line in found["config"].splitlines() if line.startswith("frontend ")]
        lines.append(f"load_balancers.{lb}: haproxy -c: {found['check']} on what servo {servo['version']} writes "
                     f"({', '.join(frontends) or 'no listener'}); `recon image effective lb_images.{name} --lb {lb}` "
                     "prints it")
        lines += [f"Warning: load_balancers.{lb}: the servo leaves out {skipped}" for skipped in found["skipped"]]
    template = attrs.get("template", "")
    if prior:
        label = f"v{prior['version']}" if prior.get("version") else "installed"
        if prior.get("template") is None:
            lines.append(f"the template of {installed_label(prior)} is not in state (an older recon installed it)")
        elif prior["template"] == template:
            lines.append(f"template unchanged from {installed_label(prior)}")
        else:
            lines.append(f"template against {installed_label(prior)}, installed now:")
            lines += _diff(prior["template"], template, label, f"v{version}")
    diff = attrs.get("template_diff", "")
    lines.append("template against the base image:" if diff else "template unchanged from the base image")
    lines += diff.rstrip("\n").splitlines()
    for path, content in sorted(attrs.get("other_files", {}).items()):
        lines += [f"+++ {path}", *(f"+{line}" for line in content.rstrip("\n").splitlines())]
    return lines

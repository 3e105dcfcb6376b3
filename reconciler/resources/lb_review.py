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

Workers (:func:`workers_review`, for the ``load_balancers`` kind). A load balancer of the file whose
worker VMs run another image, instance type or key name than the properties in force say (the
file's properties, else the group's launch configuration) gets a note saying so (``1 worker
runs v2, enabled is v3``): under ``workers = "roll"`` on its change, which replaces them and is
ordered before the revisions the plan retires; under ``"report"`` in ``Plan.reported``. A revision
(:func:`review`) still run by a worker that this plan does not replace, or named by a group's launch
configuration while the emi property stays, is not retired: its delete leaves the plan and
``Plan.reported`` says which workers hold it (a deposed one stays deposed, for a later plan).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import replace
from typing import Any, Mapping

from ..imagebuild.servo import (DEFAULT_IDLE_TIMEOUT, IDLE_TIMEOUT_RANGE, LISTENER_TIMEOUTS, OVERRIDDEN,
                                TEMPLATE_PATH, ServoRelease, time_seconds)
from ..addresses import Reference, is_whole_reference
from ..plan import UNKNOWN, Action, Change, Plan, contains_unknown
from .lb_images import IMAGE_PREFIX, KIND as LB_IMAGES, PLANNED_VERSION
from .lb_workers import ATTRS as WORKER_ATTRS, LAUNCH_KEYS, group_launch, version_label
from .properties import EMI_PROPERTIES

INSTALLS = frozenset({Action.CREATE, Action.REPLACE, Action.CREATE_THEN_DELETE})
#: What a plan shows of a revision it retires (state also keeps its template, for the diffs above).
RETIRED_VIEW = ("source", "base_sha256", "digest", "image_id", "version", "location")


def review(plan: Plan, live: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Give each revision the plan installs its notes, and a replacement the version it replaces (the
    plan's changes are replaced by changes that say so)."""
    versions = [item.get("version") or 0 for item in live.get("lb_images", {}).values()]
    upcoming = max([0, *versions]) + 1
    reviewed = {}
    held = held_revisions(plan, live)
    for change in sorted(plan.changes, key=lambda c: c.key):
        if change.kind != "lb_images":
            continue
        if change.key in held:
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
    plan.changes = [reviewed.get(change.key, change) for change in plan.changes if change.key not in held]
    plan.reported += [(key[0], message) for key, message in sorted(held.items())]


def held_revisions(plan: Plan, live: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[tuple, str]:
    """The retirements of revisions a worker still runs (one this plan does not replace) or a launch
    configuration names (while the emi property stays): by change key, why each waits."""
    balancers = live.get("load_balancers", {})
    replaced = {old for c in plan.changes if c.kind == "load_balancers" for r in c.replacements for old in r.old_ids}
    emi_changes = any(c.kind == "properties" and c.name in EMI_PROPERTIES and c.action is Action.UPDATE
                      for c in plan.changes)
    held = {}
    for change in plan.changes:
        if change.kind != "lb_images" or change.action is not Action.DELETE:
            continue
        image = (change.before or {}).get("image_id") or (change.payload.prior or {}).get("image_id")
        if not image:
            continue
        workers = _running(balancers, image, replaced)
        configs = [] if emi_changes else _naming(balancers, image)
        if workers or configs:
            held[change.key] = _kept(image, bool(change.deposed_id), workers, configs)
    return held


def _running(balancers: Mapping[str, Mapping[str, Any]], image: str, replaced: set[str]) -> list[str]:
    """The workers that run ``image`` and that this plan does not replace."""
    return [f"{w['id']} of load_balancers.{lb}" for lb, attrs in sorted(balancers.items())
            for w in attrs.get("workers") or [] if w.get("image") == image and w["id"] not in replaced]


def _naming(balancers: Mapping[str, Mapping[str, Any]], image: str) -> list[str]:
    """The launch configurations (of the load balancers' groups) that launch ``image``."""
    return [f"the launch configuration of {group['name']}" for _, attrs in sorted(balancers.items())
            for group in attrs.get("worker_groups") or [] if (group.get("launch") or {}).get("image") == image]


def _kept(image: str, deposed: bool, workers: list[str], configs: list[str]) -> str:
    """Why the revision of ``image`` is not retired by this plan."""
    holders = []
    if workers:
        holders.append(f"worker {', '.join(workers)} run{'s' if len(workers) == 1 else ''} it")
    if configs:
        holders.append(f"{', '.join(configs)} names it")
    return (f"{image} is kept ({'deposed, ' if deposed else ''}not retired): {'; '.join(holders)}; "
            "retired by the first plan after no worker runs it")


# --- workers -------------------------------------------------------------------------------------

def workers_review(plan: Plan, live: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Note each load balancer of the plan whose workers differ from the launch in force (see the
    module docstring); order a change that replaces workers (stale or ``--replace``'s) before the
    revisions the plan retires."""
    retiring = sorted({c.address for c in plan.changes if c.kind == "lb_images" and c.action is Action.DELETE})
    reviewed = {}
    for change in plan.changes:
        lb = change.payload.live
        if change.kind != "load_balancers" or change.deposed_id or not lb or not lb.get("workers"):
            continue
        if change.replacements:
            change = reviewed[change.key] = _before_retiring(change, retiring)
        message = stale_message(lb, _launch_in_force(change.payload.desired or {}, lb), _enabling(plan))
        if message is None:
            continue
        if change.replacements and (change.payload.desired or {}).get("workers") == "roll":
            reviewed[change.key] = _rolling(change, lb, message)
        else:
            plan.reported.append((change.address, f'{message} (workers = "report": recon leaves them; '
                                                  'workers = "roll" replaces them)'))
    plan.changes = [reviewed.get(change.key, change) for change in plan.changes]


def _launch_in_force(desired: Mapping[str, Any], lb: Mapping[str, Any]) -> dict[str, Any]:
    """What the workers should launch with: the file's worker properties, else the groups' own."""
    config = group_launch(lb)
    want = {key: desired[attr] if attr in desired else config.get(key) for key, attr in WORKER_ATTRS.items()}
    return {key: value or None if value is not UNKNOWN else UNKNOWN for key, value in want.items()}


def _rolling(change: Change, lb: Mapping[str, Any], message: str) -> Change:
    """The change that rolls the workers, with its note."""
    groups = lb["worker_groups"]
    note = (f"{message}: replaced one at a time through {', '.join(g['name'] for g in groups)} (at most 1 "
            f"of {sum(g['capacity'] for g in groups)} out of service), before any revision is retired")
    return replace(change, notes=[*change.notes, note])


def _before_retiring(change: Change, retiring: list) -> Change:
    """The change that replaces workers, ordered before every revision the plan retires."""
    reasons = {**change.depends_on_reasons, **{a: ["its workers leave that revision before it is retired"]
                                               for a in retiring if a not in change.depends_on}}
    return replace(change, depends_on=sorted({*change.depends_on, *retiring}), depends_on_reasons=reasons)


def _enabling(plan: Plan) -> str | None:
    """The revision the plan enables while its image id is not known yet (``lb_images.v2``)."""
    for change in plan.changes:
        value = (change.payload.config or {}).get("value")
        if change.kind == "properties" and change.name in EMI_PROPERTIES and is_whole_reference(value):
            return str(Reference.parse(value[2:-1]).address)
    return None


def stale_message(lb: Mapping[str, Any], want: Mapping[str, Any], enabling: str | None = None) -> str | None:
    """``1 worker runs v2, enabled is v3``: the workers of a live load balancer that differ from ``want``."""
    versions = lb.get("worker_versions") or {}
    parts = []
    for key in LAUNCH_KEYS:
        if key not in want:
            continue
        off = [w for w in lb.get("workers") or [] if w[key] != want[key]]
        if not off:
            continue
        runs = "runs" if len(off) == 1 else "run"
        ids = ", ".join(w["id"] for w in off)
        if key == "image":
            have = ", ".join(sorted({version_label(w["image"], w.get("version")) for w in off}))
            target = (f"{enabling} (installed by this plan)" if enabling else "a new image") \
                if want[key] is UNKNOWN else version_label(want[key], versions.get(want[key]))
            parts.append(f"{len(off)} worker{'s' if len(off) > 1 else ''} {runs} {have}, enabled is {target} ({ids})")
        else:
            noun = key.replace("_", " ")
            have = ", ".join(sorted({str(w[key]) for w in off}))
            parts.append(f"{len(off)} worker{'s' if len(off) > 1 else ''} {runs} {noun} {have}, "
                         f"the property says {want[key]} ({ids})")
    return "; ".join(parts) or None


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

"""Terraform-like text: one block per change, changed attributes only, a summary line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..plan import Action, Change, Plan, Replacement
from ..diff import get_path
from .values import masked_change, show

if TYPE_CHECKING:
    from ..drift import DriftReport

COLORS = {Action.CREATE: "32", Action.UPDATE: "33", Action.DELETE: "31",
          Action.REPLACE: "35", Action.CREATE_THEN_DELETE: "35"}


class Style:
    def __init__(self, color: bool):
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self.paint(text, "1")


def _attribute_lines(change: Change, style: Style) -> Iterable[str]:
    before, after = masked_change(change)
    if change.action is Action.CREATE:
        for key in sorted(after or {}):
            yield f"      {style.paint('+', '32')} {key} = {show(after[key])}"
        return
    if change.action is Action.DELETE:
        for key in sorted(before or {}):
            yield f"      {style.paint('-', '31')} {key} = {show(before[key])}"
        return
    for path in change.changed_paths:
        old, new = get_path(before, path), get_path(after, path)
        forces = style.paint("  # forces replacement", "31") if path in change.replace_paths else ""
        if isinstance(old, list) and isinstance(new, list):
            yield f"      {style.paint('~', '33')} {path}{forces}"
            for item in old:
                if item not in new:
                    yield f"          {style.paint('-', '31')} {show(item)}"
            for item in new:
                if item not in old:
                    yield f"          {style.paint('+', '32')} {show(item)}"
        else:
            yield f"      {style.paint('~', '33')} {path}: {show(old)} -> {show(new)}{forces}"


def change_block(change: Change, style: Style, *, notes: bool = True) -> list[str]:
    action = change.shown_action
    symbol = style.paint(action.symbol, COLORS.get(action, "0"))
    why = f" ({change.reason})" if change.reason else ""
    verb = action.verb
    if change.replacements:
        verb = (f"will have {len(change.replacements)} instance(s) replaced (new ones created first)"
                if action is Action.CREATE_THEN_DELETE else f"will have {len(change.replacements)} instance(s) replaced")
        verb += ", and be updated in place" if change.in_place else ""
    lines = [f"  # {style.bold(change.label)} {verb}{why}",
             f"  {symbol} {change.label}"]
    lines.extend(_attribute_lines(change, style))
    for part in change.replacements:
        lines.append(f"  {symbol} {part.label} ({_replacing(part)})")
    if notes:
        lines.extend(f"      {note}" for note in change.notes)
    return lines


def _replacing(part: Replacement) -> str:
    """What replacing a part does: ``replaces i-…`` (a host's index), or, for a part named by the one
    instance it is (an LB worker, ``load_balancers.web[i-…]``), that a new instance takes its place."""
    if part.label.endswith(f"[{', '.join(part.old_ids)}]"):
        return "a new instance takes its place"
    return f"replaces {', '.join(part.old_ids)}"


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    return f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy."


def cloud_line(plan: Plan) -> str:
    """Which stack on which cloud and account the plan is for."""
    return f"Stack {plan.stack} on cloud {plan.cloud.describe()}."


def render_plan(plan: Plan, *, color: bool = False) -> str:
    style = Style(color)
    lines: list[str] = [cloud_line(plan)] if plan.cloud else []
    for warning in plan.warnings:
        lines.append(style.paint(f"Warning: {warning}", "33"))
    lines.extend(f"Note: {address}: {what}" for address, what in plan.reported)
    if not plan.has_changes:
        lines.append("No changes. The state holds nothing to destroy." if plan.destroy
                     else "No changes. The cloud matches the file." if not plan.reported
                     else "No changes to make; what the notes say differs is left as it is.")
        if plan.forget:
            lines.append(_forget_note(plan))
        if plan.unmanaged:
            lines.append(_unmanaged_note(plan))
        return "\n".join(lines) + "\n"
    lines.append("recon will perform the following actions:")
    lines.append("")
    for change in sorted(plan.actionable, key=lambda c: c.key):
        lines.extend(change_block(change, style))
        lines.append("")
    if plan.forget:
        lines.append(_forget_note(plan))
        lines.append("")
    if plan.unmanaged:
        lines.append(_unmanaged_note(plan))
        lines.append("")
    lines.append(style.bold(summary_line(plan)))
    return "\n".join(lines) + "\n"


def _unmanaged_note(plan: Plan) -> str:
    names = ", ".join(f"{a} ({i})" for a, i in plan.unmanaged)
    return f"Note: tagged for stack {plan.stack} but in neither the file nor the state (recon leaves them): {names}"


def _forget_note(plan: Plan) -> str:
    names = ", ".join(str(a) for a in plan.forget)
    return f"No longer managed (left as they are in the cloud, dropped from state): {names}"


DRIFT_GROUPS = (("changed", "changed outside recon"), ("missing", "gone from the cloud"),
                ("unmanaged", "tagged for this stack but in neither the file nor the state"),
                ("unowned", "in the account, in neither the file nor the state, not tagged by recon"),
                ("pending", "in the file, not yet applied"),
                ("reported", "reported, left as it is by apply"))


def render_drift(report: DriftReport, *, color: bool = False) -> str:
    style = Style(color)
    ignored = f" ({report.ignored} ignored by [drift] ignore)" if report.ignored else ""
    if report.in_sync:
        return f"No drift: the cloud matches stack {report.stack}'s file{ignored}.\n"
    lines = [style.bold(f"Drift in stack {report.stack}: the cloud does not match the file."),
             "(values shown as cloud -> file)", ""]
    for key, title in DRIFT_GROUPS:
        items = getattr(report, key)
        if not items:
            continue
        lines.append(f"{title[0].upper()}{title[1:]} ({len(items)}):")
        for item in items:
            if key in ("unmanaged", "unowned"):
                address, cloud_id = item
                lines.append(f"  ? {address} ({cloud_id})")
            elif key == "reported":
                address, what = item
                lines.append(f"  ! {address}: {what}")
            else:
                lines.extend(change_block(item, style))
        lines.append("")
    counts = ", ".join(f"{n} {key}" for key, n in report.counts().items()
                       if key != "ignored" and (n or key != "reported"))
    repair = (" Run `recon apply` to repair (unmanaged resources: import or delete them)."
              if report.changed or report.missing or report.pending or report.unmanaged else "")
    left = " Apply leaves what is reported as it is (each says why)." if report.reported else ""
    lines.append(f"Drift: {counts}{ignored}.{repair}{left}")
    return "\n".join(lines) + "\n"

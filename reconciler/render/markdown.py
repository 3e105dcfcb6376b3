"""A pull-request comment: counts and a destroy warning first, each change in a
collapsible ``<details>``, sensitive values masked, under GitHub's comment limit. A drift report
the same way, for an issue a bot opens (``recon drift --format markdown``)."""

from __future__ import annotations

import html
import re

from ..drift import DriftReport
from ..plan import Action, Change, Plan
from .text import DRIFT_GROUPS, Style, change_block, summary_line

LIMIT = 60_000
MARKER = "<!-- recon plan -->"  # lets a CI job find and update its own comment
DRIFT_MARKER = "<!-- recon drift -->"


def render_markdown(plan: Plan, *, limit: int = LIMIT) -> str:
    counts = plan.summary()
    cloud = (f" on cloud `{plan.cloud.host}` (account `{plan.cloud.account or 'unknown'}`, "
             f"region `{plan.cloud.region}`)" if plan.cloud else "")
    head = [MARKER, f"### recon plan for stack `{plan.stack}`{cloud}", ""]
    reported = [line for address, what in plan.reported for line in ("", f"> [!NOTE]\n> `{address}`: {html.escape(what)}")]
    if not plan.has_changes:
        head.append("**No changes.** The cloud matches the file." if not plan.reported else
                    "**No changes** to make; what the notes say differs is left as it is.")
        return "\n".join(head + reported) + "\n"
    head.append(f"**{summary_line(plan)}**")
    # a create-before-destroy and the delete of the object it replaces are one resource
    # and an update that replaces instances destroys each of them
    destroyed = list(dict.fromkeys(name for c in plan.actionable for name in _destroyed(c)))
    if destroyed:
        names = ", ".join(f"`{address}`" for address in destroyed[:20])
        more = f" and {len(destroyed) - 20} more" if len(destroyed) > 20 else ""
        head += ["", f"> [!WARNING]\n> **{counts['destroy']} to destroy:** {names}{more}"]
    for warning in plan.warnings:
        head += ["", f"> [!NOTE]\n> {html.escape(warning)}"]
    head += reported
    head.append("")

    blocks = [_details(change) for change in sorted(plan.actionable, key=lambda c: c.key)]
    return _within("\n".join(head) + "\n", blocks, limit, "changes", "recon plan")


def render_drift_markdown(report: DriftReport, *, limit: int = LIMIT) -> str:
    """The drift report as an issue's body: counts, then each group, a changed resource's diff collapsed."""
    ignored = f" ({report.ignored} ignored by [drift] ignore)" if report.ignored else ""
    head = [DRIFT_MARKER, f"### recon drift for stack `{report.stack}`", ""]
    if report.in_sync:
        head.append(f"**No drift.** The cloud matches the file{ignored}.")
        return "\n".join(head) + "\n"
    counts = ", ".join(f"{n} {key}" for key, n in report.counts().items() if key != "ignored")
    head += [f"**Drift: {counts}{ignored}.** Values are shown as cloud -> file; `recon apply` repairs "
             "(unmanaged resources: import or delete them).", ""]
    blocks = []
    for key, title in DRIFT_GROUPS:
        items = getattr(report, key)
        if not items:
            continue
        blocks.append(f"\n#### {title[0].upper()}{title[1:]} ({len(items)})\n\n")
        if key in ("unmanaged", "unowned"):
            blocks += [f"- `{html.escape(str(address))}` (`{html.escape(cloud_id)}`)\n" for address, cloud_id in items]
        else:
            blocks += [_details(change) for change in items]
    return _within("\n".join(head) + "\n", blocks, limit, "parts of the report", "recon drift")


def _details(change: Change) -> str:
    """One change, collapsed: its action and address, its attribute diff and notes inside."""
    body = "\n".join([*(_diff_line(line) for line in change_block(change, Style(color=False), notes=False)[1:]),
                      *(_note_line(note) for note in change.notes)])
    action = change.shown_action
    return (f"<details><summary><code>{action.symbol}</code> <code>{html.escape(change.label)}"
            f"</code> {html.escape(action.verb)}</summary>\n\n```diff\n{body}\n```\n</details>\n")


def _within(out: str, blocks: list[str], limit: int, what: str, command: str) -> str:
    """``out`` and as many of ``blocks`` as fit under ``limit`` characters, saying how many did not."""
    shown = 0
    for block in blocks:
        note_room = 200
        if len(out) + len(block) + note_room > limit:
            break
        out += block
        shown += 1
    if shown < len(blocks):
        out += (f"\n_{len(blocks) - shown} of {len(blocks)} {what} are not shown to keep this comment under "
                f"{limit:,} characters; run `{command}` for all of them._\n")
    return out


def _destroyed(change: Change) -> list[str]:
    """What a change destroys, as the warning names it."""
    if change.replacements:
        return [f"{part.label} ({', '.join(part.old_ids)})" for part in change.replacements]
    if change.action in (Action.DELETE, Action.REPLACE, Action.CREATE_THEN_DELETE):
        return [str(change.address)]
    return []


def _note_line(note: str) -> str:
    """A note: a line of a unified diff keeps its own mark in column one; a warning gets "!"; prose is context."""
    if note[:1] in ("+", "-", " ", "@"):
        return note
    return f"! {note}" if note.startswith("Warning:") else f"  {note}"


def _diff_line(line: str) -> str:
    """Put a +, - or ! in column 0, where GitHub's diff highlighting looks for it."""
    match = re.match(r"^\s*(-/\+|\+/-|[+~-])(\s|$)", line)
    symbol = match.group(1) if match else ""
    mark = symbol if symbol in ("+", "-") else ("!" if symbol else " ")
    return mark + line[1:]

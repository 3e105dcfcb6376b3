"""The ``recon`` command line: parse, call the engine, render, exit code. No logic here."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from typer.core import TyperGroup, TyperOption

from . import __version__, planfile, scratch
from .apply import Outcome
from .drift import report as drift_report
from .config import read_text
from .engine import Workspace
from .errors import ReconError
from .imagebuild.servo import EFFECTIVE_PATH
from .interrupts import EXIT_INTERRUPTED, Interrupted, Signals, StopToken, exit_now
from .plan import Action, Change, Plan
from .render import json_out, text
from .render.markdown import render_markdown
from .state.local import write_atomic
from .state.lock import LockInfo
from .state.model import State
from .terminal import LogLines, Terminal
from .waits import parse_duration

signals = Signals()


class _Group(TyperGroup):
    """Typer would turn Ctrl-C outside a command's own handling into a silent exit 130: say it."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted{' by ' + signals.received if signals.received else ''}") from None


def _flags_take_no_value() -> None:
    """Recent typers print ``<bool>`` in help beside a flag, which takes no value: print nothing there.
    (typer builds its options itself, so this adjusts its option class rather than a subclass.)"""
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_flags_take_no_value()


#: The base of click's usage errors, in the click typer runs on (recent typers carry their own copy).
UsageError = next(base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException")

EXIT_CODES = ("Exit codes: 0 success, or nothing to do; 1 any error, usage errors included; "
              "2 changes (plan --detailed-exitcode) or drift (drift); 130 interrupted (Ctrl-C, SIGTERM).")

app = typer.Typer(
    name="recon",
    cls=_Group,
    help="Keep a Eucalyptus (or AWS-compatible) cloud in the state a TOML file describes.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
state_app = typer.Typer(help="Inspect the state recon keeps.", no_args_is_help=True)
app.add_typer(state_app, name="state")

term = Terminal()


class Format(str, Enum):
    text = "text"
    json = "json"


class LockChoice(str, Enum):
    true = "true"
    false = "false"


class PlanFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="RECON_CONFIG",
                                         help="The desired-state file.", show_default=True)]
TargetOpt = Annotated[Optional[list[str]], typer.Option(
    "--target", "-t", help="Limit to this address (KIND.NAME) and what it depends on; repeatable.")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="Print cloud calls and seconds per phase (stderr).")]


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


LockTimeoutOpt = Annotated[Optional[float], typer.Option(
    "--lock-timeout", metavar="DURATION", parser=_duration,
    help="Wait this long (30s, 2m, 1h) for a state lock another run holds, instead of failing at once.")]
AllowOtherCloudOpt = Annotated[bool, typer.Option(
    "--allow-other-cloud", help="Plan even when the state was written for another cloud or account (another "
                                "front end or account than the sourced credentials reach): its resources then "
                                "look gone and are planned anew here, and the state records this cloud on its "
                                "next write. Without it, recon refuses, naming both clouds.")]
DEFAULT_CONFIG = Path("recon.toml")


def _report(address: str, message: str) -> None:
    """Long local work (reading a base image) says what it is doing, on stderr."""
    term.info(f"{address}: {message}…")


def _fail(exc: ReconError) -> None:
    term.error(str(exc))
    raise typer.Exit(exc.exit_code)


def _print_stats(ws: Workspace) -> None:
    stats = ws.stats.as_dict()
    phases = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in stats["phases"].items())
    term.info(f"stats: {stats['calls']} cloud calls ({stats['retries']} retried); {phases}")
    for operation, count in sorted(stats["operations"].items()):
        term.info(f"stats:   {operation} {count}")


@app.command()
def validate(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Check the desired-state file without touching the cloud."""
    try:
        ws = Workspace.open(config)
        ws.settings()  # checks [cloud] without connecting
    except ReconError as exc:
        _fail(exc)
    counts: dict[str, int] = {}
    for address in ws.stack.resources:
        counts[address.kind] = counts.get(address.kind, 0) + 1
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no resources"
    term.line(f"{config}: valid (stack {ws.stack.name}: {detail}).")


@app.command()
def plan(
    config: ConfigOpt = DEFAULT_CONFIG,
    format: Annotated[PlanFormat, typer.Option("--format", "-f",
                                               help="text, json, or markdown (a pull-request comment).")]
        = PlanFormat.text,
    out: Annotated[Optional[Path], typer.Option("--out", help="Save the plan for `recon apply FILE`.")] = None,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error.")] = False,
    target: TargetOpt = None,
    stats: StatsOpt = False,
    lock_timeout: Annotated[Optional[float], typer.Option(
        "--lock-timeout", metavar="DURATION", parser=_duration,
        help="Take the state lock while planning, waiting this long (30s, 2m) for a running apply to "
             "finish. Without it, plan takes no lock.")] = None,
    allow_other_cloud: AllowOtherCloudOpt = False,
) -> None:
    """Show what apply would change, attribute by attribute."""
    try:
        ws = Workspace.open(config, warn=term.warn, report=_report, lock_timeout=lock_timeout or 0.0)
        with ws.backend.lock("plan") if lock_timeout is not None else nullcontext():
            state = ws.backend.read()
            the_plan = ws.plan(state, target or [], allow_other_cloud=allow_other_cloud)
        if out is not None:
            planfile.save(out, the_plan, ws.stack, state, str(config), allow_other_cloud=allow_other_cloud)
    except ReconError as exc:
        _fail(exc)
    if format is PlanFormat.json:
        term.write(json_out.dumps(json_out.plan_document(the_plan)))
    elif format is PlanFormat.markdown:
        term.write(render_markdown(the_plan))
    else:
        term.write(text.render_plan(the_plan, color=term.color))
        if out is not None:
            term.line(f"Saved the plan to {out}; `recon apply {out}` applies exactly these changes.")
    if stats:
        _print_stats(ws)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


def _progress(event: str, change: Change, outcome: Outcome | None) -> None:
    verbs = {Action.CREATE: "creating", Action.UPDATE: "updating", Action.DELETE: "destroying",
             Action.REPLACE: "replacing", Action.CREATE_THEN_DELETE: "replacing"}
    if event == "start":
        term.info(f"{change.address}: {verbs.get(change.action, 'applying')}…")
    elif outcome is not None:
        if outcome.status in ("done", "no-op", "interrupted"):
            term.info(f"{change.address}: {outcome.status} after {outcome.seconds:.1f}s")
        else:
            term.info(f"{change.address}: {outcome.status}")


def _confirm(the_plan) -> None:
    """Ask for 'yes' on the terminal, naming the stack and cloud; anything else cancels (exit 1), Ctrl-C too
    (exit 130)."""
    if not term.interactive:
        term.error("no terminal to confirm on: run `recon plan` to review, then `recon apply --auto-approve` "
                   "(or save the plan with `recon plan --out FILE` and run `recon apply FILE`)")
        raise typer.Exit(1)
    try:
        approved = term.confirm(f"Do you want to perform these actions on stack {the_plan.stack} in cloud "
                                f"{the_plan.cloud.describe()}?")
    except KeyboardInterrupt:
        term.line("Apply cancelled.")
        raise typer.Exit(EXIT_INTERRUPTED)
    if not approved:
        term.line("Apply cancelled.")
        raise typer.Exit(1)


def _addresses(outcomes: list[Outcome]) -> str:
    return ", ".join(str(outcome.address) for outcome in outcomes)


def _stopping(running: list[Change], stop: StopToken) -> None:
    """The first Ctrl-C or SIGTERM while changes run, or the state lock lost."""
    if stop.error is not None:
        waiting = f"; waiting for the {len(running)} still running, each stopped at its next cloud change: " \
                  f"{', '.join(change.label for change in running)}" if running else ""
        term.warn(f"{stop.error.message}: starting no new changes{waiting}")
        return
    reason = signals.received or "stop"
    if not running:
        term.warn(f"interrupted ({reason}): starting no new changes")
        return
    term.warn(f"interrupted ({reason}): starting no new changes; waiting for the {len(running)} still running: "
              f"{', '.join(change.label for change in running)}. Press Ctrl-C again (or send SIGTERM again) to abandon them: recon then exits "
              "at once and the next apply finishes them.")


def _outcome_lines(outcomes: list[Outcome]) -> None:
    done = [o for o in outcomes if o.status in ("done", "no-op")]
    unsaved = [o for o in outcomes if o.status == "unsaved"]
    not_done = [o for o in outcomes if o.status not in ("done", "no-op", "unsaved")]
    term.line(f"Done: {_addresses(done) or 'nothing'}.")
    if unsaved:
        term.line(f"Made in the cloud but not in the state: {_addresses(unsaved)}.")
    term.line("Not done: " + (", ".join(f"{o.address} ({o.status})" for o in not_done) or "nothing") + ".")


def _abandoned(outcomes: list[Outcome], ws: Workspace) -> None:
    """The second Ctrl-C or SIGTERM: recon exits right after this, the running changes with it."""
    running = [o for o in outcomes if o.status == "abandoned"]
    term.line("")
    if running:
        term.error(f"abandoned {len(running)} running change(s): {_addresses(running)}; each may have been made in "
                   "part: the next apply reads the cloud and finishes it")
    _outcome_lines(outcomes)
    term.line(f"Apply abandoned: state saved up to the last completed change; {ws.backend.lock_after_exit()}.")


def _interrupted(outcomes: list[Outcome], stop: StopToken) -> None:
    """The first Ctrl-C or SIGTERM, once the running changes are over: say what was done, exit 130.
    Or the state lock was lost: say so, and what was done while it was held, exit 1."""
    term.line("")
    for outcome in outcomes:
        if outcome.status in ("interrupted", "failed", "skipped", "unsaved"):
            term.error(outcome.error or f"{outcome.address}: {outcome.status}")
    _outcome_lines(outcomes)
    if stop.error is not None:
        term.line(f"Apply stopped: {stop.error.message}. It made no cloud change and wrote no state after that: "
                  "the run that took the lock over owns the state. Once it is done, run plan to see what is left.")
        raise typer.Exit(stop.error.exit_code)
    term.line(f"Apply interrupted ({stop.reason}): state saved, lock released. Run apply again to finish.")
    raise typer.Exit(EXIT_INTERRUPTED)


def _failed(outcomes: list[Outcome], failures: list[Outcome]) -> NoReturn:
    """Some changes did not complete: each one's error, then exactly what reached the cloud and the state."""
    term.line("")
    for outcome in failures:
        if outcome.error:
            term.error(outcome.error)
    _outcome_lines(outcomes)
    unsaved = [o for o in failures if o.status == "unsaved"]
    if unsaved:
        term.line(f"Apply failed: the state could not be written, so no further change was started; "
                  f"{len(unsaved)} change(s) reached the cloud but are not in the state. Make the state writable "
                  "and run apply again: it finds them in the cloud.")
    else:
        term.line(f"Apply failed: {len(failures)} of {len(outcomes)} changes did not complete; the state holds "
                  "every change that did. Fix the cause and run apply again.")
    raise typer.Exit(1)


@app.command()
def apply(
    plan_file: Annotated[Optional[Path], typer.Argument(
        help="A plan saved by `recon plan --out`: apply exactly it, without asking.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", envvar="RECON_CONFIG",
                                                   help="The desired-state file [default: recon.toml, "
                                                        "or the one the saved plan names].")] = None,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")] = False,
    parallelism: Annotated[int, typer.Option("--parallelism", min=1, max=256,
                                             help="Changes made at once.")] = 10,
    target: TargetOpt = None,
    stats: StatsOpt = False,
    lock: Annotated[LockChoice, typer.Option("--lock", help="Lock the state (false: run unlocked, "
                                             "for an object store without conditional writes).")] = LockChoice.true,
    lock_timeout: LockTimeoutOpt = None,
    allow_other_cloud: AllowOtherCloudOpt = False,
) -> None:
    """Make the cloud match the file: plan, confirm, apply in dependency order.

    The first Ctrl-C (or SIGTERM) starts no new change, waits for the running ones, saves the
    state and exits 130; a second one abandons them and exits at once.
    """
    if plan_file is not None and target:
        term.error("--target cannot be combined with a saved plan (the plan already says what to change)")
        raise typer.Exit(1)
    try:
        saved = planfile.load(plan_file) if plan_file is not None else None
        ws = Workspace.open(config or (Path(saved.config) if saved else DEFAULT_CONFIG), warn=term.warn,
                            report=_report, lock_timeout=lock_timeout or 0.0)
        if lock is LockChoice.false:
            term.warn("running without a state lock (--lock=false): make sure nobody else applies this stack")
            ws.unlocked()
        with ws.backend.lock("apply"):
            state = ws.backend.read()
            the_plan = _plan_to_apply(ws, state, saved, target or [], allow_other_cloud)
            term.write(text.render_plan(the_plan, color=term.color))
            if the_plan.has_changes and saved is None and not auto_approve:
                _confirm(the_plan)
            with signals.graceful() as stop:
                outcomes = ws.apply(the_plan, state, parallelism=parallelism, progress=_progress,
                                    report=lambda address, message: term.info(f"{address}: {message}"),
                                    stop=stop, stopping=lambda running: _stopping(running, stop),
                                    abandon=lambda outcomes: _abandoned(outcomes, ws))
    except ReconError as exc:
        _fail(exc)
    if stats:
        _print_stats(ws)
    _apply_ended(the_plan, outcomes, stop)


def _plan_to_apply(ws: Workspace, state: State, saved: planfile.SavedPlan | None, target: list[str],
                   allow_other_cloud: bool) -> Plan:
    """The plan made now; for a saved plan, made from the same inputs and cloud, and the same as it."""
    if saved is not None:
        planfile.check_inputs(saved, ws.stack, state)
        planfile.check_cloud(saved, ws.identity())
    the_plan = ws.plan(state, target,
                       allow_other_cloud=allow_other_cloud or (saved is not None and saved.allow_other_cloud))
    if saved is not None:
        planfile.check_same(saved, the_plan)
    return the_plan


def _apply_ended(the_plan: Plan, outcomes: list[Outcome], stop: StopToken) -> None:
    """Say how the apply ended; exit non-zero if it was stopped or a change did not complete."""
    if stop.stopped:
        _interrupted(outcomes, stop)
    failures = [o for o in outcomes if o.status not in ("done", "no-op")]
    counts = the_plan.summary()
    if failures:
        _failed(outcomes, failures)
    if the_plan.has_changes:
        term.line(f"Apply complete! Resources: {counts['add']} added, {counts['change']} changed, "
                  f"{counts['destroy']} destroyed.")


@app.command()
def drift(
    config: ConfigOpt = DEFAULT_CONFIG,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
    stats: StatsOpt = False,
) -> None:
    """Report whether the cloud still matches the file: exit 0 in sync, 2 drift, 1 error.

    Read-only; takes no lock, so it is safe from cron while others apply.
    """
    try:
        ws = Workspace.open(config, report=_report)
        state = ws.backend.read()
        the_plan = ws.plan(state)
    except ReconError as exc:
        _fail(exc)
    found = drift_report(the_plan, ws.stack.drift_ignore)
    if format is Format.json:
        term.write(json_out.dumps(json_out.drift_document(found)))
    else:
        term.write(text.render_drift(found, color=term.color))
    if stats:
        _print_stats(ws)
    raise typer.Exit(0 if found.in_sync else 2)


@app.command()
def show(
    config: ConfigOpt = DEFAULT_CONFIG,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
) -> None:
    """Show the state: every managed resource with its id and last-applied attributes."""
    try:
        ws = Workspace.open(config)
        state = ws.backend.read()
    except ReconError as exc:
        _fail(exc)
    if format is Format.json:
        term.write(state.dumps())
        return
    term.line(f"# stack {state.stack}: serial {state.serial}, lineage {state.lineage} ({ws.backend.describe()})")
    if not state.resources:
        term.line("(no resources in state)")
    for address in sorted(state.resources):
        entry = state.resources[address]
        term.line("")
        term.line(f"{address}  (id {entry.id})")
        for key, value in sorted(entry.attrs.items()):
            term.line(f"    {key} = {json.dumps(value)}")


@state_app.command("list")
def state_list(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """List the addresses in state, one per line."""
    try:
        ws = Workspace.open(config)
        state = ws.backend.read()
    except ReconError as exc:
        _fail(exc)
    for address in sorted(state.resources):
        term.line(str(address))


@app.command("force-unlock")
def force_unlock(lock_id: Annotated[str, typer.Argument(help="The lock id an error message named.")],
                 config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Remove a stuck state lock (only when its holder is gone)."""
    try:
        ws = Workspace.open(config)
        holder = ws.backend.force_unlock(lock_id)
    except ReconError as exc:
        _fail(exc)
    if holder == LockInfo.unreadable():
        term.line("Removed a damaged (unreadable) lock file that no process held.")
    else:
        term.line(f"Lock {holder.id} removed (it was held by {holder.who} for {holder.operation}).")


@app.command()
def sandbox(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free one).")] = 8773,
    dir: Annotated[Path, typer.Option("--dir", help="Where to write eucarc and certificates.")] = Path(".recon-sandbox"),
    zones: Annotated[str, typer.Option("--zones", help="Comma-separated availability zone names.")]
        = "ViciousLiesAndDangerousRumors",
    eucalyptus_version: Annotated[str, typer.Option("--eucalyptus-version", help="4.0 or 4.2 property names.")]
        = "4.0",
    account_id: Annotated[str, typer.Option("--account-id", help="The admin account's number (12 digits); "
                                            "two sandboxes of different accounts are two clouds to recon.")]
        = "123456789012",
) -> None:
    """Serve an embedded Eucalyptus-like cloud on loopback (EC2, S3, ELB, properties).

    Writes DIR/eucarc; `source DIR/eucarc` and recon talks to it like to a real cloud.
    Stops on Ctrl-C or SIGTERM.
    """
    from .sandbox import serve

    raise typer.Exit(serve(dir, port=port, zones=[z for z in zones.split(",") if z],
                           eucalyptus_version=eucalyptus_version, account_id=account_id))


@app.command()
def demo(
    keep: Annotated[Optional[Path], typer.Option("--dir", help="Work here instead of a temporary folder.")] = None,
) -> None:
    """Run the whole story on the embedded sandbox: plan, apply, drift, repair."""
    from .demo import run_demo

    raise typer.Exit(run_demo(term, keep))


@app.command("import")
def import_(
    address: Annotated[str, typer.Argument(help="The address to give it, KIND.NAME.")],
    cloud_id: Annotated[str, typer.Argument(help="What the cloud calls it: a name or an id (docker_hosts: "
                                                 "instance ids, comma-separated; lb_images: emi-… or vN).")],
    config: ConfigOpt = DEFAULT_CONFIG,
    public_key_file: Annotated[Optional[str], typer.Option(
        "--public-key-file", help="keypairs: the public key (the cloud keeps only its fingerprint).")] = None,
    cloud_init: Annotated[Optional[str], typer.Option(
        "--cloud-init", help="docker_hosts: the cloud-config file the instances were launched with.")] = None,
    lock_timeout: LockTimeoutOpt = None,
) -> None:
    """Adopt a live resource: write its block into the file (comments kept) and record it in state."""
    from .importer import import_resource

    try:
        ws = Workspace.open(config, warn=term.warn, lock_timeout=lock_timeout or 0.0)
        imported = import_resource(ws, address, cloud_id, {"public_key_file": public_key_file,
                                                           "cloud_init": cloud_init})
    except ReconError as exc:
        _fail(exc)
    term.line(f"Imported {cloud_id} as {imported}: its block is in {config} and it is recorded in state. "
              "`recon plan` shows no change for it.")


image_app = typer.Typer(help="Load-balancer image revisions, without the cloud.", no_args_is_help=True)
RevisionArg = Annotated[str, typer.Argument(help="The revision, lb_images.NAME.")]
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    address: RevisionArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the image, revision.json and the template diff.")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Build a customized LB image locally (no cloud): for CI on pull requests.

    Also prints, for each load balancer of the file, the HAProxy configuration the image's servo
    will write for it, checked with haproxy -c.
    """
    try:
        revision, effective = Workspace.open(config, report=_report).build_image(address, out)
    except ReconError as exc:
        _fail(exc)
    term.write(revision.template_diff or "(template unchanged from the base image)\n")
    term.line(f"haproxy -c: {revision.haproxy_check.status}")
    for name, found in sorted(effective.items()):
        term.line("")
        term.line(f"# load_balancers.{name}: what servo {revision.servo.version} writes to {EFFECTIVE_PATH} "
                  f"(haproxy -c: {found['check']})")
        term.write(found["config"])
    term.line(f"Built {revision.image} (revision {revision.digest}).")


@image_app.command("effective")
def image_effective(
    address: RevisionArg,
    lb: Annotated[str, typer.Option("--lb", help="A load balancer of the file (load_balancers.NAME).")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Print the HAProxy configuration the revision's servo writes for a load balancer (no cloud).

    That is the file the servo writes to /var/lib/load-balancer-servo/euca_haproxy.conf on the
    load balancer's VMs: the template's global and defaults, then a frontend and a backend per
    listener. Servers are the instances the file names (the servo writes the ones in service, by
    private address). How haproxy -c judged it goes to stderr.
    """
    name = lb.removeprefix("load_balancers.")
    try:
        found = Workspace.open(config, report=_report).effective(address, name)
    except ReconError as exc:
        _fail(exc)
    term.write(found["config"])
    term.info(f"# servo {found['servo']['version']} ({found['servo']['source']}); haproxy -c: {found['check']}")
    for note in found["adaptations"]:
        term.info(f"#   checked with: {note}")
    for skipped in found["skipped"]:
        term.warn(f"the servo leaves out {skipped}")


class ImagesFormat(str, Enum):
    text = "text"
    installer = "installer"
    json = "json"


@app.command()
def images(
    config: ConfigOpt = DEFAULT_CONFIG,
    format: Annotated[ImagesFormat, typer.Option("--format", "-f", help="text (a table), installer (exactly "
                                                 "euca-install-load-balancer --list) or json.")] = ImagesFormat.text,
) -> None:
    """List the installed load-balancer image versions the account can see.

    The enabled one (the image the emi property names) is marked with *; RECON names the stack and
    block that installed it.
    """
    from .render import images as listing
    from .resources.lb_images import enabled_images, installed_images

    try:
        ws = Workspace.open(config)
        found = installed_images(ws.cloud, "images")
        enabled = enabled_images(ws.cloud, "images")
    except ReconError as exc:
        _fail(exc)
    if format is ImagesFormat.json:
        term.write(json_out.dumps(listing.document(found, enabled)))
    elif format is ImagesFormat.installer:
        term.write(listing.installer(found, enabled))
    else:
        term.write(listing.table(found, enabled))


@app.command()
def fmt(
    config: ConfigOpt = DEFAULT_CONFIG,
    check: Annotated[bool, typer.Option("--check", help="Change nothing; exit 1 and show the diff if the "
                                                         "file is not in canonical layout.")] = False,
) -> None:
    """Rewrite the file in its canonical layout, keeping comments (for CI: --check)."""
    import difflib

    from .fmt import format_text

    try:
        original = read_text(config)
        formatted = format_text(original, str(config))
    except ReconError as exc:
        _fail(exc)
    if formatted == original:
        term.line(f"{config}: already formatted.")
        return
    if check:
        term.write("".join(difflib.unified_diff(original.splitlines(True), formatted.splitlines(True),
                                                f"a/{config}", f"b/{config}")))
        term.error(f"{config} is not formatted; run `recon fmt -c {config}`")
        raise typer.Exit(1)
    write_atomic(config, formatted, mode=config.stat().st_mode & 0o777)
    term.line(f"{config}: formatted.")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the desired-state file (for TOML editors such as Taplo)."""
    from .config import TOP_LEVEL
    from .resources import KINDS
    from .schema import document_schema

    term.write(json.dumps(document_schema(TOP_LEVEL, KINDS), indent=2) + "\n")


@app.command()
def version() -> None:
    """Print recon's version."""
    term.line(f"recon {__version__}")


def main() -> None:
    """The ``recon`` entry point: signal handling, and one exit code table (EXIT_CODES)."""
    logger = logging.getLogger("reconciler")  # reconciler.cloud's notes (a call still waiting) reach the terminal
    logger.addHandler(LogLines(term))
    logger.setLevel(logging.INFO)
    scratch.sweep()    # what runs killed with SIGKILL left in TMPDIR
    with signals:
        try:
            code = app(standalone_mode=False)
        except UsageError as exc:   # click's message, but exit 1, not click's 2
            exc.show()
            code = 1
        except typer.Abort:
            term.error("aborted")
            code = 1
        except Interrupted as exc:   # outside an apply's changes: what still runs only reads
            term.error(str(exc))
            exit_now(exc.exit_code)
        except ReconError as exc:
            term.error(str(exc))
            code = exc.exit_code
    sys.exit(code or 0)


if __name__ == "__main__":
    main()

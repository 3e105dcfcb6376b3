"""``recon apply``: make the cloud match the file, and say exactly how the run ended."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from ..engine import Workspace
from ..errors import ReconError
from ..interrupts import EXIT_INTERRUPTED, StopToken
from ..plan import Action, Change, Plan
from ..render import text
from .common import (DEFAULT_CONFIG, AllowOtherCloudOpt, EnvChoice, EnvOpt, LockTimeoutOpt, ReplaceOpt, StatsOpt,
                     TargetOpt, VarOpt, fail, print_stats, report, signals, term)

if TYPE_CHECKING:   # loaded where used: every command loads every command's module
    from .. import planfile
    from ..apply import Outcome
    from ..state.model import State


class LockChoice(str, Enum):
    true = "true"
    false = "false"


AutoApproveOpt = Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")]
ParallelismOpt = Annotated[int, typer.Option("--parallelism", min=1, max=256, help="Changes made at once.")]
LockOpt = Annotated[LockChoice, typer.Option("--lock", help="Lock the state (false: run unlocked, for an object "
                                                            "store without conditional writes).")]


def apply(
    plan_file: Annotated[Optional[Path], typer.Argument(
        help="A plan saved by `recon plan --out`: apply exactly it, without asking.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", envvar="RECON_CONFIG",
                                                   help="The desired-state file [default: recon.toml, "
                                                        "or the one the saved plan names].")] = None,
    env: EnvOpt = None,
    var: VarOpt = None,
    auto_approve: AutoApproveOpt = False,
    parallelism: ParallelismOpt = 10,
    target: TargetOpt = None,
    replace: ReplaceOpt = None,
    stats: StatsOpt = False,
    lock: LockOpt = LockChoice.true,
    lock_timeout: LockTimeoutOpt = None,
    allow_other_cloud: AllowOtherCloudOpt = False,
) -> None:
    """Make the cloud match the file: plan, confirm, apply in dependency order.

    The first Ctrl-C (or SIGTERM) starts no new change, waits for the running ones, saves the
    state and exits 130; a second one abandons them and exits at once.
    """
    if plan_file is not None and (target or replace):
        term.error("--target and --replace cannot be combined with a saved plan (the plan already says what to "
                   "change)")
        raise typer.Exit(1)
    from .. import planfile

    try:
        saved = planfile.load(plan_file) if plan_file is not None else None
    except ReconError as exc:
        fail(exc)
    request = saved.request if saved else planfile.Request(targets=tuple(target or ()), replace=tuple(replace or ()))
    carry_out(config or (Path(saved.config) if saved else DEFAULT_CONFIG),
              EnvChoice.given(env or (saved.env if saved else None), var), request, saved,
              auto_approve=auto_approve, parallelism=parallelism, stats=stats, lock=lock, lock_timeout=lock_timeout,
              allow_other_cloud=allow_other_cloud)


def carry_out(config: Path, choice: EnvChoice, request: planfile.Request, saved: planfile.SavedPlan | None, *,
              auto_approve: bool, parallelism: int, stats: bool, lock: LockChoice, lock_timeout: float | None,
              allow_other_cloud: bool) -> None:
    """What apply and destroy do: plan (or check the saved plan), confirm, apply, say how it ended."""
    try:
        ws = Workspace.open(config, choice, warn=term.warn, report=report, lock_timeout=lock_timeout or 0.0)
        if lock is LockChoice.false:
            term.warn("running without a state lock (--lock=false): make sure nobody else applies this stack")
            ws.unlocked()
        with ws.backend.lock("destroy" if request.destroy else "apply"):
            state = ws.backend.read()
            the_plan = _plan_to_apply(ws, state, saved, request, allow_other_cloud)
            term.write(text.render_plan(the_plan, color=term.color))
            if the_plan.has_changes and saved is None and not auto_approve:
                _confirm(the_plan)
            with signals.graceful() as stop:
                outcomes = ws.apply(the_plan, state, parallelism=parallelism, progress=_progress,
                                    report=lambda address, message: term.info(f"{address}: {message}"),
                                    stop=stop, stopping=lambda running: _stopping(running, stop),
                                    abandon=lambda outcomes: _abandoned(outcomes, ws))
    except ReconError as exc:
        fail(exc)
    if stats:
        print_stats(ws)
    _apply_ended(the_plan, outcomes, stop)


def _plan_to_apply(ws: Workspace, state: State, saved: planfile.SavedPlan | None, request: planfile.Request,
                   allow_other_cloud: bool) -> Plan:
    """The plan made now; for a saved plan, made from the same inputs and cloud, and the same as it."""
    from .. import planfile

    if saved is not None:
        planfile.check_inputs(saved, ws.stack, state)
        planfile.check_cloud(saved, ws.identity())
    the_plan = ws.plan(state, request.targets, replace=request.replace, destroy=request.destroy,
                       allow_other_cloud=allow_other_cloud or (saved is not None and saved.allow_other_cloud))
    if saved is not None:
        planfile.check_same(saved, the_plan)
    return the_plan


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


def _confirm(the_plan: Plan) -> None:
    """Ask for 'yes' on the terminal, naming the stack and cloud; anything else cancels (exit 1), Ctrl-C too
    (exit 130)."""
    if not term.interactive:
        term.error("no terminal to confirm on: run `recon plan` to review, then `recon apply --auto-approve` "
                   "(or save the plan with `recon plan --out FILE` and run `recon apply FILE`)")
        raise typer.Exit(1)
    question = (f"Do you really want to destroy these resources of stack {the_plan.stack} in cloud "
                f"{the_plan.cloud.describe()}? There is no undo." if the_plan.destroy else
                f"Do you want to perform these actions on stack {the_plan.stack} in cloud {the_plan.cloud.describe()}?")
    cancelled = "Destroy cancelled." if the_plan.destroy else "Apply cancelled."
    try:
        approved = term.confirm(question)
    except KeyboardInterrupt:
        term.line(cancelled)
        raise typer.Exit(EXIT_INTERRUPTED)
    if not approved:
        term.line(cancelled)
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


def _apply_ended(the_plan: Plan, outcomes: list[Outcome], stop: StopToken) -> None:
    """Say how the apply ended; exit non-zero if it was stopped or a change did not complete."""
    if stop.stopped:
        _interrupted(outcomes, stop)
    failures = [o for o in outcomes if o.status not in ("done", "no-op")]
    counts = the_plan.summary()
    if failures:
        _failed(outcomes, failures)
    if the_plan.has_changes:
        term.line(f"{'Destroy' if the_plan.destroy else 'Apply'} complete! Resources: {counts['add']} added, "
                  f"{counts['change']} changed, {counts['destroy']} destroyed.")


def _interrupted(outcomes: list[Outcome], stop: StopToken) -> NoReturn:
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

"""``recon destroy``: delete everything the state holds, as apply would once every block left the file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .apply import AutoApproveOpt, LockChoice, LockOpt, ParallelismOpt, carry_out
from .common import (DEFAULT_CONFIG, AllowOtherCloudOpt, ConfigOpt, EnvChoice, EnvOpt, LockTimeoutOpt, StatsOpt,
                     VarOpt)

TargetOpt = Annotated[Optional[list[str]], typer.Option(
    "--target", "-t", help="Destroy only this address (KIND.NAME) and what depends on it; repeatable.")]


def destroy(
    config: ConfigOpt = DEFAULT_CONFIG,
    env: EnvOpt = None,
    var: VarOpt = None,
    auto_approve: AutoApproveOpt = False,
    parallelism: ParallelismOpt = 10,
    target: TargetOpt = None,
    stats: StatsOpt = False,
    lock: LockOpt = LockChoice.true,
    lock_timeout: LockTimeoutOpt = None,
    allow_other_cloud: AllowOtherCloudOpt = False,
) -> None:
    """Delete everything in state, dependents first: plan, confirm, apply (`recon plan --destroy` to review).

    What a kind keeps when its block leaves the file (properties, `existing = true` groups' own
    rules) is treated so here too. With --target: those and what depends on them. The
    empty-read guard and the cloud check apply as for apply.
    """
    from .. import planfile

    carry_out(config, EnvChoice.given(env, var), planfile.Request(targets=tuple(target or ()), destroy=True), None,
              auto_approve=auto_approve, parallelism=parallelism, stats=stats, lock=lock, lock_timeout=lock_timeout,
              allow_other_cloud=allow_other_cloud)

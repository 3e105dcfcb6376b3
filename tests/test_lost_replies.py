"""Lost replies, one mutating call at a time (issue 12): the cloud acted on the call, but its reply
never reached recon (a connection reset after the cloud answered). recon retries; the retry must
find what the first attempt made rather than make it again, and the apply succeed. Every k of the mixed stack of ``test_crash`` gets its own fresh sandbox; each run ends
with every resource exactly once and a clean plan.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultproxy import FaultProxy
from test_crash import MUTATIONS, STACK, WAIT, assert_exactly_the_file, read_state, write_stack

from e2e import copy_examples, recon

RETRY = {"RECON_RETRY_ATTEMPTS": "5", "RECON_RETRY_INITIAL": "0.02", "RECON_RETRY_MAX": "0.1"}


@pytest.mark.parametrize("k", range(1, MUTATIONS + 1))
def test_lost_reply_of_mutation(sandbox, tmp_path: Path, k: int) -> None:
    work = copy_examples(tmp_path / "repo")
    write_stack(work)
    proxy = FaultProxy(sandbox.url, lose_reply_of=k)
    try:
        run = recon({**proxy.env(sandbox.env), **WAIT, **RETRY}, "apply", "-c", STACK, "--auto-approve", cwd=work)
    finally:
        proxy.close()
    assert proxy.lost is not None, f"the apply made only {len(proxy.mutations)} mutating calls"
    assert "Traceback" not in run.both, run.both
    assert run.code == 0, f"lost reply of {proxy.lost}:\n{run.both}"
    assert_exactly_the_file({**sandbox.env, **WAIT}, work, read_state(work))

"""The steps every command is made of: load, connect, read live, plan, apply.

The CLI strings these together; nothing here prints.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator, Mapping

from .addresses import Address, SubAddress
from .cloud import CallStats, CloudSettings, resolve_settings
from .config import Stack, load, load_every
from .environments import EnvChoice
from .errors import ConfigError, PlanError
from .interrupts import StopToken
from .resources import KINDS
from .resources.abilities import prepare
from .resources.base import CloudContext

if TYPE_CHECKING:   # what only reading, planning and applying need is imported there (not by `recon validate`)
    from .apply import Abandon, Outcome, Progress, Stopping
    from .cloud import Cloud
    from .identity import CloudIdentity
    from .plan import Plan
    from .state import Backend
    from .state.model import State

Live = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Workspace:
    """One desired file with its state backend and (lazily) its cloud connection."""

    stack: Stack
    env: Mapping[str, str]
    stats: CallStats = field(default_factory=CallStats)
    #: Where warnings go (a lock taken over, a lease lost).
    warn: Callable[[str], None] = lambda message: None
    #: Where long local work says what it is doing: report(address, message).
    report: Callable[[str, str], None] = lambda address, message: None
    #: Seconds to wait for a state lock another run holds (``--lock-timeout``; 0: fail at once).
    lock_timeout: float = 0.0
    #: The environment of the file and the --var values it was loaded with (a reload uses them).
    choice: EnvChoice = field(default_factory=EnvChoice)
    _cloud: Cloud | None = None
    _backend: Backend | None = None
    _identity: CloudIdentity | None = None

    @classmethod
    def open(cls, path: Path | str, choice: EnvChoice | None = None, env: Mapping[str, str] | None = None,
             warn: Callable[[str], None] | None = None,
             report: Callable[[str, str], None] | None = None, lock_timeout: float = 0.0) -> "Workspace":
        """The workspace of the file at ``path``, as the environment ``choice`` names, with its vars;
        ``env`` is the process environment (credentials, RECON_VAR_…; default: this process's)."""
        env = dict(os.environ if env is None else env)
        choice = choice or EnvChoice()
        return cls(load(path, choice, env), env, warn=warn or (lambda message: None),
                   report=report or (lambda address, message: None), lock_timeout=lock_timeout, choice=choice)

    @classmethod
    def open_every(cls, path: Path | str, choice: EnvChoice | None = None,
                   env: Mapping[str, str] | None = None) -> list["Workspace"]:
        """One workspace per environment of the file (the one ``choice`` names, if it names one)."""
        env = dict(os.environ if env is None else env)
        choice = choice or EnvChoice()
        return [cls(stack, env, choice=replace(choice, env=stack.env)) for stack in load_every(path, choice, env)]

    def reload(self) -> Stack:
        """The file loaded again, as this workspace loaded it (after ``recon import`` edited it)."""
        return load(self.stack.path, self.choice, self.env)

    @property
    def backend(self) -> Backend:
        """The state backend the file's [state] table names (remote ones use the cloud)."""
        if self._backend is None:
            from .state import backend_for

            self._backend = backend_for(self.stack, lambda: self.cloud, self.warn, self.lock_timeout)
        return self._backend

    def unlocked(self) -> None:
        """Run without a state lock (--lock=false)."""
        from .state import Unlocked

        self._backend = Unlocked(self.backend)

    def settings(self) -> CloudSettings:
        """The cloud connection settings ([cloud] table and environment); no network."""
        try:
            return resolve_settings(self.stack.cloud, self.env, self.stack.base_dir)
        except ConfigError as exc:
            if exc.where and exc.where.startswith("[cloud]"):
                exc.where = f"{self.stack.source}: {exc.where}"
            raise

    @property
    def cloud(self) -> Cloud:
        if self._cloud is None:
            from .cloud import Cloud, RetryPolicy  # botocore, only for the commands that call the cloud
            from .crashpoints import CrashPoints

            self._cloud = Cloud(self.settings(), self.env, stats=self.stats, retry=RetryPolicy.from_env(self.env),
                                after_call=CrashPoints.from_env(self.env).after)  # test-only crash points
        return self._cloud

    def identity(self) -> CloudIdentity:
        """The cloud and account this run talks to (at most one cheap call, once)."""
        if self._identity is None:
            from .identity import resolve as resolve_identity

            self._identity = resolve_identity(self.settings(), self.env, self._default_group_owner)
        return self._identity

    def _default_group_owner(self) -> str:
        """The account that owns the ``default`` security group (every EC2 account has one)."""
        groups = self.cloud.paginate("ec2", "describe_security_groups", "SecurityGroups", where="cloud identity",
                                     Filters=[{"Name": "group-name", "Values": ["default"]}])
        return next((str(g["OwnerId"]) for g in groups if g.get("OwnerId")), "")

    def check_cloud(self, state: State, *, allow_other: bool = False) -> CloudIdentity:
        """Refuse a state written for another cloud or account (unless ``allow_other``); the state
        then records this cloud, which its next write keeps."""
        from .identity import check as check_identity

        current = self.identity()
        check_identity(state.cloud, current, stack=self.stack.name, where=self.backend.describe(),
                       allow_other=allow_other)
        state.cloud = current
        return current

    def parse_targets(self, targets: Collection[str], state: State) -> list[Address]:
        out = []
        known = set(self.stack.resources) | set(state.resources)
        for text in targets:
            try:
                address = Address.parse(text)
            except ValueError as exc:
                raise PlanError(str(exc), where="--target")
            if address not in known:
                from .schema import nearest
                guess = nearest(text, [str(a) for a in known])
                raise PlanError(f"{text} is neither in the file nor in state", where="--target",
                                hint=f"did you mean {guess!r}?" if guess else None)
            out.append(address)
        return out

    def parse_replace(self, texts: Collection[str]) -> list[SubAddress]:
        """``--replace`` addresses: blocks of the file, or parts of one (``docker_hosts.docker[1]``)."""
        out = []
        for text in texts:
            try:
                request = SubAddress.parse(text, self.stack.resources)
            except ValueError as exc:
                raise PlanError(str(exc), where="--replace")
            if request.address not in self.stack.resources:
                from .schema import nearest
                guess = nearest(text, [str(a) for a in self.stack.resources])
                raise PlanError(f"{text} is not a block of the file", where="--replace",
                                hint=f"did you mean {guess!r}?" if guess else None)
            out.append(request)
        return out

    def read_live(self, state: State) -> Live:
        """Live attributes of every kind, read concurrently, one batch per kind."""
        wanted: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for address, spec in self.stack.resources.items():
            wanted[address.kind][address.name] = spec.attrs
        for address, entry in state.resources.items():
            if address.kind in wanted:
                wanted[address.kind].setdefault(entry.id, None)
        needed = {other for kind in KINDS if wanted[kind] for other in KINDS[kind].traits.needs_live}
        # kinds that tag what recon makes are always read: drift reports their unmanaged resources
        kinds = [k for k in KINDS if wanted[k] or k in needed or KINDS[k].traits.owner_tags]
        ctx = self.context()
        pool = ThreadPoolExecutor(max_workers=max(1, len(kinds)), thread_name_prefix="recon-read")
        try:
            with self.stats.phase("read"):
                futures = {kind: pool.submit(KINDS[kind].read, ctx, wanted[kind]) for kind in kinds}
                return {kind: future.result() for kind, future in futures.items()}
        finally:
            # not waiting: reads change nothing, and Ctrl-C while reading must not wait for a slow cloud
            pool.shutdown(wait=False, cancel_futures=True)

    def plan(self, state: State, targets: Collection[str] = (), *, allow_other_cloud: bool = False,
             replace: Collection[str] = (), destroy: bool = False) -> Plan:
        """The plan for the state (``destroy``: of deleting what it holds; ``replace``: with those
        addresses replaced); refused before the cloud is read when the state is another cloud's."""
        addresses = self.parse_targets(targets, state)
        replacing = self.parse_replace(replace)
        # local work first: a bad base image or template is refused before the cloud is called
        with self.stats.phase("prepare"):
            stack = self.stack if destroy else self.prepared()   # a destroy builds nothing
        cloud = self.check_cloud(state, allow_other=allow_other_cloud)
        live = self.read_live(state)
        from .planner import make_plan

        with self.stats.phase("diff"):
            plan = make_plan(stack, live, state, targets=addresses, replacing=replacing, destroy=destroy)
            for kind in KINDS.values():
                kind.review(plan, live)
            plan.cloud = cloud
            return plan

    def prepared(self) -> Stack:
        """The stack with each kind's local preparation done (e.g. LB image revisions rendered), then
        what needs the file's other prepared blocks (each kind's ``prepare_stack``)."""
        base_dir = self.stack.base_dir
        with self.naming_file():
            resources = {address: replace(spec, attrs=prepare(KINDS[address.kind], address.name, spec.attrs, base_dir,
                                                               report=self.report))
                         for address, spec in self.stack.resources.items()}
            prepared = {address: spec.attrs for address, spec in resources.items()}
            resources = {address: replace(spec, attrs=KINDS[address.kind].prepare_stack(address.name, spec.attrs,
                                                                                          prepared, base_dir))
                         for address, spec in resources.items()}
        return replace(self.stack, resources=resources)

    @contextmanager
    def naming_file(self) -> Iterator[None]:
        """Config errors from local work on the file's blocks name the desired file, as load's do."""
        try:
            yield
        except ConfigError as exc:
            if exc.where and not exc.where.startswith(str(self.stack.path)):
                exc.where = f"{self.stack.source}: {exc.where}"
            raise

    def context(self, report: Callable[[str, str], None] | None = None, stop: StopToken | None = None) -> CloudContext:
        return CloudContext(self.cloud, self.stack.name, self.stack.base_dir,
                            report or (lambda address, message: None), self.env, stop or StopToken())

    def apply(self, plan: Plan, state: State, *, parallelism: int, progress: Progress | None = None,
              report: Callable[[str, str], None] | None = None, stop: StopToken | None = None,
              stopping: Stopping | None = None, abandon: Abandon | None = None) -> list[Outcome]:
        """Apply the plan; ``stop`` (Ctrl-C) ends it early, see :class:`~reconciler.apply.Applier`.

        Every cloud change is fenced: it is made only while this run still holds the state lock;
        once it does not, the apply stops as at Ctrl-C, and ``stop.error`` says why.
        """
        from .apply import Applier
        from .state.lock import LockLost

        ctx = self.context(report, stop)

        def stopping_if_lost(action: Callable[[], None]) -> None:
            try:
                action()
            except LockLost as lost:
                ctx.stop.fail(lost)
                raise

        def fence(operation: str) -> None:
            stopping_if_lost(lambda: self.backend.check_held(operation))

        def save(state: State) -> None:
            stopping_if_lost(lambda: self.backend.write(state))

        with self.stats.phase("apply"), self.cloud.fenced(fence):
            return Applier(plan, state, save, ctx, parallelism=parallelism, progress=progress,
                           stopping=stopping, abandon=abandon).run()

"""The test suite's fork servers: ``python tests/zygote.py SOCKET MODULE``.

Starting ``python -m reconciler`` costs most of a second of CPU (botocore, typer, rich) and a
sandbox child (moto) three; the suite starts thousands. This process imports those modules once,
then for each request forks a child that *is* a fresh ``python -m MODULE ARGS`` from that point on:
its own pid, working folder, environment, standard streams (passed over the socket), default
signal handlers, exit code. A test kills it with SIGKILL or interrupts it with SIGINT exactly as
it would an exec'd one; the zygote reports how it ended.

One fork server serves one module of PRELOADED; anything else the client runs with ``subprocess``
itself (see ``forkserver.py``). A zygote stops when its parent (the pytest process) is gone.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import runpy
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import traceback

#: The modules a child may run with ``-m``, each served by its own fork server: a fork costs about
#: 0.1 ms of CPU per MiB the server holds (page tables copied, then torn down at the child's exit),
#: and recon's commands need 90 MiB of what a sandbox's 230 do not (moto and its data).
PRELOADED = ("reconciler", "reconciler.sandbox")
MAX_MESSAGE = 1 << 20
_RECON_IMPORTS = (
    "reconciler.cli", "reconciler.engine", "reconciler.apply", "reconciler.planner", "reconciler.drift",
    "reconciler.importer", "reconciler.resources.lb_commands", "reconciler.cloud.client",
    "reconciler.state.s3", "reconciler.render.markdown", "reconciler.imagebuild", "reconciler.imagebuild.build",
    "botocore.session", "boto3",
    # what typer and botocore import on first use
    "typer._adapters", "typer._click.decorators", "pydantic", "pydantic.json_schema", "pydantic.type_adapter",
    "zoneinfo", "fractions", "encodings.idna", "stringprep", "sysconfig", "colorsys", "pydantic.plugin._loader",
    "rich.markup", "rich.text", "rich.emoji", "rich.jupyter", "rich.segment", "rich.style", "rich.align",
    "rich.constrain", "rich.containers", "rich.measure", "rich.terminal_theme", "rich._wrap",
    "reconciler.resources.lb_review",
    # what recon imports only when a command needs it
    "tomlkit", "yaml", "cryptography.hazmat.primitives.serialization", "reconciler.cloud.slim")
_SANDBOX_IMPORTS = (
    "reconciler.sandbox.server", "reconciler.imagebuild.testimage", "cryptography.x509",
    # moto reads its data files on import
    "moto.ec2.models", "moto.elb.models", "moto.s3.models", "moto.iam.models", "moto.ec2.responses.instances",
    "moto.autoscaling.models", "moto.autoscaling.responses",
    "moto.moto_server.werkzeug_app", "werkzeug.serving",
    # and what a sandbox's first requests import
    "moto.ec2.urls", "moto.elb.urls", "moto.elb.responses", "moto.elbv2.responses", "moto.autoscaling.urls",
    "moto.s3.urls", "moto.s3.responses", "moto.s3bucket_path.utils", "moto.iam.access_control", "moto.sts.models",
    "xml.dom.minidom", "_strptime", "flask.debughelpers",
    "reconciler.sandbox.services", "reconciler.sandbox.acls", "reconciler.sandbox.auth",
    "reconciler.sandbox.autoscaling", "reconciler.sandbox.workers")


def preload(module: str, folder: str) -> None:
    """Import what children running ``-m module`` use, and make ahead what each would make alike.

    For recon: typer's click command, and the botocore data files its clients read (service models,
    endpoints) parsed into the loader recon keeps for the whole process. For the sandbox: moto's
    request models and partitions, and what every sandbox makes at its start and can share: its
    keys, and the load-balancer image it installs (in ``folder``)."""
    import importlib

    for name in _RECON_IMPORTS if module == "reconciler" else _SANDBOX_IMPORTS:
        importlib.import_module(name)
    if module == "reconciler":
        _warm_recon()
    else:
        _warm_sandbox(folder)


def _warm_recon() -> None:
    import importlib

    from reconciler.cloud.credentials import new_session

    importlib.import_module("reconciler.cli").command()   # typer's click command, built once for all
    session = new_session()
    for service in ("ec2", "elb", "s3", "properties", "autoscaling"):
        session.create_client(service, region_name="eucalyptus", endpoint_url="http://127.0.0.1:9",
                              aws_access_key_id="warm", aws_secret_access_key="warm")
        if service != "properties":   # recon's own model has no paginators
            model = session.get_service_model(service)
            session.get_component("data_loader").load_service_model(service, "paginators-1", model.api_version)


def _warm_sandbox(folder: str) -> None:
    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.utils import get_service_model

    from reconciler.sandbox import credentials, lb_installed

    moto_session = AccountSpecificBackend.get_session()
    for partition in moto_session.get_available_partitions():
        for service in ("ec2", "elb", "s3", "iam", "sts", "autoscaling"):
            moto_session.get_available_regions(service, partition_name=partition)
    for service in ("ec2", "elb", "s3", "iam", "sts", "autoscaling"):   # moto parses requests with these
        get_service_model(service)
    credentials.make_keys_ahead()
    lb_installed.make_image_ahead(folder)


def _run_module(module: str, args: list[str]) -> int:
    """Run ``python -m module args`` in this (forked) process; its exit code, as Python gives it."""
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)   # as CPython ends on an uncaught KeyboardInterrupt
        code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    return code


def _finish() -> None:
    """What an interpreter does on its way out: join threads, run atexit, flush."""
    threading._shutdown()   # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def child(request: dict, fds: list[int], zygote_pid: int) -> None:
    """In the forked child: become ``python -m MODULE ARGS`` with the request's streams, folder and
    environment; never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGCHLD", "SIGQUIT"):
            signum = getattr(signal, name)
            signal.signal(signum, signal.default_int_handler if name == "SIGINT" else
                          signal.SIG_IGN if name == "SIGPIPE" else signal.SIG_DFL)   # as CPython starts
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None
        random.seed()
        args = list(request["args"])
        if "--parent-pid" in args:   # the sandbox watches its parent: here that is the zygote
            args[args.index("--parent-pid") + 1] = str(zygote_pid)
        code = _run_module(request["module"], args)
        _finish()
    finally:
        os._exit(code)


def _ledger(request: dict, cpu: float) -> None:
    """With ``RECON_TEST_CPU_LOG=FILE``, add a line per child to FILE: the test that ran it, what it
    ran and the CPU seconds it used (to find where the suite's time goes)."""
    log = os.environ.get("RECON_TEST_CPU_LOG")
    if log:
        line = {"test": request["env"].get("PYTEST_CURRENT_TEST", "?"), "module": request["module"],
                "args": request["args"][:2], "cpu": round(cpu, 3)}
        with open(log, "a") as ledger:
            ledger.write(json.dumps(line) + "\n")


def serve(path: str) -> None:
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    print("ready", flush=True)
    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "accept":
                _accept(listener, selector)
            else:
                _reap(key, selector)
        if os.getppid() != parent:
            return


def _accept(listener: socket.socket, selector: selectors.BaseSelector) -> None:
    conn, _ = listener.accept()
    message, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        selector.close()
        child(request, fds, os.getppid())
    for fd in fds:
        os.close(fd)
    conn.send(struct.pack("!q", pid))
    pidfd = os.pidfd_open(pid)
    selector.register(pidfd, selectors.EVENT_READ, (pid, conn, request))


def _reap(key: selectors.SelectorKey, selector: selectors.BaseSelector) -> None:
    pid, conn, request = key.data
    selector.unregister(key.fileobj)
    os.close(key.fileobj)
    _, status, usage = os.wait4(pid, 0)
    _ledger(request, usage.ru_utime + usage.ru_stime)
    try:
        conn.send(struct.pack("!q", os.waitstatus_to_exitcode(status)))
    except OSError:
        pass   # the client is gone
    conn.close()


if __name__ == "__main__":
    preload(sys.argv[2], os.path.dirname(sys.argv[1]))
    serve(sys.argv[1])

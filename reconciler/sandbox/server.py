"""The sandbox cloud: one loopback HTTP server that looks like a Eucalyptus front end (DESIGN §7).

``Sandbox`` serves in background threads of the calling process; ``serve`` is the blocking form
behind ``python -m reconciler.sandbox`` and ``recon sandbox``.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..errors import ReconError
from . import credentials as creds
from .credentials import Credentials
from .properties import (
    DNS_DOMAIN,
    PropertiesApp,
    PropertyStore,
    default_properties,
    lb_property,
    version_tuple,
)
from .seed import seed_runbook_images
from .zones import DEFAULT_ZONES, ZoneMap

READY_PREFIX = "recon sandbox ready:"
STOPPED_LINE = "recon sandbox stopped"


class _QuietHandler(WSGIRequestHandler):
    """No access log lines; errors are still reported on stderr."""

    def log_request(self, code="-", size="-") -> None:  # noqa: D401 - werkzeug API
        pass


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ReconError(f"the sandbox listens on loopback only, not on {host!r}",
                     hint="use 127.0.0.1 (the default) or ::1")


class Sandbox:
    """A Eucalyptus-compatible cloud on loopback, backed by moto, with its credentials folder.

    >>> sb = Sandbox(Path(".recon-sandbox")); sb.start(); ...; sb.stop()

    Like a cloud, it refuses a load balancer it cannot give worker VMs (no valid emi, a missing key
    name: ``workers.Workers.admit``); a fresh one has no load-balancer image. ``lb_image_installed``
    starts it as its administrator leaves a cloud once it is installed: the default load-balancer
    image installed as version 1 and enabled (``lb_installed.install_default``).
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        zones: Sequence[str] = DEFAULT_ZONES,
        eucalyptus_version: str = "4.0",
        account_id: str = creds.ACCOUNT_ID,
        lb_image_installed: bool = False,
    ):
        _check_loopback(host)
        if not creds.ACCOUNT_RE.fullmatch(account_id):
            raise ReconError(f"account id {account_id!r} is not an account number (12 digits)", where="sandbox")
        try:
            version_tuple(eucalyptus_version)
            self.zone_map = ZoneMap(zones)
        except ValueError as err:
            raise ReconError(str(err), where="sandbox") from None
        if not 0 <= int(port) <= 65535:
            raise ReconError(f"port {port} is out of range", where="sandbox")
        self.directory = Path(directory)
        self.host = host
        self.port = int(port)
        self.zones = self.zone_map.zones
        self.eucalyptus_version = eucalyptus_version
        self.account_id = account_id
        self.lb_image_installed = lb_image_installed
        self.lb_image: str | None = None   # the installed image's emi
        self.url = ""
        self.env: dict[str, str] = {}
        self.credentials: Credentials | None = None
        self.properties: PropertyStore | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Bind, write the credentials folder, and serve in a background thread."""
        if self._server is not None:
            raise ReconError("the sandbox is already running", where=self.url)
        from . import acls, services  # they import moto: keep `import reconciler.sandbox` cheap

        services.patch_moto()
        acls.patch_canned_acls()
        try:
            server = make_server(self.host, self.port, _NotYet(), threaded=True, request_handler=_QuietHandler)
        except OSError as err:
            raise ReconError(f"cannot listen on {self.host}:{self.port}: {err.strerror or err}",
                             where="sandbox") from None
        self.port = server.server_address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        try:
            self.credentials = creds.write_credentials(self.directory, self.url, account_id=self.account_id)
            self.directory = self.credentials.directory
            self.env = dict(self.credentials.env)
            server.app = self._build_app(services, self.credentials)
        except BaseException:
            server.server_close()
            raise
        self._server = server
        # a short poll: stopping (shutdown waits for one) takes 50 ms, not half a second
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="recon-sandbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def eucarc(self) -> Path:
        return self.directory / creds.EUCARC

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- wiring --------------------------------------------------------------------------
    def _build_app(self, services, credentials: Credentials):
        from . import auth, autoscaling
        from .workers import Workers

        services.bind_account(credentials.access_key, credentials.secret_key, credentials.account_id)
        account = credentials.account_id
        ec2 = services.EC2Service(
            creds.COMPUTE_PATH, services.moto_app("ec2"), self.zone_map,
            cloud_key=credentials.keys.cloud_key, user_cert=credentials.keys.user_cert,
            user_key=credentials.keys.user_key,
        )
        seed_runbook_images(ec2, account)
        # the admin's account is the cloud's own: the properties' change listeners ask the compute
        # side about it, and the load balancers' workers run in it
        def has_image(image_id: str) -> bool:
            return ec2.has_image(account, image_id)

        def has_key_pair(name: str) -> bool:
            return ec2.has_key_pair(account, name)

        self.properties = store = PropertyStore(
            default_properties(self.eucalyptus_version), eucalyptus_version=self.eucalyptus_version,
            image_exists=has_image, keypair_exists=has_key_pair,
            changed=lambda check, value: lb_workers.property_changed(check, value))
        lb_workers = Workers(account, self.zone_map, store, eucalyptus_version=self.eucalyptus_version,
                             image_exists=has_image, keypair_exists=has_key_pair)
        if self.lb_image_installed:
            from .lb_installed import install_default

            self.lb_image = install_default(ec2, store, credentials,
                                            emi_property=lb_property(self.eucalyptus_version, "emi"))
        properties = PropertiesApp(store, admin_access_key=credentials.access_key,
                                   eucalyptus_version=self.eucalyptus_version)
        subdomain = lb_property(self.eucalyptus_version, "dns")
        elb = services.ELBService(creds.LOADBALANCING_PATH, services.moto_app("elb"), self.zone_map,
                                  dns_suffix=lambda: f"{store.value(subdomain)}.{store.value(DNS_DOMAIN)}",
                                  workers=lb_workers)
        scaling = autoscaling.AutoScalingService(creds.AUTOSCALING_PATH, services.moto_app("autoscaling"),
                                                 self.zone_map, ec2=ec2)

        def heal(requester: str) -> None:  # the requester's groups and the cloud's (the workers')
            for group_account in dict.fromkeys((requester, account)):
                autoscaling.heal(group_account)

        for service in (ec2, elb, scaling):
            service.before_describe = heal
        s3 = services.S3Service(creds.OBJECTSTORAGE_PATH, services.moto_app("s3"))
        routes = [  # path, service, how it refuses a request that does not authenticate
            (creds.COMPUTE_PATH, ec2, auth.EC2),
            (creds.OBJECTSTORAGE_PATH, s3, auth.S3),
            (creds.LOADBALANCING_PATH, elb, auth.ELB),
            (creds.AUTOSCALING_PATH, scaling, auth.ELB),
            (creds.PROPERTIES_PATH, properties, auth.PROPERTIES),
            (creds.EMPYREAN_PATH, properties, auth.PROPERTIES),
            (creds.CONFIGURATION_PATH, properties, auth.PROPERTIES),
        ]
        dispatcher = services.Dispatcher([(path, app) for path, app, _ in routes])
        return auth.Authenticator(dispatcher, [(path, dialect) for path, _, dialect in routes],
                                  access_key=credentials.access_key, secret_key=credentials.secret_key)


class _NotYet:
    """Placeholder application between bind and the credentials being written."""

    def __call__(self, environ, start_response):
        start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "text/plain")])
        return [b"recon sandbox is starting\n"]


def ready_line(sandbox: Sandbox) -> str:
    return f"{READY_PREFIX} {sandbox.url} (source {sandbox.eucarc})"


def serve(
    directory: Path,
    *,
    port: int = 0,
    zones: Sequence[str] = DEFAULT_ZONES,
    eucalyptus_version: str = "4.0",
    host: str = "127.0.0.1",
    parent_pid: int | None = None,
    account_id: str = creds.ACCOUNT_ID,
    lb_image_installed: bool = False,
) -> int:
    """Run a sandbox until SIGINT or SIGTERM; print one ready line, then one stopped line.

    With ``parent_pid``, also stop when that process is no longer this one's parent (the
    parent died), so that a crashed test run leaves no cloud behind. Must be called from the
    main thread (it installs signal handlers). Returns the exit code.
    """
    sandbox = Sandbox(directory, port=port, host=host, zones=zones, eucalyptus_version=eucalyptus_version,
                      account_id=account_id, lb_image_installed=lb_image_installed)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sandbox.start()
        print(ready_line(sandbox), flush=True)
        while not stop.wait(0.2):
            if parent_pid is not None and os.getppid() != parent_pid:
                print("recon sandbox: parent process is gone, stopping", file=sys.stderr, flush=True)
                break
            thread = sandbox._thread
            if thread is not None and not thread.is_alive():
                print("recon sandbox: server thread died", file=sys.stderr, flush=True)
                return 1
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        print(STOPPED_LINE, flush=True)
    except (BrokenPipeError, ValueError):  # nobody reads our stdout any more (parent gone)
        sys.stdout = open(os.devnull, "w")
    return 0

"""``python -m reconciler.sandbox``: serve a sandbox cloud until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..entry import tune_collector
from ..errors import ReconError
from .credentials import ACCOUNT_ID
from .server import serve
from .zones import DEFAULT_ZONES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.sandbox",
        description="Serve a Eucalyptus-compatible sandbox cloud on loopback (EC2, S3, ELB, Auto Scaling, properties).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--dir", type=Path, default=Path(".recon-sandbox"),
                        help="credentials folder to write (eucarc, certificates, keys)")
    parser.add_argument("--zones", default=",".join(DEFAULT_ZONES),
                        help="comma-separated availability zone names")
    parser.add_argument("--eucalyptus-version", default="4.0",
                        help="4.0 (loadbalancing.* properties) or 4.2+ (services.loadbalancing.*)")
    parser.add_argument("--account-id", default=ACCOUNT_ID,
                        help=f"the admin account's number, 12 digits (default {ACCOUNT_ID})")
    parser.add_argument("--lb-image-installed", action="store_true",
                        help="start as a cloud its administrator has installed: the default load-balancer image "
                             "installed (v1, bucket loadbalancer-v1) and enabled; without it, no image is "
                             "installed and CreateLoadBalancer is refused, as on a fresh cloud")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tune_collector()   # moto holds every resource of the cloud as Python objects
    zones = [z.strip() for z in args.zones.split(",") if z.strip()]
    try:
        return serve(args.dir, port=args.port, zones=zones, eucalyptus_version=args.eucalyptus_version,
                     parent_pid=args.parent_pid, account_id=args.account_id,
                     lb_image_installed=args.lb_image_installed)
    except ReconError as err:
        print(f"recon sandbox: {err}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``recon init``: a starter ``recon.toml`` and the files it names, from one of the examples."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable

import typer

from ..errors import ReconError
from .common import DEFAULT_CONFIG, fail, term

#: The examples, shipped in the package (``reconciler/examples`` is the repository's ``examples/``).
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _lb_base_image(images: Path) -> list[Path]:
    """A small stand-in for the load-balancer package's base image (the runbook's servo 1.0.4)."""
    from ..imagebuild.testimage import RUNBOOK_SERVO, make_test_image, pack_tgz

    with tempfile.TemporaryDirectory() as tmp:
        image = make_test_image(Path(tmp) / "eucalyptus-load-balancer-image.img", servo_version=RUNBOOK_SERVO)
        images.mkdir(parents=True, exist_ok=True)
        return [pack_tgz(image, images / "eucalyptus-load-balancer-image.tgz")]


def _docker_images(images: Path) -> list[Path]:
    from ..imagebuild.standins import make_docker_standins

    return list(make_docker_standins(images).values())


@dataclass(frozen=True)
class Starter:
    #: The example file that becomes recon.toml.
    stack: str
    #: The files of examples/ it names, copied as they are.
    companions: tuple[str, ...]
    #: The image files it names (not committed): their relative paths, and what makes stand-ins of them.
    images: tuple[str, ...] = ()
    make_images: Callable[[Path], list[Path]] | None = None


STARTERS = {
    "loadbalancer": Starter("loadbalancer.toml", ("keys/euca-elb.pub",)),
    "docker": Starter("docker.toml", ("keys/docker-admin.pub", "cloud-init-docker.yaml", "files/docker.list"),
                      ("images/docker-vmlinuz", "images/docker-initrd.img", "images/docker-rootfs.img"),
                      _docker_images),
    "lb-image": Starter("lb-image.toml", (), ("images/eucalyptus-load-balancer-image.tgz",), _lb_base_image),
}

Example = Enum("Example", {name: name for name in STARTERS}, type=str)


def init(
    example: Annotated[Example, typer.Option("--example", "-e", help="Which stack to start from: the runbook's load "
                                             "balancer setup, Docker hosts behind a load balancer, or a customized "
                                             "load-balancer image.")] = Example.loadbalancer,
    dir: Annotated[Path, typer.Option("--dir", help="Where to write the files.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a starter recon.toml and the files it names (keys, cloud-init, images) into the folder.

    The file validates, plans against `recon sandbox` and is in `recon fmt` layout. Image files are
    small stand-ins for trying it on the sandbox: put the real ones in their place for a real cloud.
    """
    starter = STARTERS[example.value]
    files = {DEFAULT_CONFIG.as_posix(): EXAMPLES / starter.stack,
             **{name: EXAMPLES / name for name in starter.companions}}
    present = [name for name in [*files, *starter.images] if (dir / name).exists()]
    if present and not force:
        term.error(f"{dir}: would overwrite {', '.join(present)}; --force overwrites them")
        raise typer.Exit(1)
    try:
        for name, source in files.items():
            (dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dir / name)
        if starter.make_images is not None:
            starter.make_images(dir / "images")
    except OSError as exc:
        fail(ReconError(f"cannot write the starter files: {exc.strerror or exc}", where=str(dir)))
    except ReconError as exc:
        fail(exc)
    term.line(f"Wrote {', '.join([*files, *starter.images])} into {dir} (the {example.value} example).")
    if starter.images:
        term.line(f"The images ({', '.join(starter.images)}) are small stand-ins, for the sandbox: put the real "
                  "files in their place before applying to a cloud.")
    term.line("Next: recon validate; source your cloud's eucarc (or try the sandbox: "
              "recon sandbox --dir .sandbox --background && source .sandbox/eucarc); recon plan.")

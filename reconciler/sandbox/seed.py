"""What a fresh sandbox cloud already has: the runbook's Ubuntu Docker image.

The runbook bundles, uploads and registers an Ubuntu 13.04 ("raring") root file system with
Docker in it, together with its kernel and ramdisk, and then publishes all three. The sandbox
starts with the three registered (as the admin account's private instance-store images), so that
``images`` and ``docker_hosts`` have something real to work on.
"""

from __future__ import annotations

KERNEL = "ubuntu-raring-vmlinuz"
RAMDISK = "ubuntu-raring-initrd"
ROOTFS = "ubuntu-raring-docker-rootfs"
BUCKET = "ubuntu-raring"


def seed_runbook_images(ec2, account: str) -> dict[str, str]:
    """Register the kernel, the ramdisk and the root file system; returns their ids by name."""
    kernel = ec2.seed_image(account, KERNEL, "kernel", f"{BUCKET}/vmlinuz-3.8.0-19-generic.manifest.xml",
                            description="Ubuntu 13.04 kernel 3.8.0-19-generic")
    ramdisk = ec2.seed_image(account, RAMDISK, "ramdisk", f"{BUCKET}/initrd.img-3.8.0-19-generic.manifest.xml",
                             description="Ubuntu 13.04 initrd 3.8.0-19-generic")
    rootfs = ec2.seed_image(account, ROOTFS, "machine", f"{BUCKET}/{ROOTFS}.img.manifest.xml",
                            description="Ubuntu 13.04 with Docker", kernel=kernel, ramdisk=ramdisk)
    return {KERNEL: kernel, RAMDISK: ramdisk, ROOTFS: rootfs}

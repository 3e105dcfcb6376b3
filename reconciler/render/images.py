"""``recon images``: the installed load-balancer image versions, three ways.

- ``table``: one line per image, at most 80 columns, the enabled one marked ``*``, with the stack and
  block that installed it (recon's ownership tags); then how many load balancers' worker VMs run
  each image (where any load balancer has workers);
- ``installer``: exactly what ``euca-install-load-balancer --list`` prints (its ``list_images``):
  a header, then per version ``Version N`` (``(enabled)`` for the one the emi property names),
  ``EMI (LOCATION)`` per image and its description on a tab-indented line, then a blank line;
  an image whose location has no ``loadbalancer-vN`` bucket is version 0, as the installer counts;
- ``document``: the same as JSON, each image with the worker VMs that run it (by load balancer).

``workers`` maps each load balancer to its worker VMs (:class:`~reconciler.resources.lb_workers.Worker`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ..resources.tags import OWNER

WIDTH = 80
INSTALLER_HEADER = "Currently Installed Load Balancer Bundles:"


def _managed_by(item: Mapping[str, Any]) -> str | None:
    owner = item.get(OWNER)
    return f"{owner['stack']}:{owner['address']}" if owner else None


def installer(images: Iterable[Mapping[str, Any]], enabled: set[str]) -> str:
    """The text of ``euca-install-load-balancer --list``."""
    versions: dict[int, list[Mapping[str, Any]]] = {}
    for item in images:
        versions.setdefault(item["version"] or 0, []).append(item)
    out = [INSTALLER_HEADER, ""]
    if not versions:
        return "\n".join([*out, "No load balancer images Installed.", "", ""])
    for version, items in sorted(versions.items()):
        mark = " (enabled)" if any(item["image_id"] in enabled for item in items) else ""
        out.append(f"Version {version}{mark}")
        for item in items:
            out.append(f"{item['image_id']} ({item['location']})")
            if item.get("description") is not None:
                out.append(f"\t{item['description']}")
        out.append("")
    return "\n".join(out) + "\n"


def _running(workers: Mapping[str, Sequence[Any]], image: str) -> dict[str, list[str]]:
    """The workers that run ``image``: their ids by load balancer."""
    found = {lb: [w.id for w in items if w.image == image] for lb, items in sorted(workers.items())}
    return {lb: ids for lb, ids in found.items() if ids}


def document(images: Iterable[Mapping[str, Any]], enabled: set[str],
             workers: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    return {"images": [{"version": item["version"], "image_id": item["image_id"], "name": item["name"],
                        "location": item["location"], "description": item.get("description"),
                        "enabled": item["image_id"] in enabled, "digest": item.get("digest"),
                        "managed_by": _managed_by(item), "workers": _running(workers or {}, item["image_id"])}
                       for item in images]}


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _installed(description: str | None) -> str:
    """``Installed on 2024-05-01 at 10:00:00 UTC`` as ``2024-05-01 10:00:00 UTC``; other descriptions as they are."""
    text = description or ""
    if text.startswith("Installed on "):
        text = text[len("Installed on "):].replace(" at ", " ", 1)
    return text


def table(images: Iterable[Mapping[str, Any]], enabled: set[str],
          workers: Mapping[str, Sequence[Any]] | None = None) -> str:
    """One line per image (mark, version, image id, install time, recon's stack:address), within 80
    columns; then, where load balancers have worker VMs, how many run each image."""
    images = list(images)
    rows = [("*" if item["image_id"] in enabled else " ", f"v{item['version']}" if item["version"] else "?",
             item["image_id"], _installed(item.get("description")), _managed_by(item) or "-")
            for item in images]
    if not rows:
        return "No load-balancer images are installed.\n"
    header = (" ", "VERSION", "IMAGE", "INSTALLED", "RECON")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    widths[3] = min(widths[3], 26)
    lines = []
    for row in [header, *rows]:
        head = "  ".join(_fit(value, width).ljust(width) for value, width in zip(row[:4], widths))
        lines.append((head + "  " + _fit(row[4], WIDTH - len(head) - 2)).rstrip())
    if any(workers.values() if workers else ()):
        counts = []
        for item, row in zip(images, rows):
            running = _running(workers or {}, item["image_id"])
            names = f" ({', '.join(running)})" if running else ""
            counts.append(f"{sum(len(ids) for ids in running.values())} on {row[1]}{names}")
        lines.append("Worker VMs: " + ", ".join(counts))
    return "\n".join(lines) + "\n"

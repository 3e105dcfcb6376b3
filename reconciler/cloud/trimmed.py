"""botocore's service models cut to the operations recon calls, kept between runs.

botocore makes a client from its service's whole model: EC2's has 830 operations and 4,400
shapes, 0.17 s of JSON to decode in every fresh process, and the client gets a method for each
operation. recon calls 19 of them. :func:`cut` keeps the operations of :data:`OPERATIONS` and the
shapes they reach, as botocore has them (only their ``documentation`` is left out), so a client made
from the cut model sends, reads and fails exactly as the whole model's does for those operations;
it has no others (:meth:`reconciler.cloud.Cloud.call` then says which it lacks).

A cut model is kept as JSON in recon's cache folder (``$XDG_CACHE_HOME/recon/models``, else
``~/.cache/recon/models``), in a file named after what it was cut from: botocore's version, the
model's files (path, size, modification time) in every folder botocore searches, and the
operations. Anything of that changing gives another file name, so a stale cut is never read. A
cache that cannot be read or written costs only time: the model is cut again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import botocore
from botocore import xform_name

from ..atomic import write_atomic

log = logging.getLogger(__name__)

FORMAT = 1

#: The botocore client methods recon calls, by service (Eucalyptus' properties service is recon's
#: own small model, used whole). ``tests/test_trimmed_models.py`` checks that every call in
#: recon's source is here.
OPERATIONS: Mapping[str, frozenset[str]] = {
    "ec2": frozenset({
        "authorize_security_group_ingress", "create_security_group", "create_tags", "delete_key_pair",
        "delete_security_group", "delete_tags", "deregister_image", "describe_image_attribute", "describe_images",
        "describe_instance_attribute", "describe_instances", "describe_key_pairs", "describe_security_groups",
        "import_key_pair", "modify_image_attribute", "register_image", "revoke_security_group_ingress",
        "run_instances", "terminate_instances",
    }),
    "elb": frozenset({
        "configure_health_check", "create_load_balancer", "create_load_balancer_listeners", "delete_load_balancer",
        "delete_load_balancer_listeners", "deregister_instances_from_load_balancer",
        "describe_load_balancer_attributes", "describe_load_balancers", "describe_tags",
        "disable_availability_zones_for_load_balancer", "enable_availability_zones_for_load_balancer",
        "modify_load_balancer_attributes", "register_instances_with_load_balancer",
    }),
    "autoscaling": frozenset({
        "describe_auto_scaling_groups", "describe_launch_configurations", "terminate_instance_in_auto_scaling_group",
    }),
    "s3": frozenset({
        "create_bucket", "delete_bucket", "delete_object", "delete_objects", "get_object", "list_buckets",
        "list_objects_v2", "put_object",
    }),
}


def cut(model: Mapping[str, Any], methods: Iterable[str]) -> dict[str, Any]:
    """``model`` (a service-2 document) with only the operations named by ``methods`` (client
    method names) and the shapes they reach, without documentation."""
    wanted = set(methods)
    operations = {name: op for name, op in model["operations"].items() if xform_name(name) in wanted}
    shapes = model["shapes"]
    kept: set[str] = set()
    todo = [ref["shape"] for op in operations.values()
            for ref in (op.get("input"), op.get("output"), *op.get("errors", ())) if ref]
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept.add(name)
        shape = shapes[name]
        todo.extend(shape[key]["shape"] for key in ("member", "key", "value") if key in shape)
        todo.extend(member["shape"] for member in shape.get("members", {}).values())
    return {**model, "operations": _undocumented(operations, names=True),
            "shapes": _undocumented({name: shape for name, shape in shapes.items() if name in kept}, names=True)}


#: The keys whose values map names (of members, shapes, operations) to what they name.
_NAME_MAPS = frozenset({"members", "shapes", "operations"})


def _undocumented(value: Any, names: bool = False) -> Any:
    """Operations or shapes (``value``) without their ``documentation`` keys, which botocore reads
    only for help (a member may be called that: kept). Elsewhere it may need them (client context
    parameters)."""
    if isinstance(value, Mapping):
        if names:
            return {key: _undocumented(item) for key, item in value.items()}
        return {key: _undocumented(item, key in _NAME_MAPS) for key, item in value.items() if key != "documentation"}
    if isinstance(value, list):
        return [_undocumented(item) for item in value]
    return value


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recon" / "models"


def cache_file(search_paths: Iterable[str], service: str, api_version: str, methods: Iterable[str]) -> Path:
    """Where the cut of ``service``'s model is kept: named after everything it was cut from."""
    files = []
    for folder in search_paths:
        try:
            with os.scandir(Path(folder) / service / api_version) as entries:
                files += sorted((entry.path, entry.stat().st_size, entry.stat().st_mtime_ns) for entry in entries
                                if entry.name.startswith("service-2"))
        except OSError:
            continue
    key = json.dumps([FORMAT, botocore.__version__, files, sorted(methods)])
    return cache_folder() / f"{service}-{api_version}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def read_cut(path: Path, methods: Iterable[str]) -> dict[str, Any] | None:
    """The cut kept at ``path`` if it is one (every operation there); else None."""
    try:
        model = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not (isinstance(model, dict) and isinstance(model.get("operations"), dict) and isinstance(model.get("shapes"), dict)
            and isinstance(model.get("metadata"), dict)):
        return None
    if {xform_name(name) for name in model["operations"]} != set(methods):
        return None
    return model


def keep_cut(path: Path, model: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(model, separators=(",", ":")).encode())
    except OSError as exc:
        log.debug("cannot keep the cut model %s: %s", path, exc)

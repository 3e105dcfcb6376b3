"""recon's clients are made from botocore's models cut to the operations recon calls (reconciler.cloud.trimmed)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from botocore import xform_name
from botocore.loaders import Loader
from botocore.model import ServiceModel

from reconciler.cloud import resolve_settings
from reconciler.cloud.client import Cloud
from reconciler.cloud.credentials import ServicesLoader
from reconciler.cloud.endpoints import SERVICES
from reconciler.cloud.trimmed import OPERATIONS, cache_file, cut

SOURCE = Path(__file__).resolve().parent.parent / "reconciler"
WHOLE = Loader()


def whole_model(service: str) -> dict:
    return WHOLE.load_service_model(service, "service-2")


def calls_in_source() -> tuple[set[tuple[str, str]], list[str]]:
    """Every call in recon's source (not the sandbox's) whose first two arguments are a service and a
    literal, and the ``call``/``paginate`` calls whose operation is not a literal."""
    literal, dynamic = set(), []
    for path in SOURCE.rglob("*.py"):
        if "sandbox" in path.relative_to(SOURCE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            service, operation = node.args[:2]
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if isinstance(service, ast.Constant) and service.value in SERVICES:
                if isinstance(operation, ast.Constant):
                    literal.add((service.value, operation.value))
                elif name in ("call", "paginate"):
                    dynamic.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    return literal, dynamic


def test_every_operation_recon_calls_is_in_its_clients():
    literal, dynamic = calls_in_source()
    missing = sorted((service, operation) for service, operation in literal if service in OPERATIONS
                     and operation in {xform_name(name) for name in whole_model(service)["operations"]}
                     and operation not in OPERATIONS[service])
    assert missing == []
    assert dynamic == []     # an operation named at run time could not be checked here
    assert {("ec2", "describe_instances"), ("elb", "configure_health_check"), ("s3", "put_object")} <= literal


def test_every_listed_operation_is_botocores():
    for service, methods in OPERATIONS.items():
        assert methods <= {xform_name(name) for name in whole_model(service)["operations"]}, service


@pytest.mark.parametrize("service", sorted(OPERATIONS))
def test_a_cut_model_has_what_the_whole_one_has_for_each_operation(service):
    whole = whole_model(service)
    model = cut(whole, OPERATIONS[service])
    assert {xform_name(name) for name in model["operations"]} == OPERATIONS[service]
    assert model["metadata"] == whole["metadata"]
    cut_model, whole_service = ServiceModel(model, service), ServiceModel(whole, service)
    for name in model["operations"]:
        mine, theirs = cut_model.operation_model(name), whole_service.operation_model(name)
        assert signature(mine.input_shape) == signature(theirs.input_shape), name
        assert signature(mine.output_shape) == signature(theirs.output_shape), name
        assert [e.name for e in mine.error_shapes] == [e.name for e in theirs.error_shapes], name
        assert mine.http == theirs.http and mine.metadata == theirs.metadata, name
        assert mine.static_context_parameters == theirs.static_context_parameters, name
        assert mine.context_parameters == theirs.context_parameters, name
    assert cut_model.client_context_parameters == whole_service.client_context_parameters
    assert len(model["shapes"]) < len(whole["shapes"])


def signature(shape, seen: frozenset = frozenset()):
    """Everything botocore serializes and parses by, of ``shape`` and every shape below it."""
    if shape is None:
        return None
    if shape.name in seen:            # a recursive structure: its name stands for it
        return shape.name
    seen = seen | {shape.name}
    out = [shape.name, shape.type_name, shape.serialization, sorted(shape.metadata.items(), key=str)]
    if shape.type_name == "structure":
        out.append([(key, signature(member, seen)) for key, member in shape.members.items()])
    elif shape.type_name == "list":
        out.append(signature(shape.member, seen))
    elif shape.type_name == "map":
        out.append((signature(shape.key, seen), signature(shape.value, seen)))
    return out


def fresh_loader() -> ServicesLoader:
    return ServicesLoader(extra_search_paths=WHOLE.search_paths, include_default_search_paths=False, cut_models=True)


def test_the_cut_is_kept_in_the_cache_folder_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = fresh_loader().load_service_model("elb", "service-2")
    kept = list((tmp_path / "recon" / "models").iterdir())
    assert [p.name.split("-")[0] for p in kept] == ["elb"]
    assert json.loads(kept[0].read_text()) == first
    written = kept[0].stat().st_mtime_ns
    assert fresh_loader().load_service_model("elb", "service-2") == first
    assert kept[0].stat().st_mtime_ns == written      # read, not cut and written again


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"operations": {}, "shapes": {}, "metadata": {}}'])
def test_a_damaged_cut_is_cut_again(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    good = fresh_loader().load_service_model("autoscaling", "service-2")
    [kept] = (tmp_path / "recon" / "models").iterdir()
    kept.write_text(damage)
    assert fresh_loader().load_service_model("autoscaling", "service-2") == good
    assert json.loads(kept.read_text()) == good


def test_a_cache_folder_that_cannot_be_written_costs_only_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))        # a file where the folder should be
    model = fresh_loader().load_service_model("elb", "service-2")
    assert {xform_name(name) for name in model["operations"]} == OPERATIONS["elb"]


def test_the_cache_file_names_what_the_cut_was_made_of(tmp_path):
    folder = tmp_path / "models" / "elb" / "2012-06-01"
    folder.mkdir(parents=True)
    model = folder / "service-2.json"
    model.write_text("{}")
    methods = OPERATIONS["elb"]
    name = cache_file([str(tmp_path / "models")], "elb", "2012-06-01", methods)
    assert cache_file([str(tmp_path / "models")], "elb", "2012-06-01", methods) == name
    os.utime(model, ns=(1, 1))
    assert cache_file([str(tmp_path / "models")], "elb", "2012-06-01", methods) != name
    assert cache_file([str(tmp_path / "models")], "elb", "2012-06-01", methods | {"add_tags"}) != name


def test_an_operation_recon_does_not_list_is_refused_by_name():
    settings = resolve_settings({"endpoint": "http://127.0.0.1:9", "eucalyptus_version": "4.0"},
                                {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}, Path("."))
    cloud = Cloud(settings, {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"})
    with pytest.raises(ValueError, match="describe_regions.*reconciler.cloud.trimmed.OPERATIONS"):
        cloud.call("ec2", "describe_regions")

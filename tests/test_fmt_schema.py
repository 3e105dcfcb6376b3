"""`recon fmt` (canonical layout, comments kept) and `recon schema` (JSON Schema of the file)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from reconciler.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MESSY = '''# A messy file
  [stack]
name="prod"   # the name
[cloud]
eucalyptus_version   =    "4.0"



[keypairs.k]
public_key  =   "ssh-rsa AAAA"   \n# the web LB
[load_balancers.web]
zones = ["a",
  "b"]
listeners=[{ lb_port = 80, protocol = "HTTP", instance_port = 80 }]
[properties]
"loadbalancing.loadbalancer_num_vm"   =   2
'''

CANONICAL = '''# A messy file
[stack]
name = "prod"  # the name

[cloud]
eucalyptus_version = "4.0"

[keypairs.k]
public_key = "ssh-rsa AAAA"

# the web LB
[load_balancers.web]
zones = ["a",
  "b"]
listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80 }]

[properties]
"loadbalancing.loadbalancer_num_vm" = 2
'''


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1"})


def test_fmt_rewrites_to_canonical_layout_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_text(MESSY)
    check = run("fmt", "-c", str(path), "--check")
    assert check.exit_code == 1 and "-listeners=[" in check.output and "+listeners = [" in check.output
    assert path.read_text() == MESSY  # --check changes nothing
    assert run("fmt", "-c", str(path)).exit_code == 0
    assert path.read_text() == CANONICAL
    assert tomllib.loads(CANONICAL) == tomllib.loads(MESSY)
    again = run("fmt", "-c", str(path), "--check")
    assert again.exit_code == 0 and "already formatted" in again.output


def test_fmt_refuses_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "recon.toml"
    path.write_text("[stack\nname = 1\n")
    result = run("fmt", "-c", str(path))
    assert result.exit_code == 1 and "invalid TOML" in result.output
    assert path.read_text() == "[stack\nname = 1\n"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_are_formatted_and_match_the_schema(example: Path) -> None:
    assert run("fmt", "-c", str(example), "--check").exit_code == 0
    schema = json.loads(run("schema").output)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(tomllib.loads(example.read_text()), schema)


def test_schema_rejects_what_the_loader_rejects() -> None:
    schema = json.loads(run("schema").output)
    validator = jsonschema.Draft202012Validator(schema)
    bad = {"stack": {"name": "x"}, "load_balancers": {"web": {"zones": ["a"], "listners": []}}}
    assert any("listners" in error.message for error in validator.iter_errors(bad))
    assert not list(validator.iter_errors({"stack": {"name": "x"}, "properties": {"a.b": 1, "reset": ["c.d"]}}))
    assert list(validator.iter_errors({"stack": {"name": "x"}, "properties": {"a.b": {"value": 1}}}))

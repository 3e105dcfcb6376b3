"""A kind recon knows nothing of, defined and registered by this test alone, gets the whole story:
its fixtures (toy/notes/*.json) plan and script its cloud calls, and its contract (toy/notes/
contract.toml) runs validate, plan, apply, import and delete through the real CLI on the sandbox.
No product file names it: adding a kind is its module, its fixtures and its registration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.errors import ReconError
from reconciler.resources import KINDS
from reconciler.resources.abilities import Importable
from reconciler.resources.base import Kind
from reconciler.schema import Field
from test_contracts import run_contract
from test_kinds import check_fixture

FIXTURES = Path(__file__).parent / "toy" / "notes"
BUCKET = "recon-notes"


class Notes(Kind, Importable):
    """Short texts, each kept as one object of the bucket recon-notes."""

    name = "notes"
    noun = "note"
    fields = {"text": Field("string", "The note's text.", required=True)}
    outputs = {"text": "the note's text"}

    def read(self, ctx, wanted):
        reply = ctx.cloud.call("s3", "list_objects_v2", where="notes", Bucket=BUCKET, ignore_codes=("NoSuchBucket",))
        live: dict[str, dict[str, Any]] = {}
        for item in (reply or {}).get("Contents", []):
            note = ctx.cloud.call("s3", "get_object", where=f"notes.{item['Key']}", Bucket=BUCKET, Key=item["Key"])
            live[item["Key"]] = {"text": note["Body"].read().decode()}
        return live

    def create(self, ctx, name, attrs):
        ctx.cloud.call("s3", "create_bucket", where=f"notes.{name}", Bucket=BUCKET,
                       ignore_codes=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"))
        return self.update(ctx, name, {}, attrs, ["text"])

    def update(self, ctx, name, before, after, changed):
        ctx.cloud.call("s3", "put_object", where=f"notes.{name}", Bucket=BUCKET, Key=name,
                       Body=after["text"].encode())
        return {"text": after["text"]}

    def delete(self, ctx, name, before, prior):
        ctx.cloud.call("s3", "delete_object", where=f"notes.{name}", Bucket=BUCKET, Key=name)

    def import_block(self, ctx, name, cloud_id, options):
        live = self.read(ctx, {}).get(cloud_id)
        if live is None:
            raise ReconError(f"no note {cloud_id!r} in {BUCKET}", where=f"notes.{name}")
        return {"text": live["text"]}, cloud_id

    def live_name(self, name, attrs):
        return name


@pytest.fixture
def notes(monkeypatch):
    """The toy kind, registered for this test only."""
    monkeypatch.setitem(KINDS, "notes", Notes())


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_toy_kind_fixture(notes, path: Path, tmp_path: Path) -> None:
    check_fixture(path, tmp_path)


@pytest.mark.slow
def test_toy_kind_contract(notes, contract_env, tmp_path: Path) -> None:
    run_contract("notes", FIXTURES, contract_env, tmp_path)


def test_the_toy_kind_is_in_the_schema(notes) -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    notes_schema = json.loads(result.stdout)["properties"]["notes"]
    assert notes_schema["additionalProperties"]["properties"]["text"]["description"] == "The note's text."


def test_the_toy_kind_is_gone_after_its_test() -> None:
    assert "notes" not in KINDS

"""A kind's edges: the import options, ids and commands a kind declares reach the command line, and
the file edits of ``recon import`` are the kind's (see README, "Adding a resource kind", step 3)."""

from __future__ import annotations

import tomllib

import pytest
import typer
from typer.testing import CliRunner

from reconciler.commands import import_
from reconciler.resources import KINDS
from reconciler.resources.base import ImportOption, Kind

WIDE = {"COLUMNS": "200"}


class Toys(Kind):
    """A kind no product file knows of."""

    name = "toys"
    import_options = {"toy_file": ImportOption("--toy-file", "the file the toy was made from.")}
    import_ids = "toy-… ids"

    def commands(self, app: typer.Typer) -> None:
        @app.command()
        def toys() -> None:
            """List the toys."""
            typer.echo("no toys")


def app_of(kinds: dict[str, Kind]) -> typer.Typer:
    """An app assembled as reconciler.cli assembles recon's, from ``kinds``."""
    app = typer.Typer()
    app.command("import")(import_.command(kinds))
    for kind in kinds.values():
        kind.commands(app)
    return app


def test_import_options_and_ids_of_every_kind_are_in_recon_import_help_naming_the_kind():
    result = CliRunner().invoke(app_of({**KINDS, "toys": Toys()}), ["import", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "--toy-file" in result.output and "toys: the file the toy was made from." in result.output
    assert "--public-key-file" in result.output and "keypairs: the public key" in result.output
    assert "--cloud-init" in result.output and "docker_hosts: the cloud-config file" in result.output
    assert "toys: toy-… ids" in result.output and "lb_images: emi-… or vN" in result.output


def test_an_import_option_two_kinds_declare_is_refused_naming_it():
    class Other(Toys):
        name = "others"

    with pytest.raises(ValueError, match="'toy_file' of others"):
        import_.command({"toys": Toys(), "others": Other()})


def test_a_kinds_commands_are_the_apps_only_when_it_is_registered():
    runner = CliRunner()
    result = runner.invoke(app_of({"toys": Toys()}), ["toys"])
    assert (result.exit_code, result.output) == (0, "no toys\n")
    with_lb = runner.invoke(app_of({"toys": Toys(), "lb_images": KINDS["lb_images"]}), ["--help"], env=WIDE)
    without = runner.invoke(app_of({"toys": Toys()}), ["--help"], env=WIDE)
    assert "images" in with_lb.output and "image " in with_lb.output
    assert "images" not in without.output


TEXT = '''[stack]
name = "s"  # comment kept

[properties]
"a.b" = "1"
# a comment after the last key

[keypairs.k]
public_key = "ssh-ed25519 AAAA"
'''


def test_a_property_is_imported_as_one_line_after_the_last_key_of_its_table():
    kind = KINDS["properties"]
    text = kind.add_to_file(TEXT, "c.d", {"value": "2"})
    assert text == TEXT.replace('"a.b" = "1"\n', '"a.b" = "1"\n"c.d" = "2"\n')
    assert tomllib.loads(text)["properties"]["c.d"] == kind.file_entry({"value": "2"}) == "2"
    assert kind.add_to_file('[stack]\nname = "s"', "x", {"value": "v"}) == '[stack]\nname = "s"\n\n[properties]\nx = "v"\n'


def test_a_block_is_imported_as_its_table_at_the_end():
    kind = KINDS["keypairs"]
    text = kind.add_to_file(TEXT, "web key", {"public_key": "ssh-ed25519 BBBB"})
    assert text == TEXT + '\n[keypairs."web key"]\npublic_key = "ssh-ed25519 BBBB"\n'
    assert tomllib.loads(text)["keypairs"]["web key"] == kind.file_entry({"public_key": "ssh-ed25519 BBBB"})

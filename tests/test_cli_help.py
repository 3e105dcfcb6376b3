"""The command line itself: `recon --version` without loading the cloud libraries, shell completion, and
help texts shown as written (no `<bool>` on switches, no text lost to markup, defaults shown)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from e2e import cli_env, recon
from test_secret_scan import listed_commands

from reconciler import __version__


def test_version_is_quick_to_answer(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", "--version"], cwd=tmp_path,
                         env=cli_env({}), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == f"recon {__version__}\n"
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "reconciler" in imported   # the import log is there, and holds none of these
    assert not imported & {"boto3", "botocore", "typer", "click", "tomlkit", "cryptography", "reconciler.cli"}
    assert recon({}, "version", cwd=tmp_path).out == f"recon {__version__}\n"
    assert recon({}, "--debug", "--version", cwd=tmp_path).out == f"recon {__version__}\n"


def test_shell_completion(tmp_path: Path) -> None:
    # typer detects the shell from recon's parent process: a bash that stays to run a second command
    shown = subprocess.run(["bash", "-c", f"{sys.executable} -m reconciler --show-completion; true"], cwd=tmp_path,
                           env=cli_env({}), capture_output=True, text=True, timeout=120)
    assert "_RECON_COMPLETE=complete_bash" in shown.stdout and "complete -o default -F _recon_completion recon" \
        in shown.stdout, shown.stdout + shown.stderr
    for words, expected in (("recon sta", ["state"]), ("recon state ", ["list", "show", "rm", "mv"]),
                            ("recon drift --all", ["--all-unmanaged"])):
        completed = recon({"_RECON_COMPLETE": "complete_bash", "COMP_WORDS": words,
                           "COMP_CWORD": str(len(words.split(" ")) - 1)}, cwd=tmp_path)
        assert completed.out.split() == expected, (words, completed.both)


def test_every_commands_help(tmp_path: Path) -> None:
    for command in sorted(listed_commands()) + [""]:
        shown = recon({"COLUMNS": "200"}, *command.split(), "--help", cwd=tmp_path)
        assert shown.code == 0, (command, shown.both)
        assert "<bool>" not in shown.out, command
        assert not re.search(r"\w \.|\(\s*\)|\[\s*\]", shown.out), (command, shown.out)   # text lost to markup
        config = re.search(r"--config .*", shown.out)
        if config and command != "apply":
            assert "The desired-state file. [env var: RECON_CONFIG] [default: recon.toml]" in config.group(0), \
                (command, config.group(0))
    assert "[default: recon.toml, or the one the saved plan names]" in recon({"COLUMNS": "200"}, "apply", "--help",
                                                                             cwd=tmp_path).out
    assert "[drift] ignore_unmanaged" in recon({"COLUMNS": "200"}, "drift", "--help", cwd=tmp_path).out


def test_option_values_are_converted_as_typer_converts_them(tmp_path: Path) -> None:
    # recon converts plain values itself, without pydantic (reconciler/commands/coercion.py); typer judges the rest
    for args, message in ((["apply", "--parallelism", "0"], "Invalid value for '--parallelism': "),
                          (["apply", "--parallelism", "257"], "Invalid value for '--parallelism': "),
                          (["apply", "--parallelism", "x"], "Invalid value for '--parallelism': "),
                          (["plan", "--format", "JSON"], "'JSON' is not one of 'text', 'json', 'markdown'."),
                          (["plan", "--lock-timeout", "abc"], "'abc' is not a duration like 30s, 2m or 1h30m"),
                          (["init", "--example", "nope"], "'nope' is not one of 'loadbalancer', 'docker', 'lb-image'."),
                          (["sandbox", "--port", "x"], "Invalid value for '--port': ")):
        refused = recon({}, *args, cwd=tmp_path)
        assert refused.code == 1 and message in refused.both, (args, refused.both)
    for value in ("7", "+5", "05", "5_0", "256"):   # the forms typer reads as ints: the missing file is what is wrong
        taken = recon({}, "apply", "--parallelism", value, "-c", "absent.toml", "--lock-timeout", "2m",
                      "--target", "a.b", "--target", "c.d", cwd=tmp_path)
        assert taken.code == 1 and "absent.toml: file not found" in taken.both, (value, taken.both)


def test_the_command_run_is_built_alone_and_says_what_the_whole_app_says(tmp_path: Path) -> None:
    """A fresh `recon NAME …` builds only NAME's command (cli.command(only)); its help and its errors are
    the ones the whole app gives (the forked runs here reuse the whole command, built ahead)."""
    from reconciler import cli

    assert cli._invoked(["--debug", "plan", "-c", "x.toml"]) == "plan"
    assert cli._invoked(["--log-file", "plan", "state", "list"]) == "state"
    assert cli._invoked(["--log-file=debug.log", "validate"]) == "validate"
    assert cli._invoked(["image", "build", "--help"]) == "image"
    for whole in ([], ["--help"], ["valdate"], ["--bogus", "plan"]):
        assert cli._invoked(whole) is None, whole
    env = cli_env({"COLUMNS": "120"})
    for args in (["validate", "--help"], ["state", "--help"], ["image", "build", "--help"], ["apply", "--help"],
                 ["validate", "--bogus"], ["state", "nothing"]):
        alone = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
        whole = recon({"COLUMNS": "120"}, *args, cwd=tmp_path)
        assert (alone.returncode, alone.stdout, alone.stderr) == (whole.code, whole.out, whole.err), args

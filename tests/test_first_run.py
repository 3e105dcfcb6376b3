"""A first run as the README tells it: ``recon init`` for each example (valid, in fmt layout, planned
against the sandbox), the README's TOML samples validated and fmt-checked, and the README's
"Using it against a cloud" commands replayed as they are written, in a fresh folder, with a
``recon`` on PATH (this checkout's, run by this interpreter) and a terminal to answer "yes" on.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e import cli_env, recon, start_child

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_blocks(language: str, section: str | None = None) -> list[str]:
    """The README's fenced blocks of ``language`` (in the section titled ``section``, if given)."""
    text = README.read_text()
    if section is not None:
        start = text.index(f"## {section}\n")
        end = text.find("\n## ", start + 1)
        text = text[start:end if end != -1 else None]
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.M | re.S)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """One sandbox for the module's plans (they change nothing)."""
    with start_child(tmp_path_factory.mktemp("sandbox")) as child:
        yield child


@pytest.mark.parametrize("example", ["loadbalancer", "docker", "lb-image"])
def test_init_writes_a_starter_that_validates_formats_and_plans(example, cloud, tmp_path: Path) -> None:
    env = cloud.env
    made = recon({}, "init", "--example", example, cwd=tmp_path)
    assert made.code == 0, made.both
    assert (tmp_path / "recon.toml").is_file()
    for step in (["validate"], ["fmt", "--check"]):
        checked = recon({}, *step, cwd=tmp_path)
        assert checked.code == 0, (step, checked.both)
    planned = recon(env, "plan", "--detailed-exitcode", cwd=tmp_path)
    assert planned.code == 2, planned.both
    assert re.search(r"Plan: [1-9]\d* to add", planned.out), planned.out

    refused = recon({}, "init", "--example", example, cwd=tmp_path)
    assert refused.code == 1 and "would overwrite recon.toml" in refused.err
    (tmp_path / "recon.toml").write_text("# mine\n")
    assert (tmp_path / "recon.toml").read_text() == "# mine\n"
    forced = recon({}, "init", "--example", example, "--force", cwd=tmp_path)
    assert forced.code == 0 and (tmp_path / "recon.toml").read_text() != "# mine\n"


def test_readme_toml_samples_validate_and_are_formatted(tmp_path: Path) -> None:
    samples = readme_blocks("toml")
    assert samples, "the README has no TOML sample"
    for number, sample in enumerate(samples):
        work = tmp_path / f"sample{number}"
        work.mkdir()
        assert recon({}, "init", cwd=work).code == 0     # the keys the samples name
        (work / "recon.toml").write_text(sample)
        for step in (["validate"], ["fmt", "--check"]):
            checked = recon({}, *step, cwd=work)
            assert checked.code == 0, (number, step, checked.both)


@pytest.mark.slow
def test_readme_commands_replayed_in_a_fresh_folder(tmp_path: Path) -> None:
    (block,) = readme_blocks("sh", "Using it against a cloud")
    assert "&" not in block.replace("&&", ""), "a command left running in the background races the next one"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "recon"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "fresh"
    work.mkdir()
    env = cli_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    terminal, answers = pty.openpty()   # apply and destroy ask for "yes" on a terminal
    os.write(terminal, b"yes\nyes\n")
    try:
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, stdin=answers,
                             capture_output=True, text=True, timeout=900)
    finally:
        os.close(answers)
        os.close(terminal)
        subprocess.run([str(shim), "sandbox", "--stop", "--dir", ".sandbox"], cwd=work, env=env,
                       capture_output=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "recon sandbox ready:" in run.stdout
    assert "recon.toml: valid" in run.stdout
    assert "Apply complete! Resources: 3 added" in run.stdout
    assert "keypairs.euca-elb must be replaced (requested)" in run.stdout
    assert "Destroy complete!" in run.stdout
    assert "recon sandbox stopped" in run.stdout
    assert not (work / ".sandbox" / "sandbox.pid").exists()


def test_background_sandbox_refuses_a_second_start_and_stops(tmp_path: Path) -> None:
    started = recon({}, "sandbox", "--dir", "cloud", "--port", "0", "--background", cwd=tmp_path, timeout=300)
    try:
        assert started.code == 0, started.both
        assert started.out.startswith("recon sandbox ready: http://127.0.0.1:")
        eucarc = tmp_path / "cloud" / "eucarc"
        assert f"(source {eucarc})" in started.out and eucarc.is_file()
        second = recon({}, "sandbox", "--dir", "cloud", "--port", "0", "--background", cwd=tmp_path)
        assert second.code == 1 and "a sandbox already runs for this folder" in second.err
    finally:
        stopped = recon({}, "sandbox", "--stop", "--dir", "cloud", cwd=tmp_path)
    assert stopped.code == 0 and stopped.out.startswith("recon sandbox stopped (process "), stopped.both
    again = recon({}, "sandbox", "--stop", "--dir", "cloud", cwd=tmp_path)
    assert again.code == 0 and "no background sandbox runs for cloud" in again.out

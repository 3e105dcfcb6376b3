"""Environments (``[env.NAME]``) and vars (``${var.NAME}``) of one desired file (issue 16, item 6):
the real CLI, against the sandbox where a cloud is needed."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import jsonschema

from e2e import EXAMPLES, client, recon

ZONE = "ViciousLiesAndDangerousRumors"
SECRET = "MARKER-SECRET-e9b1"

#: Two environments of one stack, each with its own stack name (hence state and ownership tags),
#: its own group name (a var) and host count; production adds a key pair block of its own.
TWO_ENVS = f'''# one file, two stacks
[stack]
name = "web"

[vars]
hosts = 1
prefix = "web"
db_password = "{SECRET}"

[images.rootfs]
name = "ubuntu-raring-docker-rootfs"

[security_groups.web]
name = "${{var.prefix}}-web"
description = "web servers of ${{var.prefix}}"
ingress = [{{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }}]

[docker_hosts.web]
image = "${{images.rootfs.id}}"
instance_type = "m1.small"
zone = "{ZONE}"
security_groups = ["${{security_groups.web.name}}"]
count = "${{var.hosts}}"
tags = {{ role = "web", build = "${{var.build}}" }}

[env.staging.stack]
name = "web-staging"

[env.staging.vars]
prefix = "stg"
build = "s1"

[env.production]
stack = {{ name = "web-production" }}
vars = {{ prefix = "prd", hosts = 2, build = "p1" }}

[env.production.docker_hosts.web]
key_name = "${{keypairs.prd-admin.name}}"

[env.production.keypairs.prd-admin]
public_key_file = "keys/docker-admin.pub"
'''


def _work(tmp_path: Path, text: str = TWO_ENVS) -> Path:
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "keys", work / "keys")
    (work / "recon.toml").write_text(text)
    return work


def _hosts(env: dict[str, str], stack: str) -> list[dict]:
    reply = client(env, "ec2").describe_instances(Filters=[
        {"Name": "tag:recon:stack", "Values": [stack]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [instance for r in reply["Reservations"] for instance in r["Instances"]]


def test_two_environments_side_by_side(sandbox, tmp_path: Path) -> None:
    env = sandbox.env
    work = _work(tmp_path)

    staging = recon(env, "apply", "--env", "staging", "--auto-approve", cwd=work)
    assert staging.code == 0, staging.both
    assert "Stack web-staging" in staging.out
    assert SECRET not in staging.both

    # production plans only its own resources: staging's are neither orphans nor unmanaged to it
    plan = recon({**env, "RECON_ENV": "production"}, "plan", "--format", "json", cwd=work)
    assert plan.code == 0, plan.both
    changes = json.loads(plan.out)["resource_changes"]
    assert {c["address"]: c["actions"] for c in changes if c["actions"] != ["no-op"]} == {
        "security_groups.web": ["create"], "docker_hosts.web": ["create"], "keypairs.prd-admin": ["create"]}
    production = recon({**env, "RECON_ENV": "production"}, "apply", "--auto-approve", cwd=work)
    assert production.code == 0, production.both

    for name, stack in (("staging", "web-staging"), ("production", "web-production")):
        again = recon(env, "plan", "--env", name, "--detailed-exitcode", cwd=work)
        assert again.code == 0 and "No changes" in again.out, again.both
        drift = recon(env, "drift", "--env", name, cwd=work)
        assert drift.code == 0 and "No drift" in drift.out, drift.both
        assert (work / "state" / f"{stack}.json").exists()

    groups = {g["GroupName"]: g for g in client(env, "ec2").describe_security_groups()["SecurityGroups"]}
    assert groups["stg-web"]["Description"] == "web servers of stg"
    assert groups["prd-web"]["Description"] == "web servers of prd"
    (stg_host,) = _hosts(env, "web-staging")
    prd_hosts = _hosts(env, "web-production")
    assert len(prd_hosts) == 2
    assert {t["Key"]: t["Value"] for t in stg_host["Tags"]}["build"] == "s1"
    assert "KeyName" not in stg_host and {h["KeyName"] for h in prd_hosts} == {"prd-admin"}
    assert [g["GroupName"] for g in stg_host["SecurityGroups"]] == ["stg-web"]

    listed = recon(env, "state", "list", "--env", "staging", cwd=work)
    assert listed.code == 0 and "keypairs.prd-admin" not in listed.out and "docker_hosts.web" in listed.out
    shown = recon(env, "show", "--env", "production", cwd=work)
    assert shown.code == 0 and "# stack web-production" in shown.out and "keypairs.prd-admin" in shown.out

    # a saved plan keeps its environment, and refuses other values of the vars
    (work / "recon.toml").write_text(TWO_ENVS.replace('build = "s1"', 'build = "s2"'))
    saved = recon(env, "plan", "--env", "staging", "--var", "hosts=2", "--out", "staging.plan", cwd=work)
    assert saved.code == 0 and "count: 1 -> 2" in saved.out and 'tags.build: "s1" -> "s2"' in saved.out, saved.both
    stale = recon(env, "apply", "staging.plan", cwd=work)
    assert stale.code == 1 and "vars changed since the plan was made" in stale.err, stale.both
    applied = recon(env, "apply", "staging.plan", "--var", "hosts=2", cwd=work)
    assert applied.code == 0, applied.both
    assert len(_hosts(env, "web-staging")) == 2 and len(_hosts(env, "web-production")) == 2
    assert recon(env, "plan", "--env", "production", "--detailed-exitcode", cwd=work).code == 0

    # import into a file with environments writes the block into the base
    group = client(env, "ec2").create_security_group(GroupName="handmade", Description="by hand")["GroupId"]
    imported = recon(env, "import", "security_groups.handmade", group, "--env", "staging", "--var", "hosts=2",
                     cwd=work)
    assert imported.code == 0, imported.both
    document = tomllib.loads((work / "recon.toml").read_text())
    assert "handmade" in document["security_groups"]
    assert all("security_groups" not in body or "handmade" not in body["security_groups"]
               for body in document["env"].values())
    after = recon(env, "plan", "--env", "staging", "--var", "hosts=2", "--detailed-exitcode", cwd=work)
    assert after.code == 0, after.both

    # a var whose name looks secret never reaches output (a plan shows it as sensitive)
    text = (work / "recon.toml").read_text().replace('description = "web servers of ${var.prefix}"',
                                                       'description = "web servers ${var.db_password}"')
    (work / "recon.toml").write_text(text)
    for form in ("text", "json"):
        secret = recon(env, "plan", "--env", "staging", "--var", "hosts=2", "--format", form, cwd=work)
        assert secret.code == 0 and "security_groups.web" in secret.out, secret.both
        assert SECRET not in secret.both and "(sensitive)" in secret.out


def _validate(work: Path, *args: str, env: dict[str, str] | None = None):
    return recon(env or {}, "validate", *args, cwd=work)


def test_var_precedence(tmp_path: Path) -> None:
    """--var over RECON_VAR_ over the env's vars over [vars]; the stack name shows which won."""
    work = _work(tmp_path, '[stack]\nname = "${var.name}"\n\n[vars]\nname = "from-vars"\n\n'
                           '[env.a.vars]\nname = "from-env"\n\n[env.b.drift]\nignore = []\n')
    assert "(stack from-env:" in _validate(work, "--env", "a").out
    assert "(stack from-vars:" in _validate(work, "--env", "b").out
    assert "(stack from-environ:" in _validate(work, "--env", "a", env={"RECON_VAR_name": "from-environ"}).out
    both = _validate(work, "--env", "a", "--var", "name=from-flag", env={"RECON_VAR_name": "from-environ"})
    assert "(stack from-flag:" in both.out, both.both
    last = _validate(work, "--env", "a", "--var", "name=first", "--var", "name=second")
    assert "(stack second:" in last.out, last.both

    plain = _work(tmp_path / "plain", '[stack]\nname = "${var.name}-x"\n\n[vars]\nname = "base"\n')
    assert "recon.toml: valid (stack base-x:" in _validate(plain).out
    assert "(stack flag-x:" in _validate(plain, "--var", "name=flag").out


def test_typed_vars(tmp_path: Path) -> None:
    text = ('[stack]\nname = "t"\n\n[vars]\nhosts = 2\nopen = true\n\n[docker_hosts.d]\nimage = "emi-0123abcd"\n'
            'instance_type = "m1.small"\ncount = "${var.hosts}"\n\n[load_balancers.web]\nzones = ["z"]\n'
            'listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80 }]\n'
            'attributes = { cross_zone_load_balancing = "${var.open}" }\n')
    work = _work(tmp_path, text)
    assert _validate(work, "--var", "hosts=3", "--var", "open=false").code == 0
    for args, message in ((["--var", "hosts=three"], "--var hosts: expected an integer"),
                          (["--var", "open=yes"], "--var open: expected true or false"),
                          (["--var", "hots=3"], "--var hots: this file declares no var 'hots'"),
                          (["--var", "hosts"], "--var (the first): expected NAME=VALUE"),
                          (["--var", "9x=1"], "'9x' is not a var name")):
        run = _validate(work, *args)
        assert run.code == 1 and message in run.err and "Traceback" not in run.both, (args, run.both)
    assert "did you mean 'hosts'?" in _validate(work, "--var", "hots=3").err
    typed = _validate(work, env={"RECON_VAR_hosts": "-1"})
    assert typed.code == 1 and "docker_hosts.d.count: -1 is below the minimum 0" in typed.err
    environ = _validate(work, env={"RECON_VAR_hosts": "many"})
    assert environ.code == 1 and "RECON_VAR_hosts: expected an integer" in environ.err and "many" not in environ.err
    assert _validate(work, env={"RECON_VAR_unrelated": "x"}).code == 0   # the environment may serve other files


def test_validate_checks_every_environment(tmp_path: Path) -> None:
    text = TWO_ENVS.replace('instance_type = "m1.small"\n', 'instance_type = "m1.small"\ninstance_typo = 1\n')
    text += '\n[env.staging.docker_hosts.web]\ncount = -1\nimage = "${var.imgae}"\n'
    work = _work(tmp_path, text)
    lines = text.splitlines()
    typo = lines.index("instance_typo = 1") + 1
    count = lines.index("count = -1") + 1
    run = _validate(work)
    assert run.code == 1
    assert "3 problems in recon.toml" in run.err, run.err
    assert (f"recon.toml:{typo}: docker_hosts.web.instance_typo (envs staging, production): unknown key "
            "'instance_typo' (did you mean 'instance_type'?)") in run.err
    assert f"recon.toml:{count}: env.staging.docker_hosts.web.count: -1 is below the minimum 0" in run.err
    assert (f"recon.toml:{count + 1}: env.staging.docker_hosts.web.image: ${{var.imgae}}: no var 'imgae' is set "
            "(set it in [vars], with --var imgae=VALUE or RECON_VAR_imgae)") in run.err
    assert "reference" not in run.err     # the unset var is reported once, not again as a bad reference
    one = _validate(work, "--env", "production")
    assert one.code == 1 and "staging" not in one.err, one.err
    assert f"recon.toml:{typo}: docker_hosts.web.instance_typo (env production): unknown key" in one.err

    good = _work(tmp_path / "good")
    run = _validate(good)
    assert run.code == 0, run.both
    assert "recon.toml (env staging): valid (stack web-staging: 1 docker_hosts, 1 images, 1 security_groups)." \
        in run.out
    assert "recon.toml (env production): valid (stack web-production: 1 docker_hosts, 1 images, 1 keypairs, " \
           "1 security_groups)." in run.out
    assert SECRET not in run.both


def test_choosing_an_environment(tmp_path: Path) -> None:
    work = _work(tmp_path)
    for command in (["plan"], ["drift"], ["show"], ["state", "list"], ["apply", "--auto-approve"]):
        run = recon({}, *command, cwd=work)
        assert run.code == 1 and "this file holds environments (production, staging): choose one with --env NAME " \
                                 "(or RECON_ENV=NAME)" in run.err, (command, run.both)
    unknown = recon({}, "plan", "--env", "stagin", cwd=work)
    assert unknown.code == 1 and "no environment 'stagin'" in unknown.err
    assert "this file's environments are production, staging" in unknown.err and "did you mean 'staging'?" in unknown.err
    assert "no environment 'qa'" in recon({"RECON_ENV": "qa"}, "show", cwd=work).err

    plain = _work(tmp_path / "plain", '[stack]\nname = "plain"\n')
    run = _validate(plain, "--env", "staging")
    assert run.code == 1 and "environment 'staging' was chosen (--env or RECON_ENV), but this file has no " \
                             "[env.NAME] tables" in run.err
    assert _validate(plain, env={"RECON_ENV": ""}).code == 0   # an empty RECON_ENV chooses nothing


def test_environments_keep_apart(tmp_path: Path) -> None:
    """Two environments of one stack name (or one s3 state object) would share state and tags: refused."""
    same = TWO_ENVS.replace('stack = { name = "web-production" }', 'stack = { name = "web-staging" }')
    run = _validate(_work(tmp_path / "same", same))
    assert run.code == 1 and "env production and env staging are both stack 'web-staging'" in run.err, run.err
    base = TWO_ENVS.replace('[env.staging.stack]\nname = "web-staging"\n', "").replace(
        'stack = { name = "web-production" }\n', "")
    run = _validate(_work(tmp_path / "base", base))
    assert run.code == 1 and "are both stack 'web'" in run.err and "give each environment its own" in run.err
    s3 = TWO_ENVS.replace('[images.rootfs]', '[state]\nbackend = "s3"\nbucket = "st"\nkey = "web.json"\n\n'
                                             '[images.rootfs]')
    run = _validate(_work(tmp_path / "s3", s3))
    assert run.code == 1 and "keep their state in the same object" in run.err


def test_fmt_keeps_environments_and_schema_describes_them(tmp_path: Path) -> None:
    work = _work(tmp_path, TWO_ENVS.replace('[env.staging.vars]\nprefix = "stg"', '[env.staging.vars]\nprefix="stg"'))
    assert recon({}, "fmt", "--check", cwd=work).code == 1
    assert recon({}, "fmt", cwd=work).code == 0
    assert (work / "recon.toml").read_text() == TWO_ENVS
    assert recon({}, "fmt", "--check", cwd=work).code == 0

    schema = json.loads(recon({}, "schema", cwd=work).out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    document = tomllib.loads(TWO_ENVS)
    assert not list(validator.iter_errors(document))
    document["env"]["staging"]["docker_hosts"] = {"web": {"cuont": 1}}
    assert any("cuont" in error.message for error in validator.iter_errors(document))
    document["env"]["staging"]["docker_hosts"] = {"web": {"count": "${var.hosts}"}}
    assert not list(validator.iter_errors(document))
    document["vars"]["ratio"] = 1.5
    assert list(validator.iter_errors(document))

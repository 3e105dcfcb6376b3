"""`recon show PLANFILE` (text, JSON, markdown of a saved plan, without the cloud) and `recon output`
(what state holds of every resource's outputs, for people and scripts)."""

from __future__ import annotations

import json
from pathlib import Path

from e2e import client, copy_examples, hosts_stack, recon

LB = """
[load_balancers.front]
zones = ["ViciousLiesAndDangerousRumors"]
listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80 }]
instances = "${docker_hosts.web.instance_ids}"
"""


def test_show_a_saved_plan_and_the_outputs(installed_sandbox, tmp_path: Path) -> None:
    env = installed_sandbox.env
    work = copy_examples(tmp_path / "repo")
    (work / "recon.toml").write_text(hosts_stack("out", count=2, extra=LB))

    planned = recon(env, "plan", "--out", "first.plan", cwd=work)
    assert planned.code == 0, planned.both
    saved = json.loads((work / "first.plan").read_text())
    # Shown from the file alone: no cloud (its variables are not even set), no state.
    text = recon({}, "show", "first.plan", cwd=work)
    assert text.code == 0, text.both
    assert "# saved plan first.plan: stack out from recon.toml" in text.out
    assert "+ docker_hosts.web" in text.out and "+ load_balancers.front" in text.out
    assert "instances = (known after apply)" in text.out
    counts = saved["plan"]["summary"]
    assert f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy." in text.out
    shown_json = recon({}, "show", "first.plan", "-f", "json", cwd=work)
    assert json.loads(shown_json.out) == saved["plan"]
    markdown = recon({}, "show", "first.plan", "--format", "markdown", cwd=work)
    assert markdown.code == 0 and markdown.out.startswith("<!-- recon plan -->\n### recon plan for stack `out`")
    assert "<code>load_balancers.front</code> will be created" in markdown.out
    # the same text the plan printed when it was made (but the line saying where it was saved)
    assert text.out.split("\n", 1)[1] == planned.out.rsplit("Saved the plan", 1)[0]

    assert recon(env, "apply", "first.plan", cwd=work).code == 0

    # The outputs, all of them
    every = recon(env, "output", "--format", "json", cwd=work)
    assert every.code == 0, every.both
    outputs = json.loads(every.out)
    lb = client(env, "elb").describe_load_balancers(LoadBalancerNames=["front"])["LoadBalancerDescriptions"][0]
    assert outputs["load_balancers.front"]["dns_name"] == lb["DNSName"]
    ids = outputs["docker_hosts.web"]["instance_ids"]
    assert sorted(ids) == sorted(i["InstanceId"] for i in lb["Instances"]) and len(ids) == 2
    assert outputs["keypairs.admin"]["name"] == "admin" and outputs["images.rootfs"]["id"].startswith("emi-")
    listing = recon(env, "output", cwd=work).out
    assert f'load_balancers.front.dns_name = "{lb["DNSName"]}"' in listing

    # one output, bare for scripts; one instance; a list one item per line
    dns = recon(env, "output", "load_balancers.front.dns_name", cwd=work)
    assert dns.out == lb["DNSName"] + "\n"
    assert recon(env, "output", "docker_hosts.web[1].instance_ids", cwd=work).out == ids[1] + "\n"
    assert recon(env, "output", "docker_hosts.web.instance_ids", cwd=work).out == "".join(f"{i}\n" for i in ids)
    assert json.loads(recon(env, "output", "docker_hosts.web", "-f", "json", cwd=work).out)["instance_ids"] == ids
    assert json.loads(recon(env, "output", "load_balancers.front.dns_name", "-f", "json", cwd=work).out) == \
        lb["DNSName"]

    for args, message in ((("load_balancers.front.nope",), "has no output 'nope'"),
                          (("load_balancers.fron",), "did you mean 'load_balancers.front'?"),
                          (("show", "no-such.plan"), "plan file not found"),
                          (("show", "recon.toml"), "not a recon plan file"),
                          (("show", "-f", "markdown"), "--format markdown shows a saved plan")):
        command = ("output", *args) if args[0] != "show" else args
        failed = recon(env, *command, cwd=work)
        assert failed.code == 1 and message in failed.err and "Traceback" not in failed.err, failed.err

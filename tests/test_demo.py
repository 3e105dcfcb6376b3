"""`recon demo` runs the whole story, the Docker stack included, on its own sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import recon


@pytest.mark.slow
def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    run = recon({}, "demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path, timeout=900)
    assert run.code == 0, run.both
    assert "Demo complete" in run.out
    assert "### 12. Apply starts a new host in its place" in run.out
    assert "docker_hosts.docker: launching [1] (generation 1)" in run.out  # the terminated host's successor
    assert run.out.count("No drift: the cloud matches") == 2
    assert "### 2. A longer connect timeout" in run.out and "+ timeout connect 7s" in run.out
    assert run.out.count("haproxy -c: passed") >= 2
    # the fresh cloud's first LB image is v1; the load balancer's worker stays on v1, so v1 stays;
    # rolled onto v2, then v1 retired
    story = run.out.split("### 2. ")[1].split("### 4. ")[0]
    assert "! load_balancers.TemplateCheck: 1 worker runs v1, enabled is v2 (i-" in story
    assert "is kept (deposed, not retired): worker i-" in story.split("### 3. ")[0]
    rolled = story.split("### 3. ")[1]
    assert "-/+ load_balancers.TemplateCheck[i-" in rolled
    assert rolled.index("replacing worker i-") < rolled.index("lb_images.v1: destroying")
    assert "lb_images.v1 (deposed" in rolled and "Worker VMs: 1 on v2 (TemplateCheck)" in rolled
    assert "load_balancers.TemplateCheck: worker i-" in rolled and "runs v2 (" in rolled
    assert "+ option dontlognull" in run.out and "- contimeout      1000" in run.out   # the runbook's edit shows
    assert "Currently Installed Load Balancer Bundles:\n\nVersion 1 (enabled)\n" in run.out
    assert "installs as v2" in run.out and "template against v1 (emi-" in run.out
    # then the runbook's load balancer, made on the cloud that now has an LB image
    assert "### 4. What would recon change for the runbook's load balancer?" in run.out
    # the Docker image built from files, then a new root file system rolled out and the old image retired
    assert "### 13. A new Docker root file system" in run.out
    story = run.out.split("### 13.")[1]
    assert "+/- images.docker-rootfs" in story and "- images.docker-rootfs (deposed" in story
    assert "+/- docker_hosts.docker[0]" in story and "images.docker-kernel" not in story.split("Apply complete")[0]

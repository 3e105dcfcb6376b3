"""LB image revisions end to end: render without root, check with haproxy, bundle, install,
enable, change, retire, resume an interrupted upload — against the sandbox, which really
verifies every bundle it is asked to register."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest

from e2e import client, property_value, recon
from reconciler.imagebuild.testimage import make_test_image, pack_tgz

EMI = "loadbalancing.loadbalancer_emi"


def stack(source: str, blocks: dict[str, str], enabled: str) -> str:
    text = '[stack]\nname = "lbimg"\n\n'
    for name, timeout in blocks.items():
        text += (f'[lb_images.{name}]\nsource = "{source}"\n\n[lb_images.{name}.haproxy.defaults]\n'
                 f'"timeout connect" = "{timeout}"\n"timeout client" = "2m"\nretries = 3\n'
                 f'options = ["dontlognull", "redispatch", "http-server-close"]\n\n'
                 f'[lb_images.{name}.sysctl]\n"net.ipv4.tcp_keepalive_time" = 600\n\n')
    return text + f'[properties]\n"{EMI}" = "${{lb_images.{enabled}.image_id}}"\n'


@pytest.fixture
def work(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    filler = random.Random(4).randbytes(72 << 20)        # incompressible: the bundle has 8 parts
    image = make_test_image(tmp_path / "eucalyptus-load-balancer-image.img", fs_mib=90,
                            files={"/opt/servo/filler.bin": filler})
    pack_tgz(image, repo / "images" / "eucalyptus-load-balancer-image-1.1.0.tgz")
    return repo


def installed(env) -> list[dict]:
    images = client(env, "ec2").describe_images(Owners=["self"])["Images"]
    return sorted((i for i in images if "eucalyptus-load-balancer-image" in i.get("ImageLocation", "")),
                  key=lambda i: i["Name"])


def buckets(env) -> list[str]:
    return sorted(b["Name"] for b in client(env, "s3").list_buckets()["Buckets"] if b["Name"].startswith("loadbalancer"))


def test_install_enable_change_retire(sandbox, work: Path) -> None:
    env = sandbox.env
    source = "images/eucalyptus-load-balancer-image-1.1.0.tgz"
    (work / "recon.toml").write_text(stack(source, {"v1": "5s"}, "v1"))

    plan = recon(env, "plan", cwd=work)
    assert plan.code == 0, plan.both
    assert "haproxy -c: passed" in plan.out
    assert "--- a/etc/load-balancer-servo/haproxy_template.conf" in plan.out
    assert re.search(r"^\s+- contimeout\s+1000$", plan.out, re.M) and re.search(r"^\s+\+ timeout connect 5s$", plan.out, re.M)
    assert re.search(r"^\s+\+net.ipv4.tcp_keepalive_time = 600$", plan.out, re.M)
    digest = re.search(r'\+ digest = "([0-9a-f]{64})"', plan.out).group(1)

    first = recon(env, "apply", "--auto-approve", cwd=work)
    assert first.code == 0, first.both
    (v1,) = installed(env)
    assert v1["Name"] == "eucalyptus-load-balancer-image-v1"
    assert v1["ImageLocation"] == "loadbalancer-v1/eucalyptus-load-balancer-image.manifest.xml"
    assert v1["VirtualizationType"] == "hvm" and v1["Architecture"] == "x86_64"
    assert v1["Description"].startswith("Installed on ")
    assert {"Key": "recon:revision", "Value": digest} in v1["Tags"]
    assert property_value(env, EMI) == v1["ImageId"]
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0

    listing = recon(env, "images", cwd=work)
    assert listing.code == 0
    assert re.search(rf"^\*\s+v1\s+{v1['ImageId']}\s+loadbalancer-v1/", listing.out, re.M)

    # a new block with another timeout, enabled; the old one still in the file
    (work / "recon.toml").write_text(stack(source, {"v1": "5s", "v2": "7s"}, "v2"))
    second = recon(env, "apply", "--auto-approve", cwd=work)
    assert second.code == 0, second.both
    v1, v2 = installed(env)
    assert v2["Name"] == "eucalyptus-load-balancer-image-v2" and property_value(env, EMI) == v2["ImageId"]
    assert buckets(env) == ["loadbalancer-v1", "loadbalancer-v2"]

    # v1 leaves the file: retired (deregistered, bundle deleted); v2, which the property names, stays
    (work / "recon.toml").write_text(stack(source, {"v2": "7s"}, "v2"))
    retire = recon(env, "apply", "--auto-approve", cwd=work)
    assert retire.code == 0, retire.both
    assert [i["Name"] for i in installed(env)] == ["eucalyptus-load-balancer-image-v2"]
    assert buckets(env) == ["loadbalancer-v2"]

    # editing the enabled block in place: v3 is made and enabled before v2 goes
    (work / "recon.toml").write_text(stack(source, {"v2": "9s"}, "v2"))
    plan = recon(env, "plan", cwd=work)
    assert "must be replaced (new one created first)" in plan.out and "(deposed" in plan.out
    edited = recon(env, "apply", "--auto-approve", cwd=work)
    assert edited.code == 0, edited.both
    (v3,) = installed(env)
    assert v3["Name"] == "eucalyptus-load-balancer-image-v3" and property_value(env, EMI) == v3["ImageId"]
    assert buckets(env) == ["loadbalancer-v3"]
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0

    # the image the property names is never retired
    (work / "recon.toml").write_text('[stack]\nname = "lbimg"\n')
    refused = recon(env, "apply", "--auto-approve", cwd=work)
    assert refused.code == 1 and "still names it" in refused.err
    assert [i["ImageId"] for i in installed(env)] == [v3["ImageId"]]


def test_interrupted_upload_resumes(sandbox, work: Path) -> None:
    env = sandbox.env
    (work / "recon.toml").write_text(stack("images/eucalyptus-load-balancer-image-1.1.0.tgz", {"v1": "5s"}, "v1"))
    # the first PutObject is the bucket's revision marker; die after the second part landed
    killed = recon({**env, "RECON_CRASH_AFTER": "s3.PutObject:3"}, "apply", "--auto-approve", cwd=work)
    assert killed.code == -9
    stored = [o["Key"] for o in client(env, "s3").list_objects_v2(Bucket="loadbalancer-v1")["Contents"]]
    parts = [key for key in stored if ".part." in key]
    assert "recon-revision" in stored and 2 <= len(parts) < 8     # uploads run concurrently: 2, maybe a few more
    assert "eucalyptus-load-balancer-image.manifest.xml" not in stored and installed(env) == []
    lock = json.loads((work / "state" / "lbimg.json.lock").read_text())
    assert recon(env, "force-unlock", lock["id"], cwd=work).code == 0
    resumed = recon(env, "apply", "--auto-approve", cwd=work)
    assert resumed.code == 0, resumed.both
    assert f"({len(parts)} were already there)" in resumed.err
    (v1,) = installed(env)
    assert v1["Name"] == "eucalyptus-load-balancer-image-v1" and buckets(env) == ["loadbalancer-v1"]
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0


def test_image_build_without_cloud(work: Path, tmp_path: Path) -> None:
    (work / "recon.toml").write_text(stack("images/eucalyptus-load-balancer-image-1.1.0.tgz", {"v1": "5s"}, "v1"))
    out = tmp_path / "out"
    run = recon({}, "image", "build", "lb_images.v1", "--out", str(out), cwd=work)
    assert run.code == 0, run.both
    revision = json.loads((out / "revision.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", revision["digest"]) and revision["haproxy_check"]["status"] == "passed"
    assert "+ timeout connect 5s" in (out / "haproxy_template.conf.diff").read_text()
    assert (out / "eucalyptus-load-balancer-image-1.1.0.img").stat().st_size == (90 << 20) + 2048 * 512


def test_adopt_a_version_installed_before(sandbox, work: Path) -> None:
    env = sandbox.env
    (work / "recon.toml").write_text(stack("images/eucalyptus-load-balancer-image-1.1.0.tgz", {"v1": "5s"}, "v1"))
    assert recon(env, "apply", "--auto-approve", cwd=work).code == 0
    # make it look hand-installed: no recon tags, no state
    (image,) = installed(env)
    client(env, "ec2").delete_tags(Resources=[image["ImageId"]], Tags=[{"Key": t["Key"]} for t in image["Tags"]])
    shutil.rmtree(work / "state")
    listing = recon(env, "images", cwd=work)
    assert re.search(rf"^\*\s+v1\s+{image['ImageId']}\s", listing.out, re.M)
    assert "lb_images.v1 will be created" in recon(env, "plan", cwd=work).out
    adopted = recon(env, "import", "lb_images.v1", "v1", cwd=work)
    assert adopted.code == 0, adopted.both
    assert recon(env, "plan", "--detailed-exitcode", cwd=work).code == 0
    assert [i["ImageId"] for i in installed(env)] == [image["ImageId"]]


def test_plans_reuse_the_rendered_revision_until_the_source_changes(work: Path) -> None:
    import os

    from reconciler.engine import Workspace

    (work / "recon.toml").write_text(stack("images/eucalyptus-load-balancer-image-1.1.0.tgz", {"v1": "5s"}, "v1"))
    first = Workspace.open(work / "recon.toml", env={}).prepared()
    cache = list((work / ".recon-cache" / "lb_images").iterdir())
    assert len(cache) == 1
    again = Workspace.open(work / "recon.toml", env={}).prepared()
    assert again.resources == first.resources and len(list(cache[0].parent.iterdir())) == 1
    source = work / "images" / "eucalyptus-load-balancer-image-1.1.0.tgz"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000_000))
    touched = Workspace.open(work / "recon.toml", env={}).prepared()
    assert len(list(cache[0].parent.iterdir())) == 2  # a new key: rendered again from the source
    spec = next(iter(touched.resources.values()))
    assert spec.attrs["digest"] == next(iter(first.resources.values())).attrs["digest"]


def test_a_template_naming_a_file_the_image_lacks_fails_plan(tmp_path: Path) -> None:
    from reconciler.imagebuild.testimage import shipped_template

    (tmp_path / "images").mkdir()
    template = shipped_template("1.2.0").replace("/503.http", "/missing.http")
    image = make_test_image(tmp_path / "eucalyptus-load-balancer-image.img", servo_version="1.2.0", template=template)
    pack_tgz(image, tmp_path / "images" / "lb.tgz")
    (tmp_path / "recon.toml").write_text(stack("images/lb.tgz", {"v1": "5s"}, "v1"))
    plan = recon({}, "plan", cwd=tmp_path)
    assert plan.code == 1 and "Traceback" not in plan.err
    assert ("lb_images.v1.source: the template's line 15, errorfile 503, names "
            "/etc/load-balancer-servo/missing.http, which the image does not have") in plan.err

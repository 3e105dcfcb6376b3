"""LB image revisions end to end: render without root, check with haproxy, bundle, install,
enable, change, retire, resume an interrupted upload — against the sandbox, which really
verifies every bundle it is asked to register."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from e2e import client, property_value, recon
from reconciler.bundle.reader import extract_image
from reconciler.imagebuild.disk import ExtFileSystem, which
from reconciler.imagebuild.servo import ERROR_FILE, TEMPLATE_PATH
from reconciler.imagebuild.testimage import ERROR_503, GENERATIONS, make_test_image, pack_tgz
from test_imagebuild import CUSTOMIZED, RUNBOOK

EMI = "loadbalancing.loadbalancer_emi"


def stack(source: str, blocks: dict[str, str], enabled: str) -> str:
    text = '[stack]\nname = "lbimg"\n\n'
    for name, timeout in blocks.items():
        text += (f'[lb_images.{name}]\nsource = "{source}"\n\n[lb_images.{name}.haproxy.defaults]\n'
                 f'"timeout connect" = "{timeout}"\n"timeout client" = "2m"\nretries = 3\n'
                 f'options = ["dontlognull", "redispatch", "http-server-close"]\n\n'
                 f'[lb_images.{name}.sysctl]\n"net.ipv4.tcp_keepalive_time" = 600\n\n')
    return text + f'[properties]\n"{EMI}" = "${{lb_images.{enabled}.image_id}}"\n'


@pytest.fixture(scope="module")
def base_tgz(tmp_path_factory) -> Path:
    """The base image package, made once for the module: 72 MiB incompressible, so the bundle has 8 parts."""
    folder = tmp_path_factory.mktemp("base")
    filler = random.Random(4).randbytes(72 << 20)
    image = make_test_image(folder / "eucalyptus-load-balancer-image.img", fs_mib=90,
                            files={"/opt/servo/filler.bin": filler})
    return pack_tgz(image, folder / "eucalyptus-load-balancer-image-1.1.0.tgz")


@pytest.fixture
def work(tmp_path: Path, base_tgz: Path) -> Path:
    """A work folder with its own copy of the base image package."""
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    shutil.copyfile(base_tgz, repo / "images" / base_tgz.name)
    return repo


def installed(env) -> list[dict]:
    images = client(env, "ec2").describe_images(Owners=["self"])["Images"]
    return sorted((i for i in images if "eucalyptus-load-balancer-image" in i.get("ImageLocation", "")),
                  key=lambda i: i["Name"])


def buckets(env) -> list[str]:
    return sorted(b["Name"] for b in client(env, "s3").list_buckets()["Buckets"] if b["Name"].startswith("loadbalancer"))


@pytest.mark.slow
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

    assert re.fullmatch(r"Installed on \d{4}-\d\d-\d\d at \d\d:\d\d:\d\d \S+", v1["Description"])
    listing = recon(env, "images", cwd=work)
    assert listing.code == 0
    assert re.search(rf"^\*\s+v1\s+{v1['ImageId']}\s+{v1['Description'][13:].replace(' at ', ' ')}\s+"
                     r"lbimg:lb_images\.v1$", listing.out, re.M)
    assert max(len(line) for line in listing.out.splitlines()) <= 80
    installer = recon(env, "images", "--format", "installer", cwd=work)
    assert installer.out == ("Currently Installed Load Balancer Bundles:\n\nVersion 1 (enabled)\n"
                             f"{v1['ImageId']} (loadbalancer-v1/eucalyptus-load-balancer-image.manifest.xml)\n"
                             f"\t{v1['Description']}\n\n")
    (item,) = json.loads(recon(env, "images", "--format", "json", cwd=work).out)["images"]
    assert item == {"version": 1, "image_id": v1["ImageId"], "name": "eucalyptus-load-balancer-image-v1",
                    "location": v1["ImageLocation"], "description": v1["Description"], "enabled": True,
                    "digest": digest, "managed_by": "lbimg:lb_images.v1", "workers": {}}

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


@pytest.mark.slow
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
    # a part in flight when recon died may land after the listing above: the resume sees it too
    (total, skipped), = re.findall(r"(\d+) parts in loadbalancer-v1 \((\d+) were already there\)", resumed.err)
    assert len(parts) <= int(skipped) < int(total)
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


@pytest.mark.slow
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
    plan = recon(env, "plan", cwd=work).out
    assert "lb_images.v1 will be created" in plan
    assert "installs as v2" in plan               # one above every version the account has, recon's or not
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


# --------------------------------------------------------------------------------------------
# The runbook's customization on the image of each servo release, installed and read back


def runbook_stack(releases: dict[str, str], changed: dict[str, dict] | None = None, *, idle: int | None = None) -> str:
    """One block per release (name -> servo version) with the runbook's settings (and ``changed``'s),
    the emi on the newest, the runbook's load balancer."""
    text = '[stack]\nname = "runbook"\n\n'
    for name, version in releases.items():
        text += f'[lb_images.{name}]\nsource = "images/servo-{version}.tgz"\n\n[lb_images.{name}.haproxy.defaults]\n'
        for key, value in {**RUNBOOK, **(changed or {}).get(name, {})}.items():
            text += f'"{key}" = {json.dumps(value)}\n'
        text += "\n"
    text += f'[properties]\n"{EMI}" = "${{lb_images.{list(releases)[-1]}.image_id}}"\n\n'
    text += ('[load_balancers.TestLoadBalancer]\nzones = ["ViciousLiesAndDangerousRumors"]\n'
             'listeners = [{ lb_port = 80, protocol = "HTTP", instance_port = 80, instance_protocol = "HTTP" }]\n')
    if idle is not None:
        text += f"attributes = {{ idle_timeout = {idle} }}\n"
    return text


@pytest.fixture(scope="module")
def release_packages(tmp_path_factory) -> Path:
    """The base image of each servo release, as the package ships them, made once for the module."""
    folder = tmp_path_factory.mktemp("releases")
    for version in GENERATIONS:
        image = make_test_image(folder / f"eucalyptus-load-balancer-image-{version}.img", servo_version=version)
        pack_tgz(image, folder / f"servo-{version}.tgz")
    return folder


@pytest.fixture
def releases(tmp_path: Path, release_packages: Path) -> Path:
    """A work folder with its own copy of each release's base image."""
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    for version in GENERATIONS:
        shutil.copyfile(release_packages / f"servo-{version}.tgz", repo / "images" / f"servo-{version}.tgz")
    return repo


def read_back(sandbox, image: dict, dest: Path) -> ExtFileSystem:
    """The installed image, fetched from the cloud's object store and decrypted with the cloud's key."""
    bucket, manifest = image["ImageLocation"].split("/", 1)
    s3, folder = client(sandbox.env, "s3"), dest.parent / bucket
    folder.mkdir(parents=True)
    for item in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        (folder / item["Key"]).write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    cloud_key = load_pem_private_key((sandbox.directory / "cloud-pk.pem").read_bytes(), password=None)
    return ExtFileSystem.from_partition(extract_image(folder / manifest, cloud_key, dest))


RELEASES = {"r2014": "1.0.4", "r2015": "1.1.0", "r2016": "1.2.0"}     # address order is release order


@pytest.mark.slow
def test_the_runbook_customization_installs_on_each_servo_release(sandbox, releases: Path, tmp_path: Path) -> None:
    env = sandbox.env
    (releases / "recon.toml").write_text(runbook_stack(RELEASES))
    plan = recon(env, "plan", cwd=releases)
    assert plan.code == 0, plan.both
    for name, version in RELEASES.items():
        assert f"lb_images.{name}: unpacking servo-{version}.tgz" in plan.err      # the first plan says what it does
        block = plan.out[plan.out.index(f"# lb_images.{name} will be created"):]
        block = block[:block.index("\n\n")]
        assert f"servo {version} (read from /usr/lib/python2.6/site-packages/Eucalyptus_Loadbalancer_Servo-" \
               f"{version}-py2.6.egg-info)" in block
        assert "haproxy -c: passed (the template)" in block
        assert "load_balancers.TestLoadBalancer: haproxy -c: passed on what servo " \
               f"{version} writes (http-80)" in block
        # from servo 1.1 the listener timeouts come from the idle timeout: the template's 2m never applies
        overridden = '"timeout client" = "2m" and "timeout server" = "2m" do not reach listener traffic'
        assert (overridden in block) == (version >= "1.1")
        if version >= "1.1":
            assert "set attributes = { idle_timeout = 120 } on load_balancers.TestLoadBalancer " \
                   "(its idle timeout: 60 s) instead" in block
    assert [re.search(rf"# lb_images.{name} will be created.*?installs as (v\d+)", plan.out, re.S).group(1)
            for name in RELEASES] == ["v1", "v2", "v3"]

    applied = recon(env, "apply", "--auto-approve", cwd=releases)
    assert applied.code == 0, applied.both
    assert "unpacking" not in recon(env, "plan", cwd=releases).err       # rendered once, then cached
    images = {i["Name"]: i for i in installed(env)}
    assert sorted(images) == [f"eucalyptus-load-balancer-image-v{n}" for n in (1, 2, 3)]
    for number, (name, version) in enumerate(RELEASES.items(), 1):
        image = images[f"eucalyptus-load-balancer-image-v{number}"]
        assert image["VirtualizationType"] == "hvm"       # no kernel needed, as the installer registers it
        assert re.fullmatch(r"Installed on \d{4}-\d\d-\d\d at \d\d:\d\d:\d\d \S+", image["Description"])
        fs = read_back(sandbox, image, tmp_path / f"{name}.img")
        assert fs.read(TEMPLATE_PATH).decode() == CUSTOMIZED[version]
        assert (fs.stat(TEMPLATE_PATH).uid, fs.stat(TEMPLATE_PATH).gid) == (500, 500)
        done = subprocess.run([which("e2fsck"), "-fn", fs.device], capture_output=True)
        assert done.returncode == 0, done.stdout
        if version >= "1.2":
            assert f"errorfile 503 {ERROR_FILE}" in fs.read(TEMPLATE_PATH).decode()
            assert fs.read(ERROR_FILE) == ERROR_503

    # a longer client timeout on the 1.2 revision: a new version, reviewed against the one installed now
    (releases / "recon.toml").write_text(runbook_stack(RELEASES, {"r2016": {"timeout client": "3m"}}))
    changed = recon(env, "plan", cwd=releases)
    assert changed.code == 0, changed.both
    v3 = images["eucalyptus-load-balancer-image-v3"]["ImageId"]
    block = changed.out[changed.out.index("# lb_images.r2016 must be replaced"):]
    block = block[:block.index("\n\n")]
    assert f"(replaces v3 ({v3}), deleted once nothing uses it)" in block
    assert "installs as v4: image eucalyptus-load-balancer-image-v4 in bucket loadbalancer-v4" in block
    assert '"timeout client" = "3m" and "timeout server" = "2m" do not reach listener traffic' in block
    assert "set attributes = { idle_timeout = 180 }" in block
    assert f"template against v3 ({v3}), installed now:\n" \
           "      --- v3/etc/load-balancer-servo/haproxy_template.conf\n" \
           "      +++ v4/etc/load-balancer-servo/haproxy_template.conf\n" in block
    assert re.search(r"^      - timeout client 2m\n      \+ timeout client 3m$", block, re.M)
    assert "template against the base image:" in block
    assert "lb_images.r2014 " not in changed.out and "lb_images.r2015 " not in changed.out


EFFECTIVE_1_2 = r"""global
  maxconn 100000
  ulimit-n 655360
  pidfile /var/run/haproxy.pid
  #drop privileges after port binding
  user servo
  group servo

defaults
  timeout connect     5s
  timeout client 2m
  timeout server 2m
  errorfile 503 /etc/load-balancer-servo/503.http
  option dontlognull
  option redispatch
  option http-server-close
  retries 3
  timeout check 5s
  timeout http-keep-alive 10s
  timeout queue 1m

frontend http-80
  # lb-TestLoadBalancer
  mode http
  option forwardfor except 127.0.0.1
  reqadd X-Forwarded-Proto:\ http
  reqadd X-Forwarded-Port:\ 80
  bind 0.0.0.0:80
  timeout client 120s
  log /var/lib/load-balancer-servo/haproxy.sock local2 info
  log-format httplog\ %Ts\ %ci\ %cp\ %si\ %sp\ %Tq\ %Tw\ %Tc\ %Tr\ %Tt\ %ST\ %U\ %B\ %f\ %b\ %s\ %ts\ %r
  default_backend backend-http-80

backend backend-http-80
  mode http
  balance roundrobin
  timeout server 120s

"""


def test_the_effective_configuration_of_the_runbook_load_balancer(releases: Path, tmp_path: Path) -> None:
    (releases / "recon.toml").write_text(runbook_stack(RELEASES, idle=120))
    shown = recon({}, "image", "effective", "lb_images.r2016", "--lb", "TestLoadBalancer", cwd=releases)
    assert shown.code == 0, shown.both
    assert shown.out == EFFECTIVE_1_2                   # what /var/lib/load-balancer-servo/euca_haproxy.conf holds
    assert "haproxy -c: passed" in shown.err and "errorfile 503 /etc/load-balancer-servo/503.http read from " \
                                                 "the image" in shown.err
    # the 2014 servo writes no listener timeouts and the short log format; its template's timeouts apply
    old = recon({}, "image", "effective", "lb_images.r2014", "--lb", "load_balancers.TestLoadBalancer", cwd=releases)
    assert old.code == 0, old.both
    assert "  timeout client 2m\n" in old.out and "timeout client 120s" not in old.out
    assert r"  log-format httplog\ %f\ %b\ %s\ %ST\ %ts\ %Tq\ %Tw\ %Tc\ %Tr\ %Tt" in old.out
    for line in ("frontend http-80", "  default_backend backend-http-80", "backend backend-http-80",
                 "  balance roundrobin"):
        assert line in old.out.splitlines()

    built = recon({}, "image", "build", "lb_images.r2016", "--out", str(tmp_path / "out"), cwd=releases)
    assert built.code == 0, built.both
    assert "# load_balancers.TestLoadBalancer: what servo 1.2.0 writes to " \
           "/var/lib/load-balancer-servo/euca_haproxy.conf (haproxy -c: passed)\n" + EFFECTIVE_1_2 in built.out

    unknown = recon({}, "image", "effective", "lb_images.r2016", "--lb", "Nope", cwd=releases)
    assert unknown.code == 1 and "Nope is not a load balancer of" in unknown.err and "TestLoadBalancer" in unknown.err
    assert "Traceback" not in unknown.err


def test_listings_follow_the_installer() -> None:
    from reconciler.render.images import installer, table
    from reconciler.resources.tags import OWNER

    empty = "Currently Installed Load Balancer Bundles:\n\nNo load balancer images Installed.\n\n"
    assert installer([], set()) == empty
    images = [
        {"image_id": "emi-00000001", "version": None, "location": "images/eucalyptus-load-balancer-image.manifest.xml",
         "name": "odd", "description": None, "digest": None, OWNER: None},
        {"image_id": "emi-00000002", "version": 2, "location": "loadbalancer_v2/eucalyptus-load-balancer-image"
         ".manifest.xml", "name": "eucalyptus-load-balancer-image-v2", "description": "Installed on 2014-05-20 at "
         "10:11:12 PDT", "digest": None, OWNER: None},
        {"image_id": "emi-0123456789abcdef0", "version": 11, "location": "loadbalancer-v11/x.manifest.xml",
         "name": "eucalyptus-load-balancer-image-v11", "description": "Installed on 2024-01-02 at 03:04:05 UTC",
         "digest": "d" * 64, OWNER: {"stack": "a-rather-long-stack-name", "address": "lb_images.current"}},
    ]
    assert installer(images, {"emi-0123456789abcdef0"}) == (
        "Currently Installed Load Balancer Bundles:\n\n"
        "Version 0\nemi-00000001 (images/eucalyptus-load-balancer-image.manifest.xml)\n\n"
        "Version 2\nemi-00000002 (loadbalancer_v2/eucalyptus-load-balancer-image.manifest.xml)\n"
        "\tInstalled on 2014-05-20 at 10:11:12 PDT\n\n"
        "Version 11 (enabled)\nemi-0123456789abcdef0 (loadbalancer-v11/x.manifest.xml)\n"
        "\tInstalled on 2024-01-02 at 03:04:05 UTC\n\n")
    lines = table(images, {"emi-0123456789abcdef0"}).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["VERSION", "IMAGE", "INSTALLED", "RECON"]
    assert lines[1].split() == ["?", "emi-00000001", "-"]
    assert lines[3].startswith("*  v11") and lines[3].endswith("2024-01-02 03:04:05 UTC  a-rather-long-stack…")
    assert len(lines[3]) == 80


def test_an_image_that_does_not_say_its_servo_release(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    image = make_test_image(tmp_path / "eucalyptus-load-balancer-image.img", servo_version=None)
    pack_tgz(image, tmp_path / "images" / "servo-unknown.tgz")
    (tmp_path / "recon.toml").write_text(runbook_stack({"old": "unknown"}))
    refused = recon({}, "image", "effective", "lb_images.old", "--lb", "TestLoadBalancer", cwd=tmp_path)
    assert refused.code == 1 and "does not say which servo release its image carries" in refused.err
    assert "set servo_version in [lb_images.old]" in refused.err
    text = (tmp_path / "recon.toml").read_text().replace('source = "images/servo-unknown.tgz"\n',
                                                        'source = "images/servo-unknown.tgz"\nservo_version = "1.0.4"\n')
    (tmp_path / "recon.toml").write_text(text)
    shown = recon({}, "image", "effective", "lb_images.old", "--lb", "TestLoadBalancer", cwd=tmp_path)
    assert shown.code == 0, shown.both
    assert "servo 1.0.4 (servo_version in lb_images.old)" in shown.err and "frontend http-80\n" in shown.out

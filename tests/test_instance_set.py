"""The instance set's decisions, on DescribeInstances items as EC2 returns them: which instances
are parsed as the set's, which indexes a roll keeps, retires, launches and replaces, the batches
``max_unavailable`` makes, the generation and client token of each launch, and which indexes a
plan shows as replaced. (The cloud side -- hand-over order, waits, interrupts -- is driven end to
end in test_rolling, test_docker_hosts, test_interrupts and test_crash.)"""

from __future__ import annotations

import threading

import pytest

from reconciler.resources.instance_roll import (Instance, Launch, batches, client_token, next_generation, roll,
                                                run_request)
from reconciler.errors import CloudError
from reconciler.resources.instance_set import InstanceSet, each_at_once

HOSTS = InstanceSet("docker_hosts", noun="host")
SPEC = {"image": "emi-11111111", "instance_type": "m1.small"}
NEW_SPEC = {"image": "emi-22222222", "instance_type": "m1.small"}


def item(index: int, generation: int = 0, *, image: str = "emi-11111111", state: str = "running",
         address: str | None = None, serial: int | None = None, **extra) -> dict:
    """One instance as DescribeInstances lists it (recon's tags on it, as launched)."""
    tags = [{"Key": "recon:stack", "Value": "prod"},
            {"Key": "recon:address", "Value": address or f"docker_hosts.web[{index}]"},
            {"Key": "recon:generation", "Value": str(generation)},
            {"Key": "role", "Value": "docker"}]
    number = serial if serial is not None else index * 16 + generation
    return {"InstanceId": f"i-{number:08x}", "ImageId": image, "InstanceType": "m1.small", "KeyName": "admin",
            "State": {"Code": 16, "Name": state}, "PrivateIpAddress": f"10.0.0.{number + 10}",
            "Placement": {"AvailabilityZone": "one"}, "SecurityGroups": [{"GroupName": "web", "GroupId": "sg-1"}],
            "Tags": tags, **extra}


def instances(*items: dict) -> list[Instance]:
    found = [Instance.from_api(i, "docker_hosts") for i in items]
    assert None not in found
    return found


def ids(found) -> list[str]:
    return [i.id for i in found]


# --- reading instances -------------------------------------------------------------------
def test_an_instance_is_read_from_its_tags_and_launch():
    [host] = instances(item(2, 5, KernelId="eki-33333333"))
    assert (host.id, host.name, host.index, host.generation, host.state, host.private_ip) == \
        ("i-00000025", "web", 2, 5, "running", "10.0.0.47")
    assert host.launch == {"image": "emi-11111111", "kernel_id": "eki-33333333", "ramdisk_id": None,
                           "instance_type": "m1.small", "key_name": "admin", "zone": "one",
                           "security_groups": ["web"], "user_data_sha256": None}
    assert host.tags == {"role": "docker"}          # recon's own tags are not the user's
    assert host.present and host.matches(SPEC) and not host.matches(NEW_SPEC)


def test_groups_come_from_the_network_interface_when_the_reservation_has_none():
    vpc = item(0, SecurityGroups=[], NetworkInterfaces=[{"Groups": [{"GroupName": "b"}, {"GroupName": "a"}]}])
    assert instances(vpc)[0].launch["security_groups"] == ["a", "b"]


def test_only_the_kinds_own_addresses_are_its_instances():
    assert Instance.from_api(item(0, address="load_balancers.web[0]"), "docker_hosts") is None
    assert Instance.from_api(item(0), "docker") is None             # a prefix of the kind is not the kind
    assert Instance.from_api(item(0), "workers") is None
    assert Instance.from_api({**item(0), "Tags": []}, "docker_hosts") is None
    dotted = Instance.from_api(item(0, address="docker_hosts.a.b[7]"), "docker_hosts")
    assert (dotted.name, dotted.index) == ("a.b", 7)


def test_an_unreadable_generation_counts_as_zero_and_gone_states_are_not_present():
    host = instances({**item(1), "Tags": [{"Key": "recon:address", "Value": "docker_hosts.web[1]"},
                                          {"Key": "recon:generation", "Value": "x"}]})[0]
    assert host.generation == 0
    assert [h.present for h in instances(item(0, state="pending"), item(1, state="stopped"),
                                         item(2, state="shutting-down"), item(3, state="terminated"))] == \
        [True, True, False, False]


# --- rolls ---------------------------------------------------------------------------------
def test_a_new_set_launches_every_index():
    plan = roll([], SPEC, 3)
    assert (plan.kept, plan.beyond, plan.duplicates, plan.missing, plan.stale) == ({}, [], [], [0, 1, 2], {})


def test_matching_instances_are_kept_and_nothing_else_happens():
    found = instances(item(0), item(1))
    plan = roll(found, SPEC, 2)
    assert plan.kept == {0: found[0], 1: found[1]}
    assert (plan.beyond, plan.duplicates, plan.missing, plan.stale, plan.renewed) == ([], [], [], {}, [])


def test_an_index_renewed_on_request_is_replaced_though_it_matches():
    found = instances(item(0), item(1), item(2))
    plan = roll(found, SPEC, 3, renew={1})
    assert plan.kept == {0: found[0], 2: found[2]}
    assert plan.stale == {1: [found[1]]} and plan.missing == []


def test_replace_requests_name_present_indexes_or_all_of_them():
    live = HOSTS.view(instances(item(0), item(2)))
    assert [(r.label, r.old_ids) for r in HOSTS.requested("web", "2", live)] == \
        [("docker_hosts.web[2]", (instances(item(2))[0].id,))]
    assert [r.label for r in HOSTS.requested("web", None, live)] == ["docker_hosts.web[0]", "docker_hosts.web[2]"]
    for part in ("1", "x", "-1"):
        with pytest.raises(ValueError, match=r"the indexes of its hosts: \[0\], \[2\]"):
            HOSTS.requested("web", part, live)


def test_a_lower_count_retires_the_highest_indexes_first_and_the_survivors_keep_theirs():
    found = instances(item(0), item(3), item(1), item(2))
    plan = roll(found, SPEC, 2)
    assert sorted(plan.kept) == [0, 1]
    assert ids(plan.beyond) == ["i-00000030", "i-00000020"]
    assert plan.missing == [] and plan.stale == {}


def test_count_zero_retires_every_instance():
    plan = roll(instances(item(0), item(1)), SPEC, 0)
    assert plan.kept == {} and [h.index for h in plan.beyond] == [1, 0]


def test_a_higher_count_launches_only_the_new_indexes():
    plan = roll(instances(item(0), item(1)), SPEC, 4)
    assert sorted(plan.kept) == [0, 1] and plan.missing == [2, 3]


def test_a_changed_launch_replaces_every_index_in_order():
    found = instances(item(2), item(0), item(1))
    plan = roll(found, NEW_SPEC, 3)
    assert plan.kept == {} and plan.missing == []
    assert list(plan.stale) == [0, 1, 2]
    assert {i: ids(hosts) for i, hosts in plan.stale.items()} == {0: ["i-00000000"], 1: ["i-00000010"],
                                                                  2: ["i-00000020"]}


def test_after_an_apply_stopped_mid_roll_the_new_instance_takes_over_and_the_rest_goes_on():
    # index 0 was replaced (generation 1 runs beside the old one), index 1 not yet, index 2 has none
    found = instances(item(0, 0), item(0, 1, image="emi-22222222"), item(1, 0))
    plan = roll(found, NEW_SPEC, 3)
    assert plan.kept == {0: found[1]}
    assert ids(plan.duplicates) == ["i-00000000"] and plan.renewed == [0]
    assert list(plan.stale) == [1] and plan.missing == [2]


def test_of_two_matching_instances_at_an_index_the_newest_generation_stays():
    found = instances(item(0, 3, serial=1), item(0, 4, serial=0), item(0, 2, image="emi-22222222", serial=2))
    plan = roll(found, SPEC, 1)
    assert plan.kept[0].generation == 4
    assert sorted(h.generation for h in plan.duplicates) == [2, 3]


def test_only_the_launch_attributes_the_file_manages_are_compared():
    found = instances(item(0, Placement={"AvailabilityZone": "two"}))
    assert roll(found, SPEC, 1).kept == {0: found[0]}
    assert list(roll(found, {**SPEC, "zone": "one"}, 1).stale) == [0]


def test_max_unavailable_makes_batches_in_index_order():
    assert batches([0, 1, 2, 3, 4], 1) == [[0], [1], [2], [3], [4]]
    assert batches([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert batches([1, 3], 5) == [[1, 3]]
    assert batches([], 2) == []


def test_a_launch_has_a_generation_above_every_one_seen_at_its_index():
    seen = instances(item(0, 0), item(0, 2, state="terminated"), item(1, 6))
    assert [next_generation(seen, i) for i in (0, 1, 2)] == [3, 7, 0]


# --- launching exactly once -------------------------------------------------------------------
LAUNCH = Launch({"ImageId": "emi-0123abcd", "InstanceType": "m1.small", "KeyName": "k",
                 "Placement": {"AvailabilityZone": "one"}, "SecurityGroups": ["a", "b"]},
                user_data="#cloud-config\n", user_data_sha256="ab" * 32)


def test_the_run_request_carries_recons_tags_the_users_and_a_token_that_never_changed():
    request = run_request("prod", "docker_hosts.web", 1, 3, LAUNCH, {"team": "x"})
    # pinned: a token that changed between versions would launch a second host on a resumed apply
    assert request["ClientToken"] == "a5b8c10d210d367dc135c41516743d2a82bb18416d0b5445018a7cd7931801ee"
    assert (request["MinCount"], request["MaxCount"], request["UserData"]) == (1, 1, "#cloud-config\n")
    assert request["TagSpecifications"] == [{"ResourceType": "instance", "Tags": [
        {"Key": "recon:stack", "Value": "prod"}, {"Key": "recon:address", "Value": "docker_hosts.web[1]"},
        {"Key": "recon:generation", "Value": "3"}, {"Key": "recon:user-data-sha256", "Value": "ab" * 32},
        {"Key": "team", "Value": "x"}]}]
    assert request["KeyName"] == "k" and request["Placement"] == {"AvailabilityZone": "one"}


def test_the_token_is_the_same_for_the_same_launch_and_new_for_any_other():
    token = run_request("prod", "docker_hosts.web", 1, 3, LAUNCH, {})["ClientToken"]
    assert run_request("prod", "docker_hosts.web", 1, 3, LAUNCH, {})["ClientToken"] == token
    others = [run_request("prod", "docker_hosts.web", 1, 4, LAUNCH, {}),
              run_request("prod", "docker_hosts.web", 2, 3, LAUNCH, {}),
              run_request("test", "docker_hosts.web", 1, 3, LAUNCH, {}),
              run_request("prod", "docker_hosts.api", 1, 3, LAUNCH, {}),
              run_request("prod", "docker_hosts.web", 1, 3, LAUNCH, {"team": "x"}),
              run_request("prod", "docker_hosts.web", 1, 3, Launch({**LAUNCH.params, "InstanceType": "m1.large"},
                                                                   LAUNCH.user_data, LAUNCH.user_data_sha256), {}),
              run_request("prod", "docker_hosts.web", 1, 3, Launch(LAUNCH.params, "#cloud-config\na: 1\n",
                                                                   "cd" * 32), {})]
    assert len({token, *(o["ClientToken"] for o in others)}) == 1 + len(others)
    assert token == client_token("prod", "docker_hosts.web", 1, 3, {
        **{k: v for k, v in run_request("prod", "docker_hosts.web", 1, 3, LAUNCH, {}).items()
           if k not in ("ClientToken", "UserData")}, "UserData": "ab" * 32})


def test_without_user_data_nothing_is_sent_or_tagged_for_it():
    request = run_request("prod", "docker_hosts.web", 0, 0, Launch({"ImageId": "emi-1", "InstanceType": "t"}), {})
    assert "UserData" not in request
    assert [t["Key"] for t in request["TagSpecifications"][0]["Tags"]] == [
        "recon:stack", "recon:address", "recon:generation"]


# --- what a plan shows ------------------------------------------------------------------------
def test_the_live_view_summarises_launches_and_keeps_each():
    view = HOSTS.view(instances(item(1, image="emi-22222222"), item(0)))
    assert (view["count"], view["indexes"], view["instance_ids"]) == (2, [0, 1], ["i-00000000", "i-00000010"])
    assert view["image"] == ["emi-11111111", "emi-22222222"] and view["instance_type"] == "m1.small"
    assert [launch["image"] for launch in view["launches"]] == ["emi-11111111", "emi-22222222"]
    assert view["tags"] == {"role": "docker"}
    assert HOSTS.view([])["count"] == 0 and HOSTS.view([])["image"] is None


def test_a_plan_replaces_the_indexes_below_count_whose_instances_all_differ():
    live = HOSTS.view(instances(item(0, 0), item(0, 1, image="emi-22222222"), item(1), item(2), item(3)))
    replaced = HOSTS.replacements("web", {**NEW_SPEC, "count": 3}, live)
    assert [(r.label, r.old_ids) for r in replaced] == [("docker_hosts.web[1]", ("i-00000010",)),
                                                        ("docker_hosts.web[2]", ("i-00000020",))]
    assert HOSTS.replacements("web", {**SPEC, "count": 4}, live) == []


def test_a_set_that_compares_fewer_launch_attributes_replaces_less():
    images_only = InstanceSet("docker_hosts", launch_attrs=("image",))
    live = images_only.view(instances(item(0)))
    assert images_only.replacements("web", {"image": "emi-11111111", "instance_type": "m1.large", "count": 1},
                                    live) == []
    assert images_only.compare_view({"image": "emi-11111111", "instance_type": "m1.large", "count": 1}, live,
                                    None) == ({"image": "emi-11111111", "count": 1, "indexes": [0]},
                                              {"image": "emi-11111111", "count": 1, "indexes": [0]})


def test_the_diff_sees_count_indexes_launch_and_only_the_managed_tags():
    live = HOSTS.view(instances(item(0), item(2)))
    want, have = HOSTS.compare_view({**SPEC, "count": 2, "tags": {"team": "a"}}, live, {"tags": {"old": "x"}})
    assert want == {**SPEC, "count": 2, "indexes": [0, 1], "tags": {"team": "a"}}
    assert have == {**SPEC, "count": 2, "indexes": [0, 2], "tags": {}}
    # no live host: the launch attributes are not a difference, count is
    want, have = HOSTS.compare_view({**SPEC, "count": 1}, HOSTS.view([]), None)
    assert have == {**SPEC, "count": 0, "indexes": []} and want["count"] == 1


def test_launches_run_together_up_to_the_limit_and_return_by_index():
    started, running, most = [], [0], [0]
    lock = threading.Lock()
    first_three = threading.Barrier(3, timeout=60)   # passes only if three run at once

    def work(item: int) -> str:
        with lock:
            started.append(item)
            running[0] += 1
            most[0] = max(most[0], running[0])
        if item < 3:
            first_three.wait()
        with lock:
            running[0] -= 1
        return f"i-{item}"

    assert each_at_once(work, [4, 0, 2, 1, 3, 5, 6], 3) == {i: f"i-{i}" for i in [4, 0, 2, 1, 3, 5, 6]}
    assert list(each_at_once(work, [4, 0, 2, 1, 3, 5, 6], 3)) == [4, 0, 2, 1, 3, 5, 6]
    assert most[0] == 3 and sorted(started) == sorted([4, 0, 2, 1, 3, 5, 6] * 2)


def test_after_a_failed_launch_no_other_starts_and_the_failure_is_raised():
    started = []

    def work(item: int) -> str:
        started.append(item)
        if item == 1:
            raise CloudError("RunInstances failed", where=f"docker_hosts.web[{item}]")
        return f"i-{item}"

    with pytest.raises(CloudError, match="RunInstances failed"):
        each_at_once(work, [0, 1, 2, 3], 1)
    assert started == [0, 1]

"""The planner's steps on their own: the empty-read guard, target selection, what references see (at plan
and at apply time), and that a change stays as the planner made it."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest

from reconciler.addresses import Address, Reference, SubAddress
from reconciler.errors import PlanError
from reconciler.plan import UNKNOWN, Action, Change, Payload
from reconciler.planner import dependents, guard, select
from reconciler.references import Planned, References
from reconciler.resources import KINDS
from reconciler.resources.abilities import Removal, removal
from reconciler.state.model import Entry, State

GROUP = Address("security_groups", "web")


def test_guard_refuses_an_empty_read_while_state_holds_resources() -> None:
    state = State(stack="t")
    guard(state, {})                                  # nothing known, nothing read: a new stack
    state.resources[GROUP] = Entry(GROUP, "web", {})
    guard(state, {"keypairs": {"k": {}}})             # something read: planned as usual
    with pytest.raises(PlanError, match="wrong endpoint or wrong credentials"):
        guard(state, {"security_groups": {}, "keypairs": {}})


def test_select_is_everything_without_targets_and_the_closure_with() -> None:
    assert select([], {}) is None
    assert select([GROUP], {}) == {GROUP}


def test_a_destroy_target_takes_what_depended_on_it_along() -> None:
    lb, hosts, key = Address("load_balancers", "web"), Address("docker_hosts", "web"), Address("keypairs", "admin")
    state = State(stack="t")
    state.resources[key] = Entry(key, "admin", {})
    state.resources[hosts] = Entry(hosts, "web", {}, depends_on=[key])
    state.resources[lb] = Entry(lb, "web", {}, depends_on=[hosts])
    assert dependents([key], state) == {key, hosts, lb}
    assert dependents([hosts], state) == {hosts, lb}
    assert dependents([lb], state) == {lb}


def test_a_replace_address_is_a_block_or_a_part_of_one() -> None:
    hosts, prop = Address("docker_hosts", "web"), Address("properties", "a.b[1]")
    known = {hosts, prop}
    assert SubAddress.parse("docker_hosts.web", known) == SubAddress(hosts)
    assert SubAddress.parse("docker_hosts.web[1]", known) == SubAddress(hosts, "1")
    assert str(SubAddress(hosts, "1")) == "docker_hosts.web[1]"
    assert SubAddress.parse("properties.a.b[1]", known) == SubAddress(prop)      # a name with brackets in it
    assert SubAddress.parse("docker_hosts.other[1]", known) == SubAddress(Address("docker_hosts", "other[1]"))
    with pytest.raises(ValueError):
        SubAddress.parse("nodot", known)


def planned(action: Action, resolved: dict, live: dict | None, changed: list[str] = ()) -> Planned:
    return Planned(Change(GROUP, action, live, resolved, changed_paths=list(changed)), resolved, live)


def test_a_reference_to_a_block_made_anew_is_unknown_where_the_cloud_computes_it() -> None:
    refs = References()
    refs.add(GROUP, planned(Action.CREATE, {"description": "web"}, None))
    assert refs.value(Reference(GROUP, "group_id")) is UNKNOWN
    assert refs.value(Reference(GROUP, "description")) == "web"
    assert refs.pending([GROUP])


def test_a_reference_to_an_unchanged_block_reads_the_live_value_under_the_files() -> None:
    refs = References()
    refs.add(GROUP, planned(Action.NOOP, {"description": "web"}, {"group_id": "sg-1", "description": "old"}))
    assert refs.value(Reference(GROUP, "group_id")) == "sg-1"
    assert refs.value(Reference(GROUP, "description")) == "web"
    assert refs.value(Reference(Address("security_groups", "other"), "group_id")) is UNKNOWN
    assert not refs.pending([GROUP])
    assert not refs.sensitive(Reference(GROUP, "group_id"))


def test_once_apply_made_a_block_its_references_take_what_the_cloud_gave() -> None:
    create = planned(Action.CREATE, {"description": "web"}, None)
    refs = References.of([replace(create.change, payload=Payload(desired={"description": "web"}))])
    assert refs.value(Reference(GROUP, "group_id")) is UNKNOWN       # the applier starts from the plan's view
    refs.made(GROUP, {"description": "web", "group_id": "sg-2"})
    assert refs.value(Reference(GROUP, "group_id")) == "sg-2"


def test_a_change_is_not_patched_after_it_is_made() -> None:
    change = planned(Action.UPDATE, {"description": "web"}, {"description": "old"}, ["description"]).change
    with pytest.raises(FrozenInstanceError):
        change.reason = "patched"       # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        change.payload.desired = {}     # type: ignore[misc]


def test_leaving_the_file_deletes_unless_the_kinds_settings_keep_it() -> None:
    assert removal(KINDS["security_groups"], "web", {}) is Removal.DELETE
    assert removal(KINDS["properties"], "cloud.x", {}) is Removal.FORGET
    assert removal(KINDS["properties"], "cloud.x", {"reset": ["cloud.x"]}) is Removal.DELETE

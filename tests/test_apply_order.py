"""The order apply runs changes in: references first, deletes reversed."""

from __future__ import annotations

from graphlib import TopologicalSorter

from reconciler.addresses import Address
from reconciler.apply import apply_order
from reconciler.plan import Action, Change

LB = Address("load_balancers", "web")
SG = Address("security_groups", "internal")
KEY = Address("keypairs", "k")
PROP = Address("properties", "loadbalancing.loadbalancer_vm_keyname")


def sequence(changes: list[Change]) -> list[Address]:
    return [address for address, _ in TopologicalSorter(apply_order(changes)).static_order()]


def change(address: Address, action: Action, *deps: Address, before: tuple[Address, ...] = ()) -> Change:
    return Change(address, action, None, None, depends_on=list(deps), prior_depends_on=list(before))


def test_creates_follow_their_references() -> None:
    order = sequence([change(SG, Action.CREATE, LB), change(LB, Action.CREATE),
                      change(PROP, Action.UPDATE, KEY), change(KEY, Action.CREATE)])
    assert order.index(LB) < order.index(SG)
    assert order.index(KEY) < order.index(PROP)


def test_deletes_run_in_reverse() -> None:
    order = sequence([change(LB, Action.DELETE), change(SG, Action.DELETE, LB)])
    assert order == [SG, LB]


def test_a_resource_stops_using_what_is_deleted_first() -> None:
    # the property referenced the key pair; now the key pair leaves the file and the property does not
    order = sequence([change(KEY, Action.DELETE), change(PROP, Action.UPDATE, before=(KEY,))])
    assert order == [PROP, KEY]


def test_independent_changes_have_no_edges() -> None:
    graph = apply_order([change(LB, Action.CREATE), change(KEY, Action.CREATE), change(PROP, Action.UPDATE)])
    assert all(not preds for preds in graph.values())


def test_a_deposed_object_goes_after_its_replacement_and_its_users() -> None:
    image = Address("lb_images", "v3")
    emi = Address("properties", "loadbalancing.loadbalancer_emi")
    new = change(image, Action.CREATE_THEN_DELETE)
    old = Change(image, Action.DELETE, {}, None, deposed_id="digest-of-v2")
    graph = apply_order([old, change(emi, Action.UPDATE, image), new])
    order = list(TopologicalSorter(graph).static_order())
    assert order.index(new.key) < order.index((emi, "")) < order.index(old.key)

"""The pull-request comment stays under the size limit and leads with what matters."""

from __future__ import annotations

from reconciler.addresses import Address
from reconciler.plan import Action, Change, Plan
from reconciler.render.markdown import LIMIT, render_markdown


def big_plan(n: int) -> Plan:
    changes = []
    for i in range(n):
        action = Action.DELETE if i % 5 == 0 else Action.UPDATE
        before = {"zones": [f"zone-{j}" for j in range(4)], "listeners": [{"lb_port": 80 + j} for j in range(3)]}
        after = None if action is Action.DELETE else {"zones": ["zone-x"], "listeners": [{"lb_port": 443}]}
        changes.append(Change(Address("load_balancers", f"lb-{i:03d}"), action, before, after,
                              changed_paths=["listeners", "zones"]))
    return Plan("big", changes)


def test_500_changes_stay_under_the_limit_with_counts_and_warning_first() -> None:
    out = render_markdown(big_plan(500))
    assert len(out) < LIMIT
    head = out[: out.index("<details>")]
    assert "**Plan: 0 to add, 400 to change, 100 to destroy.**" in head
    assert "[!WARNING]" in head and "**100 to destroy:**" in head and "and 80 more" in head
    assert "changes are not shown to keep this comment under 60,000 characters" in out
    shown = out.count("<details>")
    assert 0 < shown < 500
    assert f"{500 - shown} of 500 changes are not shown" in out


def test_small_plan_is_complete_and_masks_secrets() -> None:
    change = Change(Address("properties", "objectstorage.s3provider.s3secretkey"), Action.UPDATE,
                    {"value": "old-secret"}, {"value": "new-secret"}, changed_paths=["value"],
                    sensitive_paths=["value"])
    out = render_markdown(Plan("s", [change]))
    assert "old-secret" not in out and "new-secret" not in out and "(sensitive)" in out
    assert "[!WARNING]" not in out and "not shown" not in out
    assert "```diff" in out and "\n! " in out


def test_no_changes() -> None:
    assert "**No changes.**" in render_markdown(Plan("s", []))


def test_a_replaced_revision_is_named_once_and_its_diff_keeps_the_marks_in_column_one() -> None:
    image = Address("lb_images", "v1")
    new = Change(image, Action.CREATE_THEN_DELETE, {"digest": "a" * 64}, {"digest": "b" * 64},
                 changed_paths=["digest"], reason="replaces v1 (emi-12345678), deleted once nothing uses it",
                 notes=["installs as v2: image eucalyptus-load-balancer-image-v2 in bucket loadbalancer-v2",
                        'Warning: "timeout client" = "2m" does not reach listener traffic',
                        "--- v1/etc/load-balancer-servo/haproxy_template.conf",
                        "+++ v2/etc/load-balancer-servo/haproxy_template.conf", "@@ -12,3 +12,3 @@",
                        " defaults", "- timeout connect     5s", "+ timeout connect 7s", "+option redispatch"])
    old = Change(image, Action.DELETE, {"digest": "a" * 64}, None, changed_paths=["digest"], deposed_id="a" * 64)
    out = render_markdown(Plan("s", [new, old]))
    assert "**1 to destroy:** `lb_images.v1`\n" in out
    lines = out.splitlines()
    for line in ("- timeout connect     5s", "+ timeout connect 7s", "+option redispatch", " defaults",
                 "+++ v2/etc/load-balancer-servo/haproxy_template.conf", "@@ -12,3 +12,3 @@"):
        assert line in lines                                 # exactly as the diff has it: the mark in column one
    assert '! Warning: "timeout client" = "2m" does not reach listener traffic' in lines
    assert "  installs as v2: image eucalyptus-load-balancer-image-v2 in bucket loadbalancer-v2" in lines
    assert f"lb_images.v1 (deposed {'a' * 64})" in out       # the whole digest, as everywhere else

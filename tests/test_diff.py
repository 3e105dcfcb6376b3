"""reconciler.diff: which attribute paths a plan reports as changed."""

from reconciler.diff import changed_paths, get_path


def test_paths_descend_into_tables_and_stop_at_lists():
    before = {"health_check": {"interval": 30, "target": "HTTP:80/"}, "listeners": [{"port": 80}], "name": "a"}
    after = {"health_check": {"interval": 10, "target": "HTTP:80/"}, "listeners": [{"port": 81}], "name": "a"}
    assert changed_paths(before, after) == ["health_check.interval", "listeners"]


def test_set_valued_attribute_is_reported_whole():
    before = {"ingress": {"tcp:22": {"cidr": "0.0.0.0/0"}}}
    after = {"ingress": {"tcp:22": {"cidr": "10.0.0.0/8"}}}
    assert changed_paths(before, after, set_attrs=("ingress",)) == ["ingress"]
    assert changed_paths(before, after) == ["ingress.tcp:22.cidr"]


def test_type_changes_are_changes():
    assert changed_paths({"a": 1, "b": ["1"]}, {"a": 1.0, "b": [1]}) == ["a", "b"]
    assert changed_paths({"a": True}, {"a": 1}) == ["a"]
    assert changed_paths({"a": [1, {"x": None}]}, {"a": [1, {"x": None}]}) == []


def test_added_removed_and_unlike_tables():
    assert changed_paths({"a": 1}, {"b": 1}) == ["a", "b"]
    assert changed_paths({}, {"a": 1}) == ["a"]
    assert changed_paths({"t": {"x": 1, "y": 2}}, {"t": {"x": 1}}) == ["t.y"]
    # nothing in common: one change of the whole table
    assert changed_paths({"t": {}}, {"t": {"x": 1, "y": 2}}) == ["t"]
    assert changed_paths({"t": {"x": 1}}, {"t": {"y": 1}}) == ["t"]


def test_get_path():
    assert get_path({"a": {"b": 2}}, "a.b") == 2
    assert get_path({"a": 3}, "a.b") is None
    assert get_path({"a": 3}, "") == {"a": 3}

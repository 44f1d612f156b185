"""Trove view details: flavor ids, pagination links, user path segments."""

from __future__ import annotations

from coffer.api.routes.admin_ops import split_user
from coffer.api.views import flavor_id_value, paginate


def test_flavor_ids_are_ints_only_when_trove_would_say_so() -> None:
    assert flavor_id_value("2") == 2
    assert flavor_id_value("0") == 0
    assert flavor_id_value("02") is None
    assert flavor_id_value("m1.small") is None


def test_pagination_links_point_at_the_next_marker() -> None:
    items = [{"id": str(i)} for i in range(5)]
    page, links = paginate(items, 2, None, "http://h/v1.0/p/instances")
    assert [i["id"] for i in page] == ["0", "1"]
    assert links == [{"rel": "next", "href": "https://h/v1.0/p/instances?limit=2&marker=1"}]
    page, links = paginate(items, 2, "3", "http://h/v1.0/p/instances")
    assert [i["id"] for i in page] == ["4"] and links == []
    assert paginate(items, None, None, "u") == (items, [])


def test_user_segments_split_on_the_last_at() -> None:
    assert split_user("bob") == ("bob", "%")
    assert split_user("bob%4010.0.0.2") == ("bob", "10.0.0.2")
    assert split_user("a@b@%25") == ("a@b", "%")

"""The containers a worker started from a snapshot holds: items made on first use, and writes beside them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geofences.names import Names
from geotarget.catalog.lazy import LazyMap, Rows, later


def _names(ids: list[str]) -> Names:
    return Names(*Names.arrays(ids))


def test_a_stored_item_is_made_at_each_read_and_never_kept():
    """The decoder keeps what it should (a bounded cache): the map holds no object per stored item."""
    made: list[int] = []
    items = LazyMap(_names(["a", "b", "c"]), lambda n: made.append(n) or f"item {n}")
    assert items["b"] == items.get("b") == "item 1"
    assert made == [1, 1] and items.known() == []
    assert "c" in items and "z" not in items and items.get("z") is None
    assert sorted(items) == ["a", "b", "c"] and len(items) == 3


def test_writes_replace_and_remove_stored_items():
    items = LazyMap(_names(["a", "b", "c"]), lambda n: f"item {n}")
    items["a"] = "new a"
    items["d"] = "new d"
    del items["b"]
    assert dict(items) == {"a": "new a", "c": "item 2", "d": "new d"}
    assert items.pop("c") == "item 2" and "c" not in items


def test_a_write_while_a_reader_decodes_the_stored_item_stays():
    """A request thread decoding an offer's snapshot form while a write replaces that offer gets the old form
    (as if it had read just before), and never puts it back over the new one for the next reader."""
    items: LazyMap[str] = LazyMap(_names(["offer"]), lambda n: "old")

    def decode_while_a_write_lands(n: int) -> str:
        items["offer"] = "new"  # the writer, between the reader's look and its decoding
        return "old"

    items._decode = decode_while_a_write_lands
    assert items.get("offer") == "old"
    assert items["offer"] == "new" and items.known() == ["new"]


def test_among_finds_the_marked_stored_items_and_every_one_written_since():
    items = LazyMap(_names(["a", "b", "c", "d"]), lambda n: f"item {n}")
    items["a"] = "new a"
    items["e"] = "new e"
    assert items.get("c") == "item 2"
    assert sorted(items.among([1, 0])) == ["item 1", "new a", "new e"]


def test_later_decodes_what_the_map_held_when_taken():
    items = LazyMap(_names(["a", "b"]), lambda n: f"item {n}")
    taken = later(items)
    items["a"] = "new a"
    del items["b"]
    assert taken() == {"a": "item 0", "b": "item 1"}


def test_rows_decode_stored_rows_and_keep_added_ones():
    rows = Rows(lambda i: i * 10, 3)
    rows.append(99)
    assert len(rows) == 4 and rows[1] == 10 and rows[3] == 99
    assert rows[1:] == [10, 20, 99] and list(rows) == [0, 10, 20, 99]


@given(st.lists(st.text(min_size=1, max_size=12).filter(lambda t: "\0" not in t), unique=True, max_size=40))
def test_stored_names_are_found_by_their_number_and_nothing_else(ids: list[str]) -> None:
    names = _names(ids)
    assert [names.name(n) for n in range(len(ids))] == ids
    assert all(names.stored_number(i) == n for n, i in enumerate(ids))
    assert names.stored_number("not one of them" * 3) is None
    added = names.append("later")
    assert names.number("later") == added == len(ids) and names.name(added) == "later"

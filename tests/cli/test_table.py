"""The listings' plain tables: aligned columns, one row per line, bad rows refused."""

import pytest

from totoshka.cli.table import render


def test_columns_are_padded_to_their_widest_cell() -> None:
    text = render("Styles", ("id", "title"), [("wave", "The Great Wave"), ("la_muse", "Muse")])
    lines = text.splitlines()
    assert lines[0] == "Styles"
    assert lines[1] == "id       title"
    assert lines[2] == "-------  --------------"
    assert lines[3] == "wave     The Great Wave"
    assert lines[4] == "la_muse  Muse"


def test_cyrillic_titles_align_by_characters() -> None:
    lines = render("t", ("ru", "x"), [("Муза", "1"), ("Крик Мунка", "2")]).splitlines()
    assert lines[3].index("1") == lines[4].index("2")


def test_a_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="cells"):
        render("t", ("a", "b"), [("only one",)])

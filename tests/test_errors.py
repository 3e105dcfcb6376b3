"""How messages show values: every character a terminal would not show as itself is escaped."""

from __future__ import annotations

import sys
import unicodedata

from reconciler.errors import HIDDEN_CATEGORIES, printable, shown


#: Every code point of the first planes' scripts and punctuation, and a stride through the rest:
#: all seven hidden categories and every visible one occur.
POINTS = [*range(0x3000), *range(0x3000, sys.maxunicode + 1, 97), 0xE000, 0xFEFF, 0xD800, 0x10FFFF]


def test_every_category_is_shown_as_itself_only_if_it_prints() -> None:
    assert {unicodedata.category(chr(p)) for p in POINTS} >= HIDDEN_CATEGORIES | {"Lu", "Ll", "Zs", "So", "Mn"}
    for point in POINTS:
        char = chr(point)
        hidden = unicodedata.category(char) in HIDDEN_CATEGORIES and char not in "\t\n"
        text = printable(f"a{char}b")
        assert (text == f"a{char}b") is not hidden, (hex(point), text)
        if hidden:
            assert text == f"a\\{'x' if point < 0x100 else 'u' if point < 0x10000 else 'U'}" \
                           f"{point:0{2 if point < 0x100 else 4 if point < 0x10000 else 8}x}b", (hex(point), text)


def test_a_whole_line_of_plain_text_is_unchanged_and_a_hidden_character_in_it_is_escaped() -> None:
    line = "images.docker.source: 'rootfs.img' is not a file " * 3
    assert printable(line) == line
    assert printable(line + "\u202e") == line + "\\u202e"
    assert shown("it's\x1b[31m") == "'it\\'s\\x1b[31m'"

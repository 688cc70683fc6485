"""Users' values quoted in messages stay short, however large or nested."""

from autotag.text import SHOWN_CHARS, counted, human_duration, one_line, shorten, shown


def test_a_long_text_is_cut_and_marked_and_a_short_one_kept() -> None:
    assert shorten("piano") == "piano"
    cut = shorten("x" * 1000)
    assert len(cut) == SHOWN_CHARS and cut.endswith("...")


def test_a_message_over_several_lines_becomes_one_short_line() -> None:
    assert one_line("RuntimeError:\n  shapes   differ\n\tat layer 3") == "RuntimeError: shapes differ at layer 3"
    assert len(one_line("word " * 1000)) == 300


def test_a_huge_nested_value_is_quoted_by_a_short_prefix() -> None:
    bomb = [[["deep"] * 10_000] * 10_000] * 10_000  # shared references: a YAML alias bomb's shape
    quoted = shown({"lr": bomb, "name": "n" * 10_000})
    assert len(quoted) <= SHOWN_CHARS and quoted.startswith("{")


def test_a_count_takes_its_noun_in_the_singular_only_for_one() -> None:
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]


def test_durations_read_as_precisely_as_an_estimate_deserves() -> None:
    assert [human_duration(s) for s in (0.2, 42, 420, 9000)] == ["1 s", "42 s", "7 min", "2.5 h"]

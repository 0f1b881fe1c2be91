"""bench/compare_revisions.py reads the figures benches print, in the wordings the benches
have had (the reshaping changed several), so that a revision's and this tree's line up."""

from __future__ import annotations

from bench.compare_revisions import Figure, collect, figures

OLD_RATIO = ("%%sprite_exec echo hi / %%bash echo hi: ours median 12.3 ms, baseline median "
             "4.5 ms; ratio min 1.20x median 2.70x (target <= 1.3x)")
NEW_RATIO = ("%%sprite_exec echo hi / %%bash echo hi: ours min 11.0 ms median 12.0 ms; "
             "baseline min 4.0 ms median 4.4 ms; ratio min 1.10x median 1.20x "
             "(target <= 1.3x: ok)")


def test_a_compare_line_of_either_wording_gives_the_same_names() -> None:
    old, new = figures(OLD_RATIO), figures(NEW_RATIO)
    name = "%%sprite_exec echo hi / %%bash echo hi"
    assert old[f"{name} / ours [median]"] == ("median", "ms", 12.3, True)
    assert new[f"{name} / ours [median]"] == ("median", "ms", 12.0, True)
    assert new[f"{name} / baseline [min]"] == ("min", "ms", 4.0, True)
    assert old[f"{name} / ratio [median]"] == ("median", "x", 2.7, True)  # "<=": up is worse
    assert set(old) < set(new)  # the old wording printed no min of ours and the baseline


def test_summary_lines_thousands_and_throughput() -> None:
    found = figures("first magic (%sprite use, the README's first) with the server running: "
                    "min 1.2 ms, median 2.3 ms (target <= 20 ms)\n"
                    "  write      min  0.123 s  median  0.234 s    123.4 MB/s  1.2x disk copy\n"
                    "%%sprite_exec printing 100,000 lines: 2.00 s, 20 redraws\n"
                    "  transfer  min 1,234.5 MB/s   median 1,100.0 MB/s (target >= 0.3x)\n")
    head = "first magic (%sprite use, the README's first) with the server running"
    assert found[f"{head} [min]"] == ("min", "ms", 1.2, True)
    assert found["write [median]"] == ("median", "s", 0.234, True)
    assert found["transfer [min]"] == ("min", "MB/s", 1234.5, False)  # down is worse
    assert len(found) == 6  # the line without min/median is not a figure


def test_values_printed_alone_count_as_medians_under_their_labels() -> None:
    found = figures("1. exec throughput: ours 123.456 MB/s, sprites-py 100.000 MB/s, ratio "
                    "1.235x (target >= 1.0x)\n3. list: ours 0.012 s, ratio 0.600x\n"
                    "2. push + pull of a 20 MB DataFrame (5 interleaved samples)\n")
    assert found == {
        "1. exec throughput / ours [median]": ("median", "MB/s", 123.456, False),
        "1. exec throughput / sprites-py [median]": ("median", "MB/s", 100.0, False),
        "1. exec throughput / ratio [median]": ("median", "x", 1.235, False),
        "3. list / ours [median]": ("median", "s", 0.012, True),
        "3. list / ratio [median]": ("median", "x", 0.6, True)}


def test_rounds_gather_into_the_least_min_and_the_median_of_medians() -> None:
    gathered: dict[str, Figure] = {}
    for median in (12.0, 20.0, 13.0):
        collect(gathered, f"x: ours min {median - 1} ms median {median} ms")
    figure = gathered["x / ours"]
    assert (figure.low(), figure.typical(), figure.unit) == (11.0, 13.0, "ms")
    assert figure.spread() == (20.0 - 12.0) / 13.0

"""The book's claim rule (lstm_rl_lib.claims): solves = every seed at the level; beats = every seed of A
above every seed of B; fewer than three seeds = not shown."""
import pytest

from lstm_rl_lib.claims import MIN_SEEDS, Claims, describe


def test_solves_needs_every_seed_at_the_level():
    c = Claims()
    assert c.solves("all three", [0.95, 1.0, 0.97], level=0.95).holds
    assert not c.solves("one seed short", [0.95, 1.0, 0.94], level=0.95).holds
    assert c.held == 1 and len(c.items) == 2


def test_beats_needs_every_seed_of_a_above_every_seed_of_b():
    c = Claims()
    assert c.beats("separated", [480, 500, 470], [300, 469, 100]).holds
    overlap = c.beats("one overlap", [480, 500, 300], [310, 200, 100])
    assert not overlap.holds and overlap.rule == "every seed of A > every seed of B"
    assert not c.beats("a tie is not a win", [400, 500, 450], [400, 100, 0]).holds


def test_neither_holds_only_when_the_seeds_overlap_or_tie():
    c = Claims()
    assert c.neither("interleaved", [247, 236, 206], [237, 226, 269]).holds
    assert c.neither("a tie at the top", [487, 500, 500], [500, 500, 500]).holds
    assert not c.neither("A above every B", [480, 500, 470], [300, 469, 100]).holds
    assert not c.neither("B above every A", [1, 2, 3], [4, 5, 6]).holds
    assert not c.neither("two seeds", [1, 5], [2, 4, 3]).holds


def test_stays_below_and_custom_checks():
    c = Claims()
    assert c.stays_below("never solves", [0.5, 0.55, 0.45], level=0.6).holds
    assert not c.stays_below("one seed gets there", [0.5, 0.61, 0.45], level=0.6).holds
    assert c.check("equal to float64 precision", 1e-12 < 1e-10, "1e-12", "< 1e-10").holds


def test_too_few_seeds_is_not_shown():
    c = Claims()
    item = c.solves("two seeds", [1.0, 1.0], level=0.5)
    assert not item.holds and item.rule.startswith("not shown") and str(MIN_SEEDS) in item.rule
    assert not c.beats("two against three", [9, 9], [1, 1, 1]).holds


def test_bad_input_says_what_was_wrong():
    c = Claims()
    with pytest.raises(ValueError, match="NaN among the per-seed values"):
        c.solves("nan", [1.0, float("nan"), 1.0], level=0.5)
    with pytest.raises(ValueError, match="no values"):
        c.beats("empty", [], [1, 2, 3])
    with pytest.raises(ValueError, match="needs its sentence"):
        c.solves("", [1, 1, 1], level=0)


def test_table_and_measurement_format():
    assert describe([1, 2, 3]) == "2.00 ± 0.82 [1.00, 2.00, 3.00]"
    c = Claims()
    c.solves("LSTM solves it", [1, 1, 1], level=0.95)
    c.beats("LSTM beats stacking", [1, 1, 1], [0.5, 0.6, 0.4])
    table = c.table()
    assert table.count("\n") == 3 and "| LSTM solves it | 1.00 ± 0.00 [1.00, 1.00, 1.00] | every seed ≥ 0.95 | holds |" in table

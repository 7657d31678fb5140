"""Checks for the exercises of Chapter 2 (tabular Q-learning).

Each check takes the student's function (or answer) and the cases to try; the chapter's check cell calls
it on the visible cases, and an instructor's hidden tests call it again on cases the student never sees.
"""
from __future__ import annotations

from . import ExerciseFailed, check_function

#: CliffWalking's corridor: the goal is 11 columns east of the start.
CLIFF_WIDTH = 11


def check_greedy_path_return(path_return_fn, rows=(1,)) -> bool:
    """Exercise 1: ``path_return_fn(rows)`` = the return (gamma 1, -1 per step) of the path that climbs
    ``rows`` rows above the cliff row, walks east to the goal's column and climbs back down."""
    def reference(r):
        return -(CLIFF_WIDTH + 2 * r)

    return check_function("greedy path return", path_return_fn, reference,
                          [(f"{r} row(s) above the cliff", (r,)) for r in rows], atol=0, rtol=0,
                          output_names=("return",))


def check_rows_from_return(rows, greedy_return) -> bool:
    """Exercise 1, second part: ``rows`` is how far above the cliff row a path of ``greedy_return`` runs."""
    if not isinstance(rows, int) or isinstance(rows, bool):
        raise ExerciseFailed(f"rows above the cliff: expected a whole number of rows, got {rows!r}")
    expected = (-greedy_return - CLIFF_WIDTH) / 2
    if rows != expected:
        raise ExerciseFailed(f"rows above the cliff: a path with return {greedy_return:g} is not {rows} row(s) above "
                             f"the cliff (a path {rows} row(s) up returns {-(CLIFF_WIDTH + 2 * rows)})")
    print(f"PASS  rows above the cliff: a return of {greedy_return:g} is {rows} row(s) up")
    return True


def check_truncated_value(value_fn, cases=((99, 0.9, 100),)) -> bool:
    """Exercise 2: ``value_fn(t, gamma, limit)`` = the value a learner converges to at step ``t`` when it
    takes the time limit for a termination, on a task that pays -1 per step forever."""
    def reference(t, gamma, limit):
        return -(1 - gamma ** (limit - t)) / (1 - gamma)

    return check_function("value with truncation taken for termination", value_fn, reference,
                          [(f"t = {t}, gamma = {g}, limit {n}", (t, g, n)) for t, g, n in cases],
                          atol=1e-9, rtol=1e-9, output_names=("value",))


def check_smallest_window(window_fn, lengths=(5,)) -> bool:
    """Exercise 3: ``window_fn(length)`` = the fewest last observations a table must see to solve the T-maze."""
    return check_function("smallest window", window_fn, lambda n: n + 1,
                          [(f"corridor length {n}", (n,)) for n in lengths], atol=0, rtol=0,
                          output_names=("window",))

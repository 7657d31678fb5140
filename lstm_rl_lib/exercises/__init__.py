"""Automatic checks for the book's exercises.

Every exercise cell in a chapter holds the solution between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (nbgrader's convention) and ends with a call to a check from this package,
e.g. ``check_gru_cell(gru_cell)``. A check runs the reader's function and the reference on fixed
inputs, prints ``PASS`` or raises :class:`ExerciseFailed` with what differed: the case, the shapes,
the largest difference and where it is. ``python3 book.py student`` writes copies of the chapters
with each solution replaced by ``raise NotImplementedError``, for handing out.

Exercise cells are self-contained (they import what they use), so a check can also be run on
the cell alone.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np


class ExerciseFailed(AssertionError):
    """An exercise's check found the answer wrong (or missing); the message says what differed."""


def _describe(value) -> str:
    arr = np.asarray(value)
    return f"array of shape {arr.shape}" if arr.ndim else repr(value)


def _compare(name: str, got, expected, atol: float, rtol: float) -> str | None:
    """None when ``got`` matches ``expected``; otherwise a sentence that says how it differs."""
    try:
        got_arr = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got, dtype=float)
    except (TypeError, ValueError):
        return f"{name}: expected {_describe(expected)}, got a {type(got).__name__} that is not numeric"
    exp_arr = np.asarray(expected, dtype=float)
    if got_arr.shape != exp_arr.shape:
        return f"{name}: expected shape {exp_arr.shape}, got shape {got_arr.shape}"
    if not np.all(np.isfinite(got_arr)):
        return f"{name}: contains NaN or inf"
    diff = np.abs(got_arr - exp_arr)
    if np.all(diff <= atol + rtol * np.abs(exp_arr)):
        return None
    where = np.unravel_index(np.argmax(diff), diff.shape) if diff.ndim else ()
    return (f"{name}: largest difference {diff.max():.3g} at index {tuple(int(i) for i in where)} "
            f"(got {got_arr[where]:.6g}, expected {exp_arr[where]:.6g}); tolerance {atol:g} + {rtol:g}*|expected|")


def check_function(title: str, student_fn: Callable, reference_fn: Callable, cases: Iterable[tuple],
                   atol: float = 1e-8, rtol: float = 1e-6, output_names: tuple[str, ...] | None = None) -> bool:
    """Compare ``student_fn(*args)`` with ``reference_fn(*args)`` on every case in ``cases``.

    Each case is ``(description, args)``. Outputs may be a number, an array or a tuple of those
    (compared element by element, named by ``output_names``). Prints ``PASS`` with the number of
    cases, or raises :class:`ExerciseFailed` naming the first case that differs and how.
    """
    cases = list(cases)
    for description, args in cases:
        try:
            got = student_fn(*args)
        except NotImplementedError:
            raise ExerciseFailed(f"{title}: not implemented yet (replace `raise NotImplementedError` with your code)") from None
        except Exception as err:  # the reader's code crashed: say where, keep the traceback
            raise ExerciseFailed(f"{title}: your function raised {type(err).__name__}: {err} (case: {description})") from err
        expected = reference_fn(*args)
        if isinstance(expected, tuple):
            if not isinstance(got, tuple) or len(got) != len(expected):
                n = len(got) if isinstance(got, tuple) else 1
                raise ExerciseFailed(f"{title}: expected a tuple of {len(expected)} outputs, got {n} (case: {description})")
            names = output_names or tuple(f"output {k}" for k in range(len(expected)))
            pairs = list(zip(names, got, expected))
        else:
            pairs = [((output_names or ("output",))[0], got, expected)]
        for name, g, e in pairs:
            problem = _compare(name, g, e, atol, rtol)
            if problem:
                raise ExerciseFailed(f"{title}: wrong on case '{description}': {problem}")
    print(f"PASS  {title}: matches the reference on all {len(cases)} cases")
    return True

"""A chapter's claims as executed checks over its measured numbers, with the book's one rule.

The rule, stated once and applied in every chapter:

- **A solves the task**: A reaches the level on *every* seed (``solves``).
- **A beats B**: *every* seed of A ends above *every* seed of B, same task, same environment steps,
  same seeds (``beats``).
- **A stays below a level** on every seed (``stays_below``): the claim "B does not solve it".
- **Neither beats the other** (``neither``): the seeds overlap, so by the rule above no winner is shown.

A comparison needs at least :data:`MIN_SEEDS` seeds on each side; with fewer it is "not shown".
With three seeds the rule often says "not shown": the prose then says that.

Usage at the end of a chapter's Results::

    claims = Claims()
    claims.solves("LSTM solves the T-maze, corridor 10", lstm_success, level=0.95)
    claims.stays_below("no frame-stacking seed reaches 0.6", stack_success, level=0.6)
    claims.beats("LSTM beats frame stacking", lstm_success, stack_success)
    claims.show()          # the claims table; python3 book.py run counts how many hold
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

#: Metadata key of the claims table's output; ``python3 book.py run`` and the tests read it.
CLAIMS_KEY = "lstm_rl_claims"
#: The fewest seeds on which a claim can hold.
MIN_SEEDS = 3


@dataclass
class Claim:
    claim: str
    measured: str
    holds: bool
    rule: str


def _values(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{name}: no values (one number per seed expected)")
    if np.isnan(arr).any():
        raise ValueError(f"{name}: NaN among the per-seed values {arr.tolist()}; every seed needs a number")
    return arr


def describe(values, digits: int = 2) -> str:
    """``mean ± std [per seed]``, the way every claims table writes a measurement."""
    v = np.asarray(values, dtype=float).ravel()
    per_seed = ", ".join(f"{x:.{digits}f}" for x in v)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f} [{per_seed}]"


class Claims:
    """The claims of one chapter, each checked by the book's rule when it is written down."""

    def __init__(self, digits: int = 2):
        self.items: list[Claim] = []
        self.digits = digits

    def _add(self, claim: str, measured: str, holds: bool, rule: str, *arrays) -> Claim:
        if not claim or not isinstance(claim, str):
            raise ValueError("a claim needs its sentence, e.g. 'LSTM solves the T-maze, corridor 10'")
        few = [len(a) for a in arrays if len(a) < MIN_SEEDS]
        if few:
            holds, rule = False, f"not shown: {min(few)} seed(s), the rule needs at least {MIN_SEEDS}"
        item = Claim(claim, measured, bool(holds), rule)
        self.items.append(item)
        return item

    def solves(self, claim: str, values: Sequence[float], level: float) -> Claim:
        """Holds when every seed's value is at least ``level``."""
        v = _values(claim, values)
        return self._add(claim, describe(v, self.digits), bool((v >= level).all()),
                         f"every seed ≥ {level:g}", v)

    def stays_below(self, claim: str, values: Sequence[float], level: float) -> Claim:
        """Holds when every seed's value is below ``level`` (the agent does not solve it on any seed)."""
        v = _values(claim, values)
        return self._add(claim, describe(v, self.digits), bool((v < level).all()),
                         f"every seed < {level:g}", v)

    def beats(self, claim: str, a: Sequence[float], b: Sequence[float]) -> Claim:
        """Holds when every seed of ``a`` is above every seed of ``b`` (higher is better)."""
        va, vb = _values(claim + " (A)", a), _values(claim + " (B)", b)
        return self._add(claim, f"A {describe(va, self.digits)} vs B {describe(vb, self.digits)}",
                         bool(va.min() > vb.max()), "every seed of A > every seed of B", va, vb)

    def neither(self, claim: str, a: Sequence[float], b: Sequence[float]) -> Claim:
        """Holds when neither beats the other by the rule: some seed of ``a`` is at or below some seed
        of ``b``, and the other way round (the seeds overlap or tie)."""
        va, vb = _values(claim + " (A)", a), _values(claim + " (B)", b)
        return self._add(claim, f"A {describe(va, self.digits)} vs B {describe(vb, self.digits)}",
                         bool(va.min() <= vb.max() and vb.min() <= va.max()),
                         "neither every seed of one > every seed of the other", va, vb)

    def check(self, claim: str, holds: bool, measured: str, rule: str) -> Claim:
        """A claim that is not about seeds (an exactness check, a measured ratio): its own rule, stated."""
        return self._add(claim, measured, bool(holds), rule)

    @property
    def held(self) -> int:
        return sum(c.holds for c in self.items)

    def table(self) -> str:
        lines = ["| claim | measured (mean ± std [per seed]) | rule | holds |", "|---|---|---|---|"]
        lines += [f"| {c.claim} | {c.measured} | {c.rule} | {'holds' if c.holds else 'does not hold'} |"
                  for c in self.items]
        return "\n".join(lines)

    def show(self) -> None:
        """Display the claims table, marked so that the book's run command and tests find it."""
        from IPython.display import display

        rows = "".join(f"<tr><td>{html.escape(c.claim)}</td><td>{html.escape(c.measured)}</td>"
                       f"<td>{html.escape(c.rule)}</td><td><b>{'holds' if c.holds else 'does not hold'}</b></td></tr>"
                       for c in self.items)
        head = "<tr><th>claim</th><th>measured (mean ± std [per seed])</th><th>rule</th><th>holds</th></tr>"
        text = f"{self.held} of {len(self.items)} claims hold\n" + self.table()
        display({"text/plain": text, "text/html": f"<p>{self.held} of {len(self.items)} claims hold</p>"
                 f"<table>{head}{rows}</table>",
                 "application/json": {"claims": json.loads(json.dumps([asdict(c) for c in self.items]))}},
                raw=True, metadata={CLAIMS_KEY: True})

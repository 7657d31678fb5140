"""Progress bars for training loops that a reader can interrupt without losing the work done."""
from __future__ import annotations

import sys

from tqdm import tqdm


class TrainingProgress:
    """A ``tqdm`` progress bar over ``range(total)`` that turns Ctrl-C into a clean stop.

    Use it as a context manager around the training loop::

        with TrainingProgress(cfg.updates, desc="LSTM") as bar:
            for update in bar:
                ...                      # one update; history.append(...)
                bar.set_postfix(loss=loss)
        return Result(history, model, cfg, interrupted=bar.interrupted)

    A ``KeyboardInterrupt`` raised inside the ``with`` block (the reader pressed Ctrl-C, or the
    notebook's "interrupt kernel") ends the block; execution continues after it, with
    ``bar.interrupted`` set, so the function returns the history and the model learned so far.

    Args:
        total: number of iterations.
        desc: the label in front of the bar.
        disable: no bar at all (e.g. in tests, or for runs inside a loop over seeds).
    """

    def __init__(self, total: int, desc: str = "", disable: bool = False, **tqdm_kwargs):
        if int(total) < 0:
            raise ValueError(f"total must be a non-negative number of iterations; got {total}")
        self.total = int(total)
        self.interrupted = False
        options = dict(desc=desc, disable=disable, ncols=90, mininterval=0.5, file=sys.stderr)
        options.update(tqdm_kwargs)
        self._bar = tqdm(total=self.total, **options)
        self.completed = 0

    def __iter__(self):
        for step in range(self.total):
            yield step
            self.completed = step + 1
            self._bar.update(1)

    def advance(self, n: int) -> None:
        """Count ``n`` units done, for a loop that does not iterate the bar (e.g. a budget of
        environment steps, where each update adds however many steps its episodes took)."""
        self.completed += int(n)
        self._bar.update(int(n))

    def set_postfix(self, **values) -> None:
        self._bar.set_postfix(**values, refresh=False)

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._bar.close()
        if exc_type is KeyboardInterrupt:
            self.interrupted = True
            print(f"Interrupted after {self.completed} of {self.total} iterations; "
                  "keeping what was learned so far.", file=sys.stderr)
            return True  # swallow the interrupt: the caller returns its partial result
        return False

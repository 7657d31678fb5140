"""Checks for the exercises of Chapter 2 (tabular Q-learning)."""
from __future__ import annotations

import numpy as np

from .. import tabular
from . import check_function


def check_expected_sarsa_target(target_fn) -> bool:
    """Exercise 1: ``target_fn(reward, q_next, epsilon, gamma, terminated)`` = the expected-SARSA target."""
    def reference(reward, q_next, epsilon, gamma, terminated):
        return tabular.td_target("expected_sarsa", reward, q_next, None, gamma, epsilon, terminated)

    cases = [("one best action", (1.0, np.array([0.0, 2.0, 1.0]), 0.1, 0.9, False)),
             ("a tie between two best actions", (-1.0, np.array([3.0, 3.0, 0.0, -1.0]), 0.2, 0.99, False)),
             ("greedy policy (epsilon 0)", (0.5, np.array([1.0, -2.0]), 0.0, 0.5, False)),
             ("uniform policy (epsilon 1)", (0.0, np.array([1.0, 2.0, 6.0]), 1.0, 1.0, False)),
             ("terminated: no future", (4.0, np.array([10.0, 10.0]), 0.1, 0.9, True))]
    return check_function("expected SARSA target", target_fn, reference, cases, atol=1e-12, rtol=1e-10,
                          output_names=("target",))


def check_epsilon_greedy_probs(probs_fn) -> bool:
    """Exercise 2: ``probs_fn(q_row, epsilon)`` = action probabilities of epsilon-greedy, ties split evenly."""
    cases = [("one best action", (np.array([0.0, 2.0, 1.0]), 0.1)),
             ("three-way tie", (np.array([1.0, 1.0, 1.0, 0.0]), 0.3)),
             ("all equal (a fresh table)", (np.zeros(4), 0.0)),
             ("epsilon 1 is uniform", (np.array([5.0, -1.0]), 1.0))]
    return check_function("epsilon-greedy probabilities", probs_fn, tabular.epsilon_greedy_probs, cases,
                          atol=1e-12, rtol=1e-10, output_names=("probabilities",))


def check_discounted_return(return_fn) -> bool:
    """Exercise 3: ``return_fn(rewards, gamma)`` = sum_t gamma^t r_t."""
    cases = [("empty episode", ([], 0.9)), ("one step", ([2.0], 0.5)),
             ("cliff walker's optimal path", ([-1.0] * 13, 1.0)),
             ("T-maze: reward only at the end", ([0.0] * 10 + [4.0], 0.9)),
             ("gamma 0 keeps the first reward", ([1.0, 5.0, 5.0], 0.0))]
    return check_function("discounted return", return_fn, tabular.discounted_return, cases, atol=1e-12,
                          rtol=1e-10, output_names=("return",))

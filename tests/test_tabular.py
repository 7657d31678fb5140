"""Chapter 2's library: TD targets (termination vs truncation), epsilon-greedy, the training loop."""
import gymnasium as gym
import numpy as np
import pytest

from lstm_rl_lib import tabular as tb
from lstm_rl_lib.envs import TMaze, make_env


def test_td_targets_of_the_three_algorithms():
    q_next = np.array([1.0, 3.0, 2.0])
    assert tb.td_target("q_learning", 1.0, q_next, 0, 0.5, 0.1, False) == pytest.approx(1.0 + 0.5 * 3.0)
    assert tb.td_target("sarsa", 1.0, q_next, 0, 0.5, 0.1, False) == pytest.approx(1.0 + 0.5 * 1.0)
    expected = (0.1 / 3) * (1 + 3 + 2) + 0.9 * 3.0
    assert tb.td_target("expected_sarsa", 1.0, q_next, None, 0.5, 0.1, False) == pytest.approx(1.0 + 0.5 * expected)


@pytest.mark.parametrize("algorithm", tb.ALGORITHMS)
def test_termination_does_not_bootstrap_truncation_does(algorithm):
    q_next = np.array([10.0, 10.0])
    assert tb.td_target(algorithm, 1.0, q_next, 1, 0.9, 0.1, terminated=True) == 1.0
    # a truncated transition is simply "not terminated": it bootstraps
    assert tb.td_target(algorithm, 1.0, q_next, 1, 0.9, 0.1, terminated=False) == pytest.approx(10.0)


def test_epsilon_greedy_probs_split_ties():
    np.testing.assert_allclose(tb.epsilon_greedy_probs([0.0, 0.0, -1.0], 0.3), [0.45, 0.45, 0.1])
    np.testing.assert_allclose(tb.epsilon_greedy_probs([1.0, 2.0], 0.0), [0.0, 1.0])
    assert tb.epsilon_greedy_probs(np.zeros(5), 0.2).sum() == pytest.approx(1.0)


def test_history_state_windows():
    h = tb.HistoryState(window=3)
    assert h.reset(5) == (-1, -1, 5)
    assert h.push(6) == (-1, 5, 6) and h.push(7) == (5, 6, 7) and h.push(8) == (6, 7, 8)
    full = tb.HistoryState(window=None)
    full.reset(1)
    assert full.push(2) == (1, 2) and full.push(3) == (1, 2, 3)


def test_discounted_return():
    assert tb.discounted_return([1.0, 1.0, 1.0], 0.5) == pytest.approx(1.75)
    assert tb.discounted_return([], 0.9) == 0.0


@pytest.mark.parametrize("bad, match", [(dict(algorithm="dqn"), "algorithm must be one of"),
                                        (dict(alpha=0.0), "alpha must be in"), (dict(gamma=1.5), "gamma"),
                                        (dict(epsilon=-0.1), "epsilon must be"), (dict(window=0), "window")])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        tb.TabularConfig(**bad)


def test_box_observations_are_refused_clearly():
    with pytest.raises(ValueError, match="Discrete observation space"):
        tb.train_tabular(gym.make("CartPole-v1"), episodes=1, progress=False)


def test_cliff_walking_q_learning_finds_the_optimal_path_sarsa_the_safe_one():
    env = make_env("CliffWalking-v1")
    q = tb.train_tabular(env, algorithm="q_learning", episodes=400, alpha=0.5, gamma=1.0, seed=0, progress=False)
    s = tb.train_tabular(env, algorithm="sarsa", episodes=1000, alpha=0.5, gamma=1.0, seed=0, progress=False)
    assert tb.evaluate_greedy(env, q, episodes=1)["return"] == [-13.0]
    assert tb.evaluate_greedy(env, s, episodes=1, max_steps=200)["return"][0] in (-15.0, -17.0)
    # online (epsilon-greedy) returns: the safe path falls less often
    assert np.mean(s.history["return"][-200:]) > np.mean(q.history["return"][-200:])


def test_training_is_deterministic_given_the_seed():
    env = make_env("tmaze", length=2)
    a = tb.train_tabular(env, episodes=50, seed=3, progress=False)
    b = tb.train_tabular(env, episodes=50, seed=3, progress=False)
    assert a.history == b.history


def test_memory_window_decides_the_tmaze():
    """Memory-less: chance at best. A window that reaches back to the cue: solved."""
    kw = dict(algorithm="q_learning", episodes=1500, alpha=0.1, gamma=0.9, epsilon=0.3, epsilon_final=0.0,
              progress=False)
    env = make_env("tmaze", length=2)
    covered = [np.mean(tb.evaluate_greedy(env, tb.train_tabular(env, window=3, seed=s, **kw), 100)["success"])
               for s in range(3)]
    memoryless = [np.mean(tb.evaluate_greedy(env, tb.train_tabular(env, window=1, seed=s, **kw), 100)["success"])
                  for s in range(3)]
    assert min(covered) == 1.0
    assert max(memoryless) <= 0.65


def test_interrupt_keeps_the_table(monkeypatch):
    env = TMaze(length=2)
    real_step, calls = env.step, {"n": 0}

    def step(action):
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        return real_step(action)

    monkeypatch.setattr(env, "step", step)
    r = tb.train_tabular(env, episodes=1000, seed=0, progress=False)
    assert r.interrupted and 0 < len(r.history["return"]) < 1000 and r.Q

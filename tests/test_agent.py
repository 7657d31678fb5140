"""The library a reader takes home: any environment in, one result shape out, saved agents that act
step by step exactly as the trained ones do."""
import sys
import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import FlattenObservation

from lstm_rl_lib import Agent, dqn, envs, ppo
from lstm_rl_lib import reinforce as rf
from lstm_rl_lib.agent import TrainResult, load_agent, space_from_dict, space_to_dict
from lstm_rl_lib.envs import DEFAULT_EPISODE_CAP, encode_observation, env_factory, make_env, make_vector_env, spaces_of

# the small environments below end their episodes themselves; the warning is tested on its own
pytestmark = pytest.mark.filterwarnings("ignore:.*has no time limit")


# ----------------------------------------------------------------------------------------------
# Small environments of the kinds a reader brings
# ----------------------------------------------------------------------------------------------
class Corridor(gym.Env):
    """Walk right to the end; observations as a Dict of a MultiDiscrete position and a MultiBinary flag."""
    observation_space = gym.spaces.Dict({"pos": gym.spaces.MultiDiscrete([4]), "flag": gym.spaces.MultiBinary(2)})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def _obs(self):
        return {"pos": np.array([self.pos]), "flag": np.array([self.pos == 3, self.t % 2], np.int8)}

    def step(self, action):
        self.t += 1
        self.pos = int(np.clip(self.pos + (1 if action == 1 else -1), 0, 3))
        done = self.pos == 3
        return self._obs(), float(done), done, self.t >= 20, {}


class Endless(gym.Env):
    """Never ends an episode by itself (no time limit anywhere)."""
    observation_space = gym.spaces.Discrete(3)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return int(action), 0.0, False, False, {}


@pytest.fixture
def module_with_an_id(tmp_path, monkeypatch):
    """A module of the reader's that registers an environment id when imported ("module:Id")."""
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        gym.register("MyCorridor-v0", entry_point="test_agent:Corridor")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.setdefault("test_agent", sys.modules[__name__])
    yield "my_tasks:MyCorridor-v0"
    gym.registry.pop("MyCorridor-v0", None)
    sys.modules.pop("my_tasks", None)


# ----------------------------------------------------------------------------------------------
# Bring your own environment
# ----------------------------------------------------------------------------------------------
def test_observations_of_every_accepted_space_are_encoded_in_one_place():
    info = spaces_of(Corridor())
    assert (info.obs_dim, info.discrete_obs) == (2 + 4, True)       # Dict keys in order: flag (2), pos (4 one-hot)
    x = encode_observation({"pos": np.array([2]), "flag": np.array([1, 0], np.int8)}, info)
    np.testing.assert_array_equal(x, [1, 0, 0, 0, 1, 0])
    batch = {"pos": np.array([[0], [3]]), "flag": np.array([[0, 1], [1, 1]], np.int8)}   # a vector env's batch
    np.testing.assert_array_equal(encode_observation(batch, info), [[0, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1]])
    blackjack = spaces_of(gym.make("Blackjack-v1"))                  # Tuple(Discrete(32), Discrete(11), Discrete(2))
    x = encode_observation((14, 3, 1), blackjack)
    assert x.shape == (45,) and list(np.nonzero(x)[0]) == [14, 32 + 3, 43 + 1]
    shifted = spaces_of(type("E", (gym.Env,), {"observation_space": gym.spaces.Discrete(3, start=-1),
                                               "action_space": gym.spaces.Discrete(2)})())
    np.testing.assert_array_equal(encode_observation(-1, shifted), [1, 0, 0])
    with pytest.raises(ValueError, match="outside 0..3"):
        encode_observation({"pos": np.array([5]), "flag": np.array([0, 0])}, info)


@pytest.mark.parametrize("form", ["task", "gym-id", "module:Id", "factory", "class"])
def test_every_accepted_form_of_env_builds_environments(form, module_with_an_id):
    env = {"task": "tmaze", "gym-id": "CartPole-v1", "module:Id": module_with_an_id,
           "factory": lambda: FlattenObservation(Corridor()), "class": Corridor}[form]
    e = make_env(env)
    obs, _ = e.reset(seed=0)
    assert encode_observation(obs, spaces_of(e)).shape == (spaces_of(e).obs_dim,)
    venv = gym.vector.SyncVectorEnv([env_factory(env)] * 2)          # one new environment per copy
    venv.reset(seed=0)
    assert venv.num_envs == 2 and venv.envs[0] is not venv.envs[1]      # a new environment per copy
    venv.close()


def test_a_factory_with_wrappers_works_in_an_asynchronous_vector_env():
    venv = make_vector_env(lambda: FlattenObservation(Corridor()), 2, asynchronous=True, seed=0)
    obs, *_ = venv.step(np.ones(2, np.int64))
    assert obs.shape == (2, 6)
    venv.close()


@pytest.mark.parametrize("bad, error, match", [
    (gym.make("CartPole-v1"), TypeError, "got an environment instance \\(TimeLimit\\).*Pass a function"),
    (3, TypeError, "env must be a book task name.*or a callable.*got int"),
    ("CartPol-v1", ValueError, "unknown task 'CartPol-v1'.*not a Gymnasium id"),
    ("no_such_module:X-v0", ValueError, "unknown task 'no_such_module:X-v0'")])
def test_refused_envs_say_what_was_given_and_what_is_accepted(bad, error, match):
    with pytest.raises(error, match=match):
        make_vector_env(bad, 2)
    with pytest.raises(error, match=match):
        rf.train_reinforce(env=bad, updates=1, progress=False)


def test_a_factory_that_returns_no_env_fails_clearly():
    with pytest.raises(TypeError, match="returned int; it must return a new gymnasium.Env"):
        make_env(lambda: 3)


def test_images_are_refused_with_the_books_path_for_pixels():
    with pytest.raises(envs.UnsupportedSpaceError, match="shape \\(64, 64\\).*Chapter 6's VAE"):
        ppo.train_ppo(env="cartpole-pixels", total_steps=64, progress=False)


def test_an_env_without_time_limit_is_capped_with_a_warning():
    with pytest.warns(UserWarning, match=f"no time limit.*not ended after {DEFAULT_EPISODE_CAP} steps is truncated"):
        env = make_env(Endless)
    env.reset(seed=0)
    for t in range(DEFAULT_EPISODE_CAP):
        *_, terminated, truncated, _ = env.step(0)
        assert not terminated and truncated == (t == DEFAULT_EPISODE_CAP - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the book's tasks and Gymnasium's timed ids are not capped
        make_env("tmaze"), make_env("CartPole-v1")
    # REINFORCE waits for whole episodes: with the cap it finishes instead of looping forever
    with pytest.warns(UserWarning, match="no time limit"):
        res = rf.train_reinforce(env=Endless, updates=1, num_envs=2, hidden_size=4, progress=False)
    assert res.history["env_steps"] == [2 * DEFAULT_EPISODE_CAP]


ALGORITHMS = {
    "reinforce": lambda env, **kw: rf.train_reinforce(env=env, updates=3, num_envs=4, hidden_size=8,
                                                      progress=False, **kw),
    "dqn": lambda env, **kw: dqn.train_dqn(env=env, total_steps=300, num_envs=2, learning_starts=100, train_every=4,
                                           batch_size=4, seq_len=4, burn_in=2, hidden_size=8, progress=False, **kw),
    "ppo": lambda env, **kw: ppo.train_ppo(env=env, total_steps=256, num_envs=2, num_steps=32, epochs=2,
                                           hidden_size=8, head_size=8, progress=False, **kw),
}


@pytest.mark.parametrize("form", ["task", "gym-id", "module:Id", "factory", "tuple-obs"])
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_trains_on_every_accepted_form(algorithm, form, module_with_an_id):
    env = {"task": "tmaze", "gym-id": "CartPole-v1", "module:Id": module_with_an_id,
           "factory": lambda: FlattenObservation(Corridor()), "tuple-obs": "Blackjack-v1"}[form]
    res = ALGORITHMS[algorithm](env)
    # DQN and PPO count environment steps; REINFORCE counts updates of whole episodes (Blackjack's last 1-3 steps)
    assert isinstance(res, TrainResult) and res.history["env_steps"][-1] >= (10 if algorithm == "reinforce" else 200)
    ev = res.agent.evaluate(episodes=2)
    assert len(ev["return"]) == 2 and np.isfinite(ev["return"]).all()


# ----------------------------------------------------------------------------------------------
# One surface
# ----------------------------------------------------------------------------------------------
COMMON = {"env_steps", "seconds", "return", "length", "success"}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_results_histories_and_callbacks_have_one_shape(algorithm):
    seen = []
    res = ALGORITHMS[algorithm]("tmaze", callback=lambda r: seen.append(len(r.history["env_steps"])) or len(seen) == 2)
    assert isinstance(res, TrainResult) and isinstance(res.agent, Agent)
    assert COMMON <= set(res.history) and len({len(v) for v in res.history.values()}) == 1
    assert res.interrupted and seen == [1, 2] and len(res.history["env_steps"]) >= 2
    assert res.history["env_steps"] == sorted(res.history["env_steps"]) and res.seconds > 0
    for evaluate in (rf.evaluate, dqn.evaluate, ppo.evaluate):        # one evaluation for all
        assert evaluate(res, episodes=2, seed=5)["return"] == res.agent.evaluate(episodes=2, seed=5)["return"]
    with pytest.raises(TypeError, match="callback must be a function"):
        ALGORITHMS[algorithm]("tmaze", callback=3)


def test_ppo_logs_what_ppo_practitioners_read():
    res = ppo.train_ppo(total_steps=4096, progress=False)
    for k in ("approx_kl", "clip_fraction", "explained_variance", "entropy"):
        assert k in res.history and np.isfinite(res.history[k]).all(), k
    assert max(res.history["clip_fraction"]) > 0 and max(res.history["approx_kl"]) > 0      # the policy moved
    v, r = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])
    assert ppo.explained_variance(v, r) == 1 and ppo.explained_variance(torch.zeros(3), r) == 0
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(50, generator=g), torch.randn(50, generator=g)
    by_hand = 1 - np.var((r - v).numpy(), ddof=1) / np.var(r.numpy(), ddof=1)
    assert float(ppo.explained_variance(v, r)) == pytest.approx(by_hand, rel=1e-5)
    assert torch.isnan(ppo.explained_variance(v, torch.ones(50)))               # constant returns: undefined


def test_critic_detached_from_the_shared_lstm_leaves_it_to_the_policy_loss():
    torch.manual_seed(0)
    for trains in (True, False):
        net = ppo.ActorCritic(2, 2, shared_lstm=True, critic_trains_lstm=trains)
        _, values, _ = net(torch.randn(5, 3, 2))
        values.sum().backward()
        grad = net.actor_core.weight_ih_l0.grad
        assert (grad is not None and grad.abs().sum() > 0) == trains


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_a_gru_core_is_a_switch_for_every_agent(algorithm):
    res = ALGORITHMS[algorithm]("tmaze", core="gru")
    rnn = getattr(res.net, "lstm", None) or getattr(res.net, "actor_core", None) or res.net.core
    assert isinstance(rnn, torch.nn.GRU) and len(res.agent.initial_state(3)) == 1
    with pytest.raises(ValueError, match="core must be one of"):
        ALGORITHMS[algorithm]("tmaze", core="rnn")


def test_sweeps_run_through_any_executor():
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
    from multiprocessing import get_context

    from lstm_rl_lib.runtime import available_cpus, map_processes

    jobs = [{"config": dict(env="tmaze", env_kwargs={"length": 2}, updates=2, num_envs=2, hidden_size=4, seed=s)}
            for s in (0, 1)]
    local = map_processes(rf.run_experiment, jobs, workers=1, progress=False)
    with ThreadPoolExecutor(1) as pool:   # threads share torch's global generator: one at a time, or seeds mix
        threads = map_processes(rf.run_experiment, jobs, executor=pool, progress=False)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:   # fork after torch's threads can hang
        procs = map_processes(rf.run_experiment, jobs, executor=pool, progress=False)
    for a, b, c in zip(local, threads, procs):
        assert a["history"]["return"] == b["history"]["return"] == c["history"]["return"]
    assert 1 <= available_cpus() <= (__import__("os").cpu_count() or 1)
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        map_processes(rf.run_experiment, jobs, executor="dask")


# ----------------------------------------------------------------------------------------------
# Saved agents and step-by-step inference
# ----------------------------------------------------------------------------------------------
def _play(agent, env, episodes, seed, deterministic=True):
    """Episodes one after another in one environment, the state carried and reset at each episode start."""
    actions, returns, state, start = [], [], None, True
    obs, _ = env.reset(seed=seed)
    total = 0.0
    while len(returns) < episodes:
        a, state = agent.predict(obs, state, episode_start=start, deterministic=deterministic)
        actions.append(np.asarray(a).tolist())
        obs, r, term, trunc, _ = env.step(a)
        total += r
        start = term or trunc
        if start:
            returns.append(total)
            total = 0.0
            obs, _ = env.reset()
    return actions, returns


AGENTS = {
    "reinforce-lstm": lambda: rf.train_reinforce(env="tmaze", env_kwargs={"length": 3}, updates=20, num_envs=8,
                                                 progress=False),
    "reinforce-gru": lambda: rf.train_reinforce(env="tmaze", env_kwargs={"length": 3}, updates=20, num_envs=8,
                                                core="gru", progress=False),
    "dqn-lstm": lambda: dqn.train_dqn(dqn.preset("tmaze", env_kwargs={"length": 3}, total_steps=1500), progress=False),
    "dqn-stack": lambda: dqn.train_dqn(env="cartpole-novel", agent="stack", total_steps=1500, learning_starts=500,
                                       progress=False),
    "ppo-lstm": lambda: ppo.train_ppo(total_steps=2048, progress=False),
    "ppo-separate-gru": lambda: ppo.train_ppo(total_steps=2048, core="gru", shared_lstm=False, progress=False),
    "ppo-pendulum": lambda: ppo.train_ppo(ppo.preset("pendulum-novel"), total_steps=1024, progress=False),
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_saved_and_loaded_agent_acts_exactly_like_the_trained_one(name, tmp_path):
    res = AGENTS[name]()
    res.save(tmp_path / "agent.pt")
    loaded = Agent.load(tmp_path / "agent.pt", device="cpu")
    assert loaded.algorithm == res.agent.algorithm and loaded.config == res.config
    env_kwargs = res.config.env_kwargs
    a1, r1 = _play(res.agent, make_env(res.config.env, **env_kwargs), 4, seed=3)
    a2, r2 = _play(loaded, make_env(res.config.env, **env_kwargs), 4, seed=3)
    assert a1 == a2 and r1 == r2 and len(a1) > 4
    # and predict, step by step, reproduces the agent's own (batched) evaluation, episode by episode
    ev = loaded.evaluate(episodes=3, seed=50)
    for k in range(3):
        _, ret = _play(loaded, make_env(res.config.env, **env_kwargs), 1, seed=50 + k)
        # one observation at a time and three side by side run different float32 matrix kernels, so a
        # continuous action can differ in its last bits, and 200 steps of Pendulum's physics carry that into
        # the return (measured: 1.0e-9 relative on one CPU); a wrong state or seed would differ by whole units
        assert ret[0] == pytest.approx(ev["return"][k], rel=1e-7)


def test_ppo_observation_statistics_travel_with_the_agent(tmp_path):
    res = ppo.train_ppo(total_steps=2048, progress=False)
    res.save(tmp_path / "a.pt")
    loaded = load_agent(tmp_path / "a.pt")
    np.testing.assert_array_equal(loaded.obs_rms[0], res.obs_norm.rms.mean)
    np.testing.assert_array_equal(loaded.obs_rms[1], res.obs_norm.rms.var)
    assert not np.allclose(res.obs_norm.rms.var, 1.0)        # statistics that matter: not the identity
    saved = torch.load(tmp_path / "a.pt", weights_only=True)   # plain data: no training-code objects
    assert saved["format"] == "lstm_rl_lib.agent/1" and "obs_rms" in saved


def test_predict_handles_batches_single_observations_and_episode_starts():
    agent = AGENTS["ppo-lstm"]().agent
    venv = make_vector_env("cartpole-novel", 3, seed=0)
    obs, _ = venv.reset(seed=[0, 1, 2])
    batch_actions, batch_state = agent.predict(obs)
    for b in range(3):
        a, s = agent.predict(obs[b])
        assert a == batch_actions[b] and torch.allclose(s[0][0, 0], batch_state[0][0, b], atol=1e-6)
    # episode_start zeroes exactly the flagged column before acting
    _, s1 = agent.predict(obs, batch_state, episode_start=[False, True, False])
    _, fresh = agent.predict(obs)
    assert torch.allclose(s1[0][:, 1], fresh[0][:, 1]) and not torch.allclose(s1[0][:, 0], fresh[0][:, 0])
    with pytest.raises(ValueError, match="encodes to shape"):
        agent.predict(np.zeros((2, 2, 2)))


def test_spaces_round_trip_as_plain_data():
    for space in (gym.spaces.Box(-1, np.inf, (3,)), gym.spaces.Discrete(4, start=1), gym.spaces.MultiDiscrete([2, 3]),
                  gym.spaces.MultiBinary(5), Corridor.observation_space,
                  gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(0, 1, (2,))])):
        back = space_from_dict(space_to_dict(space))
        assert back == space
        if isinstance(space, gym.spaces.Dict):              # the order of the parts is the order of the encoding
            assert list(back.spaces) == list(space.spaces)
    ordered = gym.spaces.Dict([("z", gym.spaces.Discrete(2)), ("a", gym.spaces.Discrete(3))])   # not sorted
    assert list(space_from_dict(space_to_dict(ordered)).spaces) == ["z", "a"]


def test_loading_something_else_fails_clearly(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="not an agent saved by lstm_rl_lib.agent"):
        Agent.load(tmp_path / "weights.pt")


def test_an_agent_trained_on_a_factory_needs_it_to_evaluate(tmp_path):
    factory = lambda: FlattenObservation(Corridor())  # noqa: E731
    res = ALGORITHMS["ppo"](factory)
    res.save(tmp_path / "a.pt")
    loaded = Agent.load(tmp_path / "a.pt")
    assert loaded.config.env is None
    with pytest.raises(ValueError, match="pass env=... \\(the same factory\\)"):
        loaded.evaluate(episodes=2)
    assert loaded.evaluate(factory, episodes=2, seed=1)["return"] == res.agent.evaluate(episodes=2, seed=1)["return"]
    with pytest.raises(ValueError, match="this agent was trained with 6 and 2"):
        loaded.evaluate("tmaze", episodes=2)


def test_the_package_imports_without_torch_until_an_algorithm_is_asked_for():
    import subprocess

    code = ("import sys, lstm_rl_lib; before = 'torch' in sys.modules; lstm_rl_lib.Agent; "
            "print(before, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]       # Chapters 1 and 2 (NumPy) do not pay for torch


def test_load_takes_a_device_as_a_string_or_a_torch_device(tmp_path):
    res = ALGORITHMS["reinforce"]("tmaze")
    res.save(tmp_path / "a.pt")
    for device in ("cpu", torch.device("cpu")):
        assert Agent.load(tmp_path / "a.pt", device=device).device.type == "cpu"

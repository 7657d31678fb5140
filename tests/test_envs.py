"""The book's environments: what they hide, what the flicker does, that the T-maze's reward depends on the cue."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lstm_rl_lib import envs
from lstm_rl_lib.envs import TMaze, UnsupportedSpaceError, encode_observation, make_env, make_vector_env, spaces_of


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # we check what we ship: the wrapped env
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")  # CartPole's own infinite bounds
@pytest.mark.parametrize("name, kwargs", [("cartpole-novel", {}), ("cartpole-flicker", {"p": 0.5}),
                                          ("tmaze", {"length": 1}), ("tmaze", {"length": 10}),
                                          ("tmaze", {"length": 100})])
def test_check_env_passes(name, kwargs):
    check_env(make_env(name, **kwargs).unwrapped if name == "tmaze" else make_env(name, **kwargs), skip_render_check=True)


@pytest.mark.parametrize("env_id", ["lstm_rl/CartPoleNoVel-v1", "lstm_rl/CartPoleFlicker-v1", "lstm_rl/TMaze-v0"])
def test_registered_with_gymnasium(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_novel_cartpole_hides_exactly_the_velocities():
    full, novel = gym.make("CartPole-v1"), make_env("cartpole-novel")
    f_obs, _ = full.reset(seed=3)
    n_obs, _ = novel.reset(seed=3)
    assert novel.observation_space.shape == (2,)
    np.testing.assert_array_equal(n_obs, f_obs[[0, 2]])
    for _ in range(5):
        f_obs, *_ = full.step(1)
        n_obs, *_ = novel.step(1)
        np.testing.assert_array_equal(n_obs, f_obs[[0, 2]])   # position and angle, never the velocities


def test_flicker_blanks_with_probability_p_and_is_reproducible():
    env = make_env("cartpole-flicker", p=0.5)
    blanks, flags = [], []
    obs, info = env.reset(seed=0)
    for t in range(2000):
        obs, r, term, trunc, info = env.step(t % 2)
        blanks.append(not np.any(obs))
        flags.append(info["flickered"])
        if term or trunc:
            obs, info = env.reset()
    assert blanks == flags
    assert 0.45 < np.mean(blanks) < 0.55

    def trace(seed):
        e = make_env("cartpole-flicker", p=0.5)
        e.reset(seed=seed)
        return [e.step(0)[4]["flickered"] for _ in range(8)]

    assert trace(1) == trace(1) and trace(1) != trace(2)
    assert make_env("cartpole-flicker", p=0.0).reset(seed=0)[0].any()
    assert not make_env("cartpole-flicker", p=1.0).reset(seed=0)[0].any()
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        make_env("cartpole-flicker", p=1.5)


def walk(env, actions):
    out = []
    for a in actions:
        out.append(env.step(a))
    return out


@pytest.mark.parametrize("cue, turn, reward, success", [(0, TMaze.UP, 4.0, True), (0, TMaze.DOWN, -0.1, False),
                                                        (1, TMaze.DOWN, 4.0, True), (1, TMaze.UP, -0.1, False)])
def test_tmaze_reward_depends_on_the_cue(cue, turn, reward, success):
    env = TMaze(length=5)
    obs, info = env.reset(seed=0, options={"cue": cue})
    assert obs == cue and info["cue"] == cue
    steps = walk(env, [TMaze.EAST] * 5)
    assert [s[0] for s in steps] == [TMaze.OBS_CORRIDOR] * 4 + [TMaze.OBS_JUNCTION]
    assert all(s[1] == 0.0 and not s[2] and not s[3] for s in steps)
    obs, r, terminated, truncated, info = env.step(turn)
    assert (r, terminated, truncated, info["success"]) == (reward, True, False, success)


def test_tmaze_hides_the_cue_after_the_start_and_penalises_walls():
    env = TMaze(length=3)
    seen = set()
    for cue in (0, 1):
        env.reset(seed=0, options={"cue": cue})
        seen.add(tuple(s[0] for s in walk(env, [TMaze.EAST] * 3)))
    assert len(seen) == 1                                   # the corridor and junction look the same for both cues
    env.reset(seed=0)
    assert env.step(TMaze.WEST)[1] == -0.1 and env.step(TMaze.UP)[1] == -0.1


def test_tmaze_truncates_and_draws_both_cues():
    env = TMaze(length=2, max_episode_steps=3)
    env.reset(seed=0)
    *_, truncated, info = walk(env, [TMaze.WEST] * 3)[-1]
    assert truncated and info["success"] is False
    cues = {env.reset(seed=s)[1]["cue"] for s in range(20)}
    assert cues == {0, 1}
    with pytest.raises(ValueError, match="integer >= 1"):
        TMaze(length=0)
    with pytest.raises(ValueError, match="not in Discrete"):
        env.step(7)


def test_spaces_of_accepts_box_and_discrete_and_one_hot_encodes():
    info = spaces_of(make_env("tmaze", length=3))
    assert info == envs.SpacesInfo(obs_dim=4, n_actions=4, discrete_obs=True)
    np.testing.assert_array_equal(encode_observation(np.array([0, 3]), info), [[1, 0, 0, 0], [0, 0, 0, 1]])
    assert spaces_of(make_env("cartpole-novel")) == envs.SpacesInfo(2, 2, False)
    assert spaces_of(make_vector_env("cartpole-novel", 2)) == envs.SpacesInfo(2, 2, False)
    with pytest.raises(ValueError, match="outside 0..3"):
        encode_observation(4, info)


@pytest.mark.parametrize("obs_space, act_space, match", [
    (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)), "action space Box.*continuous.*PPO"),
    (gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiDiscrete([2, 3]), "several discrete choices.*Discrete\\(prod"),
    (gym.spaces.Text(5), gym.spaces.Discrete(2), "observation space Text.*is not supported.*Tuple/Dict"),
    (gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(0, 1, (4, 4))]), gym.spaces.Discrete(2),
     "observation space\\[1\\].*shape \\(4, 4\\)")])
def test_unsupported_spaces_fail_clearly(obs_space, act_space, match):
    class Env(gym.Env):
        observation_space, action_space = obs_space, act_space

    with pytest.raises(UnsupportedSpaceError, match=match):
        spaces_of(Env())


def test_image_observations_fail_clearly():
    class Image(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(UnsupportedSpaceError, match="shape \\(8, 8, 3\\).*FlattenObservation"):
        spaces_of(Image())


def test_make_env_unknown_name():
    with pytest.raises(ValueError, match="unknown task 'tmaz'"):
        make_env("tmaz")


def test_vector_env_is_seeded_and_batched():
    venv = make_vector_env("tmaze", 3, seed=0, length=4)
    obs, info = venv.reset(seed=[0, 1, 2])
    assert obs.shape == (3,)
    obs2, *_ = make_vector_env("tmaze", 3, length=4).reset(seed=[0, 1, 2])
    np.testing.assert_array_equal(obs, obs2)
    obs, r, term, trunc, info = venv.step(np.zeros(3, dtype=np.int64))
    assert obs.shape == r.shape == term.shape == (3,)
    with pytest.raises(ValueError, match="at least 1"):
        make_vector_env("tmaze", 0)


def test_tmaze_move_penalty_charges_every_step_that_does_not_go_east():
    env = make_env("tmaze", length=3, move_penalty=0.05)
    env.reset(seed=0)
    assert env.step(0)[1] == 0.0                      # east: free
    assert env.step(1)[1] == pytest.approx(-0.05)     # west in the corridor
    assert env.step(2)[1] == pytest.approx(-0.15)     # a wall bump costs the bump and the penalty
    assert make_env("tmaze", length=3).reset(seed=0) and make_env("tmaze", length=3).move_penalty == 0.0
    with pytest.raises(ValueError, match="move_penalty"):
        make_env("tmaze", move_penalty=-1)


def test_pendulum_without_velocity_and_box_actions():
    env = make_env("pendulum-novel")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and np.isclose(obs[0] ** 2 + obs[1] ** 2, 1.0, atol=1e-5)   # cos, sin only
    info = spaces_of(env, continuous_actions=True)
    assert info.continuous_actions and info.n_actions == 1 and info.action_low == (-2.0,)
    with pytest.raises(UnsupportedSpaceError, match="continuous.*PPO"):
        spaces_of(env)
    venv = make_vector_env("pendulum-novel", 2, same_step_autoreset=True, continuous_actions=True,
                           max_episode_steps=3)
    venv.reset(seed=[0, 1])
    for _ in range(3):
        obs, r, term, trunc, info = venv.step(np.zeros((2, 1), np.float32))
    assert trunc.all() and "final_obs" in info           # same-step autoreset hands over the last observation


def test_stacked_observations_are_the_last_k_encoded_frames_with_zeros_before_the_start():
    import pickle

    import numpy as np

    from lstm_rl_lib.envs import StackObservations, make_env, stacked

    env = stacked("cartpole-novel", k=3)()
    assert env.observation_space.shape == (3 * 2,)
    d = env.obs_dim
    plain = make_env("cartpole-novel")
    o0, _ = env.reset(seed=0)
    p0, _ = plain.reset(seed=0)
    assert np.allclose(o0[: 2 * d], 0) and np.allclose(o0[2 * d:], p0)
    o1, *_ = env.step(1)
    p1, *_ = plain.step(1)
    assert not np.allclose(p1, p0)
    assert np.allclose(o1[:d], 0) and np.allclose(o1[d:2 * d], p0) and np.allclose(o1[2 * d:], p1)
    o0b, _ = env.reset(seed=0)                       # a new episode starts from zeros again
    assert np.allclose(o0b, o0)
    assert pickle.loads(pickle.dumps(stacked("cartpole-novel", k=4)))().observation_space.shape == (8,)
    discrete = StackObservations(make_env("CliffWalking-v1"), 2)   # Discrete(48): one-hot, then stacked
    o, _ = discrete.reset(seed=0)
    assert o.shape == (96,) and o[:48].sum() == 0 and o[48:].sum() == 1
    with pytest.raises(ValueError, match="positive integer"):
        stacked("tmaze", k=0)
    with pytest.raises(ValueError, match="unknown task"):
        stacked("no-such-task", k=4)


def test_every_algorithm_trains_on_a_stacked_environment():
    from lstm_rl_lib import train_dqn, train_ppo, train_reinforce
    from lstm_rl_lib.envs import stacked

    env = stacked("cartpole-novel", k=4)
    r = train_reinforce(env=env, policy="mlp", updates=2, num_envs=2, hidden_size=8, progress=False)
    p = train_ppo(env=env, policy="mlp", total_steps=256, num_envs=2, num_steps=64, hidden_size=8, progress=False)
    q = train_dqn(env=env, agent="mlp", total_steps=300, learning_starts=100, hidden_size=8, progress=False)
    for result in (r, p, q):
        assert result.observation_space.shape == (8,) and result.history["env_steps"][-1] > 0


def test_with_stack_wraps_the_env_of_a_config_or_a_dict_of_its_fields():
    from lstm_rl_lib.envs import stacked, with_stack
    from lstm_rl_lib.ppo import PPOConfig

    cfg = with_stack(PPOConfig(env="tmaze", env_kwargs={"length": 3}, policy="mlp"), 4)
    assert isinstance(cfg.env, stacked) and cfg.env.k == 4 and cfg.env.kwargs == {"length": 3} and cfg.env_kwargs == {}
    assert cfg.env().observation_space.shape == (4 * cfg.env().unwrapped.observation_space.n,)
    d = with_stack({"env": "cartpole-novel", "seed": 1}, 2)
    assert isinstance(d["env"], stacked) and d["env"].k == 2 and d["seed"] == 1 and d["env_kwargs"] == {}
    with pytest.raises(TypeError, match="with_stack needs"):
        with_stack("cartpole-novel")

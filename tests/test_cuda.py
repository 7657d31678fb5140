"""The GPU path: every agent trains with all its tensors on CUDA, PPO's update never waits for the GPU,
and seeded runs repeat. Skipped without CUDA; `python3 book.py test --device cuda` runs these and the
smoke book on a GPU and prints a short report."""
import numpy as np
import pytest
import torch

from lstm_rl_lib import dqn, ppo
from lstm_rl_lib import reinforce as rf

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")]

TRAIN = {
    "reinforce": lambda **kw: rf.train_reinforce(env="tmaze", env_kwargs={"length": 3}, updates=3, num_envs=4,
                                                 device="cuda", progress=False, **kw),
    "dqn": lambda **kw: dqn.train_dqn(env="tmaze", env_kwargs={"length": 3}, total_steps=600, num_envs=2,
                                      learning_starts=100, train_every=4, batch_size=8, device="cuda", progress=False, **kw),
    "ppo": lambda **kw: ppo.train_ppo(total_steps=1024, num_envs=4, num_steps=32, device="cuda", progress=False, **kw),
}


@pytest.mark.parametrize("core", ["lstm", "gru"])
@pytest.mark.parametrize("algorithm", sorted(TRAIN))
def test_every_agent_trains_with_its_tensors_on_the_gpu(algorithm, core):
    res = TRAIN[algorithm](core=core)
    assert all(p.device.type == "cuda" for p in res.net.parameters())
    assert all(b.device.type == "cuda" for b in res.net.buffers())
    ev = res.agent.evaluate(episodes=3)
    assert len(ev["return"]) == 3 and np.isfinite(ev["return"]).all()


def test_ppo_update_never_synchronises_with_the_gpu():
    cfg = ppo.PPOConfig(num_envs=4, num_steps=32, num_minibatches=2, epochs=2, device="cuda")
    net = ppo.ActorCritic(2, 2, hidden_size=8).cuda()
    c = ppo.RolloutCollector(cfg, net, torch.device("cuda"))
    rollout = c.collect()
    c.close()
    opt = torch.optim.Adam(net.parameters(), eps=1e-5)
    ppo.ppo_update(net, opt, rollout, cfg, 0.2, np.random.default_rng(0))     # warm-up: allocations, cuDNN plans
    torch.cuda.synchronize()
    real_tolist = torch.Tensor.tolist
    torch.cuda.set_sync_debug_mode("error")       # any implicit synchronisation now raises
    try:
        # the one read-back at the very end (the statistics) is allowed: let it through
        torch.Tensor.tolist = lambda self: (torch.cuda.set_sync_debug_mode(0), real_tolist(self))[1]
        stats = ppo.ppo_update(net, opt, rollout, cfg, 0.2, np.random.default_rng(1))
    finally:
        torch.Tensor.tolist = real_tolist
        torch.cuda.set_sync_debug_mode(0)
    assert set(stats) == set(ppo.UPDATE_STATS)


@pytest.mark.parametrize("algorithm", sorted(TRAIN))
def test_seeded_gpu_runs_repeat(algorithm):
    torch.backends.cudnn.deterministic = True
    a, b = TRAIN[algorithm](seed=3), TRAIN[algorithm](seed=3)
    assert a.history["return"] == b.history["return"]

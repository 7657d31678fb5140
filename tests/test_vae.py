"""V of the world model: the CartPole renderer, the ELBO's terms, the reparameterisation, save/load."""
import numpy as np
import pytest
import torch

from lstm_rl_lib import envs, vae
from lstm_rl_lib.vae import ConvVAE, VAEConfig, elbo_terms, gaussian_kl


def test_elbo_terms_match_a_hand_computation():
    rng = np.random.default_rng(0)
    x = (rng.random((2, 1, 16, 16)) < 0.3).astype(np.float64)
    logits = rng.normal(size=(2, 1, 16, 16))
    mu, logvar = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)) * 0.5
    p = 1 / (1 + np.exp(-logits))
    recon_hand = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(2, -1).sum(1)
    kl_hand = 0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1).sum(1)
    recon, kl = elbo_terms(*map(torch.as_tensor, (x, logits, mu, logvar)))
    np.testing.assert_allclose(recon.numpy(), recon_hand, rtol=1e-10)
    np.testing.assert_allclose(kl.numpy(), kl_hand, rtol=1e-10)
    loss, parts = vae.vae_loss(*map(torch.as_tensor, (x, logits, mu, logvar)), beta=0.5)
    assert loss.item() == pytest.approx(np.mean(recon_hand + 0.5 * kl_hand))
    assert parts["kl"].item() == pytest.approx(kl_hand.mean())


def test_kl_of_identical_gaussians_is_zero_and_known_values():
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(gaussian_kl(mu, logvar, mu, logvar), torch.zeros(4))
    torch.testing.assert_close(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)), torch.zeros(1))
    # KL(N(1, 1) || N(0, 1)) = 0.5; KL(N(0, 4) || N(0, 1)) = 0.5 * (4 - ln 4 - 1)
    assert gaussian_kl(torch.ones(1, 1), torch.zeros(1, 1)).item() == pytest.approx(0.5)
    assert gaussian_kl(torch.zeros(1, 1), torch.full((1, 1), np.log(4.0))).item() == pytest.approx(0.5 * (3 - np.log(4)))
    assert (gaussian_kl(mu, logvar) >= 0).all()


@pytest.mark.parametrize("size, latent", [(64, 32), (32, 4)])
def test_shapes_through_the_vae_and_bad_input(size, latent):
    net = ConvVAE(VAEConfig(size=size, latent=latent, channels=4))
    x = torch.rand(3, size, size)
    logits, mu, logvar, z = net(x)
    assert logits.shape == (3, 1, size, size) and mu.shape == logvar.shape == z.shape == (3, latent)
    assert net.decode(torch.zeros(2, latent)).shape == (2, 1, size, size)
    with pytest.raises(ValueError, match=rf"frames must have shape \(N, {size}, {size}\)"):
        net(torch.rand(3, size, size + 1))
    with pytest.raises(ValueError, match="multiple of 16"):
        VAEConfig(size=40)


def test_reparameterisation_samples_the_posterior_and_passes_gradients():
    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, np.log(0.25)]], requires_grad=True)
    z = ConvVAE.reparameterise(mu.expand(20_000, 2), logvar.expand(20_000, 2), torch.Generator().manual_seed(0))
    np.testing.assert_allclose(z.mean(0).detach().numpy(), [1.0, -2.0], atol=0.03)
    np.testing.assert_allclose(z.std(0).detach().numpy(), [1.0, 0.5], atol=0.03)
    z.sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


def test_saved_and_reloaded_vae_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = ConvVAE(VAEConfig(size=32, latent=6, channels=4, beta=2.0))
    x = torch.rand(5, 32, 32)
    net.save(tmp_path / "v.pt")
    again = ConvVAE.load(tmp_path / "v.pt")
    assert again.config == net.config
    for a, b in zip(net(x, sample=False), again(x, sample=False)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_renderer_draws_cart_position_and_pole_angle():
    frames = envs.render_cartpole([-2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.2, -0.2], size=64)
    assert frames.shape == (4, 64, 64) and frames.dtype == np.float32 and frames.max() == 1.0
    cols = np.arange(64)
    centre = lambda f: (f[:40] == 1.0).sum(0) @ cols / (f[:40] == 1.0).sum()   # pole pixels above the cart
    assert centre(frames[0]) < 20 < 44 < centre(frames[1])                      # the cart moves with x
    assert centre(frames[2]) > 32.5 > centre(frames[3])                        # positive angle leans right
    assert not np.array_equal(frames[2], envs.render_cartpole([0.0], [0.19])[0])  # small angle changes are visible
    # anti-aliased edges: a move by a tenth of a pixel (0.01 m, 0.002 rad) still changes the frame
    still, moved, tilted = envs.render_cartpole([0.5, 0.51, 0.5], [0.01, 0.01, 0.012])
    assert 0 < np.abs(moved - still).max() < 1 and 0 < np.abs(tilted - still).max() < 1
    with pytest.raises(ValueError, match="same length"):
        envs.render_cartpole([0.0, 1.0], [0.0])


def test_a_few_steps_of_training_lower_the_loss():
    torch.manual_seed(0)
    frames = torch.as_tensor(vae.explore_cartpole(8, 8, seed=1).frames(32)[:64])
    net = ConvVAE(VAEConfig(size=32, latent=4, channels=8))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        logits, mu, logvar, _ = net(frames)
        loss, _ = vae.vae_loss(frames, logits, mu, logvar)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_pixel_cartpole_shows_the_hidden_state_and_passes_gymnasiums_checks():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    env = envs.make_env("cartpole-pixels")
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    for _ in range(5):
        obs, _, term, trunc, info = env.step(1)
    assert obs.shape == (64, 64) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, envs.render_cartpole([info["state"][0]], [info["state"][2]])[0])
    assert gym.make("lstm_rl/CartPolePixels-v1", size=32).reset(seed=0)[0].shape == (32, 32)
    with pytest.raises(envs.UnsupportedSpaceError, match="VAE encoder"):
        envs.spaces_of(env)


def test_exploration_episodes_are_consistent_and_spread_covers_the_track():
    from lstm_rl_lib.envs import X_THRESHOLD
    eps = vae.explore_cartpole(16, 60, seed=2)
    assert eps.steps == 16 * 60 and len(eps.terminated) == len(eps)
    for states, actions, term in zip(eps.states, eps.actions, eps.terminated):
        assert states.shape == (len(actions) + 1, 4) and set(np.unique(actions)) <= {0, 1}
        inside = (np.abs(states[:, 0]) <= X_THRESHOLD) & (np.abs(states[:, 2]) <= 12 * 2 * np.pi / 360)
        assert inside[:-1].all() and inside[-1] != term          # only a terminated episode ends outside
    assert eps.frames(32).shape == (sum(len(a) + 1 for a in eps.actions), 32, 32)
    centre = vae.explore_cartpole(16, 60, seed=2, spread=False)
    assert np.ptp(eps.all_states()[:, 0]) > 3.0 > 1.0 > np.ptp(centre.all_states()[:, 0])
    again = vae.explore_cartpole(16, 60, seed=2)
    np.testing.assert_array_equal(again.all_states(), eps.all_states())


def test_train_vae_is_deterministic_improves_and_checks_its_input():
    frames = vae.explore_cartpole(8, 40, seed=0).frames(32)
    runs = [vae.train_vae(frames, VAEConfig(size=32, latent=4, channels=4), epochs=3, batch_size=32, lr=3e-3,
                          progress=False) for _ in range(2)]
    h = runs[0]["history"]
    assert h["epoch"] == [1, 2, 3] and h["recon"][-1] < h["recon"][0]
    assert h["recon"] == runs[1]["history"]["recon"]
    z = vae.encode_frames(runs[0]["model"], frames[:5])
    assert z.shape == (5, 4)
    with pytest.raises(ValueError, match=r"frames must have shape \(N, 64, 64\)"):
        vae.train_vae(frames, VAEConfig(size=64), epochs=1, progress=False)


def test_decode_and_kl_per_dimension_agree_with_the_model():
    torch.manual_seed(0)
    net = ConvVAE(VAEConfig(size=32, latent=3, channels=4)).eval()
    frames = envs.render_cartpole([0.0, 1.0, -1.0], [0.0, 0.1, -0.1], size=32)
    logits, mu, logvar, _ = net(torch.as_tensor(frames), sample=False)
    np.testing.assert_allclose(vae.decode_frames(net, vae.encode_frames(net, frames)),
                               torch.sigmoid(logits).squeeze(1).detach().numpy(), atol=1e-6)
    per_dim = vae.kl_per_dimension(net, frames, batch_size=2)
    assert per_dim.shape == (3,)
    np.testing.assert_allclose(per_dim.sum(), vae.gaussian_kl(mu, logvar).mean().item(), rtol=1e-5)

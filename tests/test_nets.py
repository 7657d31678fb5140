"""The hidden-state API of lstm_rl_lib.nets: resets really zero the state, one call equals step by step."""
import pytest
import torch

from lstm_rl_lib import nets


@pytest.fixture
def net():
    torch.manual_seed(0)
    return nets.RecurrentPolicy(obs_dim=3, n_actions=2, hidden_size=5)


def test_shapes_and_initial_state(net):
    logits, values, (h, c) = net(torch.randn(7, 4, 3))
    assert logits.shape == (7, 4, 2) and values.shape == (7, 4) and h.shape == c.shape == (1, 4, 5)
    h0, c0 = net.initial_state(4)
    assert h0.shape == (1, 4, 5) and not h0.any() and not c0.any()


def test_one_call_equals_step_by_step(net):
    obs = torch.randn(6, 2, 3)
    whole, _, final = net(obs)
    state, outs = None, []
    for t in range(6):
        logits, _, state = net(obs[t:t + 1], state)
        outs.append(logits)
    assert torch.allclose(whole, torch.cat(outs), atol=1e-6)
    assert torch.allclose(final[0], state[0], atol=1e-6)


def test_start_flag_resets_the_state_of_that_column_only(net):
    obs = torch.randn(6, 2, 3)
    starts = torch.zeros(6, 2)
    starts[3, 0] = 1
    out, _, _ = net(obs, starts=starts)
    fresh, _, _ = net(obs[3:, :1])
    assert torch.allclose(out[3:, :1], fresh, atol=1e-6)          # column 0 starts afresh at t=3
    plain, _, _ = net(obs)
    assert torch.allclose(out[:, 1], plain[:, 1], atol=1e-6)      # column 1 is untouched
    assert not torch.allclose(out[3:, 0], plain[3:, 0], atol=1e-4)


def test_reset_state_zeroes_exactly_the_flagged_columns():
    h = torch.ones(1, 3, 2)
    h2, c2 = nets.reset_state((h, 2 * h), torch.tensor([0.0, 1.0, 0.0]))
    assert h2[0, 1].abs().sum() == 0 and c2[0, 1].abs().sum() == 0
    assert torch.equal(h2[0, 0], h[0, 0]) and torch.equal(c2[0, 2], 2 * h[0, 2])


def test_detach_state_cuts_the_graph(net):
    _, _, state = net(torch.randn(2, 1, 3))
    assert state[0].requires_grad
    detached = nets.detach_state(state)
    assert not detached[0].requires_grad and nets.detach_state(None) is None


def test_forget_bias_is_set_in_torch_gate_order():
    net = nets.RecurrentPolicy(2, 2, hidden_size=4, forget_bias=3.0)
    b = net.lstm.bias_ih_l0 + net.lstm.bias_hh_l0
    assert torch.allclose(b[4:8], torch.full((4,), 3.0))          # (i, f, g, o): f is the second block


def test_feed_forward_has_the_same_interface():
    ff = nets.make_policy("mlp", 3, 2, hidden_size=8)
    logits, values, state = ff(torch.randn(5, 4, 3), ff.initial_state(4), torch.zeros(5, 4))
    assert logits.shape == (5, 4, 2) and values.shape == (5, 4) and state is None
    # memory-less: each output depends on its own observation only
    obs = torch.randn(5, 1, 3)
    changed = obs.clone()
    changed[0] += 1
    assert torch.allclose(ff(obs)[0][1:], ff(changed)[0][1:])


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 5)])
def test_bad_observation_shapes_are_explained(net, shape):
    with pytest.raises(ValueError, match=r"\(T, B, obs_dim=3\)"):
        net(torch.randn(*shape))


def test_bad_state_and_starts_shapes(net):
    with pytest.raises(ValueError, match="state must be"):
        net(torch.randn(2, 3, 3), net.initial_state(2))
    with pytest.raises(ValueError, match="starts must have shape"):
        net(torch.randn(2, 3, 3), starts=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="policy kind"):
        nets.make_policy("gru", 3, 2)


@pytest.mark.parametrize("core", nets.CORES)
def test_one_cell_step_equals_the_layer_call(core):
    """rnn_step (the cell function acting uses) computes what a one-step nn.LSTM / nn.GRU call does."""
    torch.manual_seed(0)
    rnn = nets.make_rnn(core, 3, 5)
    x = torch.randn(1, 4, 3)
    state = tuple(torch.randn(1, 4, 5) for _ in range(nets.state_arity(rnn)))
    out, new = nets.rnn_step(rnn, x, state)
    ref_out, ref_new = nets.rnn_forward(rnn, x, state)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    for a, b in zip(new, ref_new):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert not torch.allclose(out, nets.rnn_step(rnn, x, nets.zero_state(rnn, 4))[0])   # the state is used
    starts = torch.tensor([0.0, 1.0, 0.0, 1.0])[None]
    reset_out, _ = nets.run_lstm(rnn, x, state, starts, cell=True)
    torch.testing.assert_close(reset_out, nets.run_lstm(rnn, x, state, starts)[0], atol=1e-6, rtol=0)

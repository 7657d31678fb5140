"""Chapter 1's library: the NumPy LSTM, its hand-written BPTT, the torch import, training."""
import numpy as np
import pytest
import torch

from lstm_rl_lib import numpy_lstm as nl


def test_gradient_check_every_array_below_1e_6():
    errors = nl.gradient_check(input_size=3, hidden_size=4, T=6, batch=2, seed=0)
    assert set(errors) == {"W", "U", "b", "xs", "h0", "c0"}
    assert max(errors.values()) < 1e-6, errors


def test_gradient_check_can_fail():
    """The check catches a wrong backward pass: drop the forget-gate factor of the carousel."""
    params = nl.init_lstm_params(2, 3, 0)
    rng = np.random.default_rng(1)
    xs, R = rng.normal(size=(5, 2, 2)), rng.normal(size=(5, 2, 3))
    _, _, cache = nl.lstm_forward(xs, params)
    cache.gates["f"][:] = 1.0  # corrupt what backward reads
    wrong = nl.lstm_backward(R, cache, params).params["U"]

    def loss():
        return float(np.sum(R * nl.lstm_forward(xs, params)[0]))

    assert nl.relative_error(wrong, nl.numerical_gradient(loss, params["U"])) > 1e-3


def test_rnn_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    params = nl.init_rnn_params(3, 4, rng)
    xs, R = rng.normal(size=(7, 2, 3)), rng.normal(size=(7, 2, 4))

    def loss():
        return float(np.sum(R * nl.rnn_forward(xs, params)[0]))

    _, _, cache = nl.rnn_forward(xs, params)
    grads = nl.rnn_backward(R, cache, params).params
    for name in ("W", "U", "b"):
        assert nl.relative_error(grads[name], nl.numerical_gradient(loss, params[name])) < 1e-6, name


def test_matches_torch_lstm_outputs_and_every_gradient():
    diffs = nl.torch_equivalence(input_size=5, hidden_size=7, T=9, batch=3, seed=0)
    assert {"outputs", "h_T", "c_T", "grad W", "grad U", "grad b", "grad xs", "grad h0", "grad c0"} <= set(diffs)
    assert max(diffs.values()) < 1e-10, diffs


def test_to_torch_round_trip():
    params = nl.init_lstm_params(3, 5, 0)
    back = nl.from_torch(nl.to_torch(params))
    for k in params:
        np.testing.assert_allclose(back[k], params[k], atol=1e-15)


def test_from_torch_lstmcell_matches_one_step():
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(3, 4).double()
    x, h, c = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    h_ref, c_ref = cell(x, (h, c))
    h_new, c_new, _ = nl.lstm_step(x.numpy(), h.numpy(), c.numpy(), nl.from_torch(cell))
    np.testing.assert_allclose(h_new, h_ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c_new, c_ref.detach().numpy(), atol=1e-12)


def test_forward_shapes_and_initial_state():
    params = nl.init_lstm_params(3, 4, 0)
    xs = np.random.default_rng(0).normal(size=(6, 2, 3))
    hs, (h, c), cache = nl.lstm_forward(xs, params)
    assert hs.shape == (6, 2, 4) and h.shape == c.shape == (2, 4)
    assert all(g.shape == (6, 2, 4) for g in cache.gates.values())
    np.testing.assert_array_equal(hs[-1], h)
    # running in two halves with the carried state equals one run
    hs1, (h1, c1), _ = nl.lstm_forward(xs[:3], params)
    hs2, _, _ = nl.lstm_forward(xs[3:], params, h1, c1)
    np.testing.assert_allclose(np.concatenate([hs1, hs2]), hs, atol=1e-15)


def test_forget_bias_is_set():
    params = nl.init_lstm_params(2, 3, 0, forget_bias=5.0)
    np.testing.assert_array_equal(params["b"][:3], 5.0)
    assert not np.any(params["b"][3:] == 5.0)


@pytest.mark.parametrize("shape, match", [((5, 3), r"\(T, B, D\)"), ((5, 2, 4), "D=4 input features")])
def test_bad_input_shapes_are_explained(shape, match):
    params = nl.init_lstm_params(3, 4, 0)
    with pytest.raises(ValueError, match=match):
        nl.lstm_forward(np.zeros(shape), params)


def test_bad_initial_state_and_missing_parameter():
    params = nl.init_lstm_params(3, 4, 0)
    with pytest.raises(ValueError, match=r"h0 and c0 must have shape \(B, H\)"):
        nl.lstm_forward(np.zeros((2, 2, 3)), params, np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(KeyError, match="missing 'U'"):
        nl.lstm_forward(np.zeros((2, 2, 3)), {"W": params["W"], "b": params["b"]})


def test_from_torch_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="one-layer"):
        nl.from_torch(torch.nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="batch_first=False"):
        nl.from_torch(torch.nn.LSTM(3, 4, batch_first=True))
    with pytest.raises(TypeError, match="torch.nn.LSTM or torch.nn.LSTMCell"):
        nl.from_torch(torch.nn.GRU(3, 4))


def test_sigmoid_is_stable_and_correct():
    z = np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0])
    with np.errstate(over="raise"):
        s = nl.sigmoid(z)
    np.testing.assert_allclose(s, torch.sigmoid(torch.from_numpy(z)).numpy(), atol=1e-15)


def test_adam_matches_torch():
    rng = np.random.default_rng(0)
    p0, grads = rng.normal(size=(3, 4)), [rng.normal(size=(3, 4)) for _ in range(5)]
    ours = {"p": p0.copy()}
    opt = nl.Adam(ours, lr=0.01)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = torch.optim.Adam([tp], lr=0.01)
    for g in grads:
        opt.step({"p": g.copy()})
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    np.testing.assert_allclose(ours["p"], tp.detach().numpy(), atol=1e-12)


def test_clip_by_global_norm():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert nl.clip_by_global_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([grads["a"][0], grads["b"][0]], [0.6, 0.8])


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(4, 2)), np.array([0, 1, 1, 0])
    _, d = nl.softmax_cross_entropy(logits, labels)
    num = nl.numerical_gradient(lambda: nl.softmax_cross_entropy(logits, labels)[0], logits)
    assert nl.relative_error(d, num) < 1e-7


def test_recall_task_label_is_the_first_bit():
    xs, labels = nl.recall_task(T=10, batch=200, rng=np.random.default_rng(0))
    assert xs.shape == (10, 200, 2)
    np.testing.assert_array_equal(xs[0, :, 0], 2.0 * labels - 1)
    np.testing.assert_array_equal(xs[0, :, 1], 1.0)
    assert np.all(xs[1:, :, 1] == 0) and set(np.unique(xs[1:, :, 0])) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="at least 1"):
        nl.recall_task(0, 1, np.random.default_rng(0))


def test_lstm_learns_a_short_lag_and_is_deterministic():
    a = nl.train_memory_task(cell="lstm", T=5, seed=0, max_updates=300, progress=False)
    b = nl.train_memory_task(cell="lstm", T=5, seed=0, max_updates=300, progress=False)
    assert a.solved and a.final_accuracy >= 0.99
    assert a.history == b.history


def test_untrained_model_is_at_chance():
    r = nl.train_memory_task(cell="rnn", T=30, seed=0, max_updates=1, eval_every=1, progress=False)
    assert 0.4 < r.final_accuracy < 0.6


def test_bad_cell_name():
    with pytest.raises(ValueError, match="'lstm' or 'rnn'"):
        nl.train_memory_task(cell="gru", progress=False)


def test_interrupt_keeps_what_was_learned(monkeypatch):
    calls = {"n": 0}
    real = nl.recall_task

    def interrupting(T, batch, rng):
        if batch != 512:  # the held-out set is drawn once up front
            calls["n"] += 1
            if calls["n"] == 8:
                raise KeyboardInterrupt
        return real(T, batch, rng)

    monkeypatch.setattr(nl, "recall_task", interrupting)
    r = nl.train_memory_task(cell="lstm", T=5, seed=0, max_updates=100, progress=False)
    assert r.interrupted
    assert len(r.history["loss"]) == 7 and r.history["update"][-1] == 7
    assert 0.0 <= r.final_accuracy <= 1.0


def test_gradient_flow_vanishes_for_rnn_not_for_lstm_with_large_forget_bias():
    cfg = dict(hidden_size=16, seed=0)
    rnn = nl.init_memory_model(nl.MemoryTaskConfig(cell="rnn", **cfg), np.random.default_rng(0))
    lstm = nl.init_memory_model(nl.MemoryTaskConfig(cell="lstm", forget_bias=5.0, **cfg), np.random.default_rng(0))
    g_rnn, g_lstm = nl.gradient_flow(rnn, "rnn", 60), nl.gradient_flow(lstm, "lstm", 60)
    assert g_rnn[0] == g_lstm[0] == 1.0
    assert g_rnn[-1] < 1e-6 < 1e-2 < g_lstm[-1]

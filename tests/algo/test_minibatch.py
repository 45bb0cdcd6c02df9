"""The shared epoch/minibatch loop: step counts and gradient accumulation equivalence."""

import torch

from aiforml.algo.minibatch import run_epochs


def _fit(micro: int) -> tuple[torch.Tensor, dict[str, float]]:
    w = torch.nn.Parameter(torch.zeros(2))
    batch = {"x": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]),
             "y": torch.tensor([1.0, -1.0, 0.0, 3.0])}

    def loss_fn(mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = ((mb["x"] @ w - mb["y"]) ** 2).mean()
        return loss, {"loss": loss.detach()}

    opt = torch.optim.SGD([w], lr=0.1)
    stats = run_epochs(batch, loss_fn, opt, [w], epochs=3, minibatch_size=4,
                       micro_batch_size=micro, max_grad_norm=100.0,
                       generator=torch.Generator().manual_seed(0))
    return w.detach(), stats


def test_accumulated_micro_batches_equal_one_full_batch() -> None:
    w_full, stats = _fit(micro=4)
    w_micro, _ = _fit(micro=1)
    assert torch.allclose(w_full, w_micro, atol=1e-6)
    assert stats["optimizer_steps"] == 3.0


def test_gradient_is_clipped() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    batch = {"x": torch.ones(2)}

    def loss_fn(mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return -(1000.0 * w * mb["x"]).mean(), {}

    opt = torch.optim.SGD([w], lr=1.0)
    stats = run_epochs(batch, loss_fn, opt, [w], epochs=1, minibatch_size=2,
                       micro_batch_size=2, max_grad_norm=0.5)
    assert abs(stats["grad_norm"] - 1000.0) < 1e-3  # reported before clipping
    assert torch.isclose(w.detach(), torch.tensor([0.5]))  # step of the clipped norm


def test_early_stop_kl_ends_the_epochs_once_the_step_is_too_large() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    batch = {"x": torch.ones(4)}

    def loss_fn(mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # a stand-in for KL(rollout || current): grows with the distance travelled
        return -(w * mb["x"]).mean(), {"approx_kl": (w.detach() ** 2).sum()}

    def steps(stop: float | None) -> tuple[float, float]:
        w.data.zero_()
        stats = run_epochs(batch, loss_fn, torch.optim.SGD([w], lr=1.0), [w], epochs=5,
                           minibatch_size=2, micro_batch_size=2, max_grad_norm=100.0, early_stop_kl=stop)
        return stats["optimizer_steps"], stats["epochs_run"]

    # epoch 1 sees w = 0 then 1 (mean KL 0.5); epoch 2 sees 2 and 3 (mean 6.5) > 1.0: stop
    assert steps(1.0) == (4.0, 2.0)
    assert steps(None) == (10.0, 5.0)


def _fit_tokens(micro: int) -> torch.Tensor:
    """A token-mean loss over responses of different lengths (as PPO's and GRPO's are)."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(3))
    x, y = torch.randn(4, 5, 3), torch.randn(4, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]).float()
    batch = {"x": x, "y": y, "response_mask": mask}

    def loss_fn(mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        err = (mb["x"] @ w - mb["y"]) ** 2
        loss = (err * mb["response_mask"]).sum() / mb["response_mask"].sum()
        return loss, {"loss": loss.detach()}

    opt = torch.optim.SGD([w], lr=0.1)
    run_epochs(batch, loss_fn, opt, [w], epochs=2, minibatch_size=4, micro_batch_size=micro,
               max_grad_norm=100.0, generator=torch.Generator().manual_seed(0))
    return w.detach()


def test_the_update_does_not_depend_on_the_micro_batch_size() -> None:
    # Weighting micro-batches by their sample count made short responses count for more
    # in small micro-batches; weighted by tokens, micro-batch 1 and 4 take the same step.
    assert torch.allclose(_fit_tokens(micro=1), _fit_tokens(micro=4), atol=1e-6)
    assert torch.allclose(_fit_tokens(micro=2), _fit_tokens(micro=4), atol=1e-6)

"""A toy differentiable policy for the algorithm tests: position-wise logits and values."""

from collections.abc import Callable

import pytest
import torch


class ToyPolicy(torch.nn.Module):
    """Logits and values that depend only on the response position: enough to check directions."""

    def __init__(self, length: int, vocab: int) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(length, vocab))
        self.values = torch.nn.Parameter(torch.zeros(length))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_len: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = input_ids.shape[0]
        return self.logits.expand(batch, -1, -1), self.values.expand(batch, -1)


@pytest.fixture
def toy_policy() -> Callable[[int, int], ToyPolicy]:
    return ToyPolicy

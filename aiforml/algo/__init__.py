"""RL algorithms for the learner: PPO (:mod:`.ppo`) and GRPO (:mod:`.grpo`).

Pure maths on tensors (:mod:`.core`), one algorithm per file, and the shared minibatch
loop (:mod:`.minibatch`). Nothing here knows about Ray, models on disk, or I/O.
"""

from aiforml.algo.grpo import group_advantages, grpo_update
from aiforml.algo.ppo import compute_gae, ppo_advantages, ppo_update

__all__ = ["compute_gae", "group_advantages", "grpo_update", "ppo_advantages", "ppo_update"]

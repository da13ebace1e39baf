"""Weight aligning (``continual.method: wa``): the classifier head's new classes scaled to
the old ones' norm on the server.

Zhao, Xiao, Gan, Zhang & Xia, "Maintaining Discrimination and Fairness in Class
Incremental Learning", CVPR 2020 (https://arxiv.org/abs/1911.07053). After a new task the
output-layer weight vectors of the new classes are longer than the old classes' (the head
is trained on many more new examples), so the model prefers new classes; WA rescales
them:

    gamma = mean_{c old} ||W_c|| / mean_{c new} ||W_c||,    W_c <- gamma * W_c  (c new).

Here the head has a bias too; it is scaled with its row (``b_c <- gamma * b_c``), so a new
class's logit is scaled by gamma, as the paper's bias-free logits are. The paper also
clips the head's weights to be non-negative after every training step; this
implementation does not (the clients' training is unchanged).

Federated: the server applies it to the aggregated global model after every round of every
task but the first, so every model the clients receive and the run scores (each round's
task accuracies, the accuracy matrix's rows, an early-stopped model) is aligned. Applied
only at a task's last round (the model that moves on to the next task, as the paper does
once per task), it cost split digits with replay (``benchmarks/scenarios/continual_head``,
seed 0) 0.14 average accuracy (0.74 against 0.88 without wa); every round, 0.002: the
rows then never drift far between two alignments. Old classes are those of the tasks
before the server's current task; new, the classes of that task and of any later task a
client's own schedule (``schedule: own``) has reached.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedrobust.continual.federated import client_offset, schedule
from fedrobust.scenario import Scenario


def align_weights(
    weight: torch.Tensor, bias: torch.Tensor | None, old: Sequence[int], new: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """Scale the head rows of the ``new`` classes to the mean norm of the ``old`` ones.

    Parameters
    ----------
    weight : torch.Tensor
        The head's weight, one row per class (``(num_classes, features)``).
    bias : torch.Tensor or None
        The head's bias (``(num_classes,)``), scaled with its rows.
    old, new : sequence of int
        The classes of the finished tasks and of the current one.

    Returns
    -------
    (torch.Tensor, torch.Tensor or None, float)
        New weight and bias tensors (the inputs are not changed) and gamma (1.0, and the
        inputs as they are, when either group is empty or the new rows are all zero).
    """
    if not old or not new:
        return weight, bias, 1.0
    norms = weight.detach().double().flatten(1).norm(dim=1)
    new_norm = norms[list(new)].mean()
    if new_norm == 0:
        return weight, bias, 1.0
    gamma = float(norms[list(old)].mean() / new_norm)
    scale = torch.ones(weight.shape[0], dtype=torch.float64)
    scale[list(new)] = gamma
    aligned = (weight.double() * scale.view(-1, *[1] * (weight.dim() - 1))).to(weight.dtype)
    if bias is not None:
        bias = (bias.double() * scale).to(bias.dtype)
    return aligned, bias, gamma


def aligned_classes(scenario: Scenario, rnd: int) -> tuple[list[int], list[int]] | None:
    """The old and new classes weight aligning balances after round ``rnd`` (the server's
    schedule), or ``None`` in the rounds of the first task (no old classes yet)."""
    cl = scenario.continual
    assert cl is not None and cl.tasks is not None
    plan = schedule(cl)
    task = plan.task(rnd)
    if task == 0:
        return None
    reached = task  # together: every client is on the server's task
    if cl.schedule == "own":
        clients = range(scenario.data.partition.num_clients)
        reached = max(plan.task(rnd, client_offset(scenario, pid)) for pid in clients)
    old = [c for group in cl.tasks[:task] for c in group]
    new = [c for group in cl.tasks[task : reached + 1] for c in group]
    return old, new

"""ER-ACE: the incoming rows' cross-entropy over their batch's classes, the buffer's over all."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.continual.er_ace import ERACE, asymmetric_logits
from fedrobust.continual.replay import ReservoirBuffer


def _identity(k: int) -> nn.Linear:
    model = nn.Linear(k, k, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(k))
    return model


def test_incoming_rows_are_scored_over_their_batchs_classes_the_buffer_over_all() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    y = torch.tensor([0, 1, 2])  # two incoming rows (classes 0, 1), one buffer row
    per_row = F.cross_entropy(asymmetric_logits(logits, y, incoming=2), y, reduction="none")
    both = math.log(math.e + math.e**2)
    expected = [both - 1, both - 2, math.log(math.e**3 + math.e + 1) - 0]
    torch.testing.assert_close(per_row, torch.tensor(expected))


def test_plugin_appends_the_buffer_and_the_wrapped_model_gives_er_aces_loss() -> None:
    buffer = ReservoirBuffer(capacity=1, seed=0)
    buffer.add(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([2]))
    model = _identity(3)
    ace = ERACE(buffer, ratio=1.0, seed=0)
    head = ace.before_training(model).train()
    x, y = ace.batch(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0]))
    assert y.tolist() == [0, 2]
    loss = F.cross_entropy(head(x), y)
    # incoming: only class 0 present -> CE 0; buffer: CE over all three classes
    assert math.isclose(float(loss.detach()), math.log(math.e**3 + math.e + 1) / 2, rel_tol=1e-6)
    loss.backward()
    # the incoming row pushes no logit of an absent class: row 1 of W (class 1) gets
    # gradient from the buffer row only, softmax([3,1,0])[1] * x_buffer / 2
    p1 = math.e / (math.e**3 + math.e + 1)
    torch.testing.assert_close(model.weight.grad[1], torch.tensor([3.0, 1.0, 0.0]) * p1 / 2)
    head.eval()
    torch.testing.assert_close(head(x), model(x))  # evaluation sees the plain logits


def test_with_an_empty_buffer_the_incoming_batch_is_still_masked() -> None:
    ace = ERACE(ReservoirBuffer(capacity=2, seed=0), ratio=1.0, seed=0)
    head = ace.before_training(_identity(3)).train()
    x, y = ace.batch(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0]))
    assert len(x) == 1
    assert float(F.cross_entropy(head(x), y).detach()) < 1e-6


def test_memory_batch_draws_the_current_task_beside_the_buffer_by_class_share() -> None:
    # the buffer holds classes 0 and 1, the current task classes 2 and 3: half the memory
    # batch comes from each (the share a class-balanced reservoir over the stream holds)
    buffer = ReservoirBuffer(capacity=4, seed=0)
    buffer.add(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))
    current = (torch.ones(6, 2), torch.tensor([2, 3, 2, 3, 2, 3]))
    ace = ERACE(buffer, ratio=2.0, seed=0, current=current)
    ace.before_training(_identity(2))
    x, y = ace.batch(torch.ones(2, 2), torch.tensor([2, 3]))
    assert len(y) == 6  # 2 incoming + 4 memory
    memory = y[2:].tolist()
    assert sum(c in (2, 3) for c in memory) == 2 and sum(c in (0, 1) for c in memory) == 2


def test_on_the_first_task_the_memory_batch_is_the_current_tasks() -> None:
    current = (torch.ones(3, 2), torch.tensor([0, 1, 1]))
    ace = ERACE(ReservoirBuffer(capacity=2, seed=0), ratio=1.0, seed=0, current=current)
    ace.before_training(_identity(2))
    _, y = ace.batch(torch.ones(2, 2), torch.tensor([0, 1]))
    assert len(y) == 4 and set(y[2:].tolist()) <= {0, 1}

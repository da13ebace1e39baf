"""The hook trains a client on its labelled part and adds the unlabelled term."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ConfigRecord, RecordDict
from torch import nn

from fedrobust.federation.client_hooks import LocalPlan
from fedrobust.federation.local_round import ClientJob
from fedrobust.federation.registry import CLIENT_HOOKS, client_hooks
from fedrobust.models.registry import InputSpec
from fedrobust.robust.client import MaliciousHook
from fedrobust.scenario import parse_scenario
from fedrobust.semisup.client import SemiSupervisedHook
from fedrobust.semisup.methods import SemiSupervisedTerm
from fedrobust.train import local_train

SPEC = InputSpec(shape=(1, 4, 4), num_classes=2)


def _job(semi: dict | None, labeled: float = 0.25, partition: int = 0, rnd: int = 1) -> ClientJob:
    doc = {
        "name": "h",
        "data": {"dataset": "digits", "labeled_fraction": labeled},
        "train": {"batch_size": 4, **({"semi_supervised": semi} if semi else {})},
    }
    sc = parse_scenario(doc)
    return ClientJob(sc, SPEC, ConfigRecord(), RecordDict(), rnd, partition, seed=rnd)


def _plan() -> LocalPlan:
    x = np.random.default_rng(0).random((40, 1, 4, 4)).astype(np.float32)
    return LocalPlan(x=x, y=(np.arange(40) % 2).astype(np.int64))


def test_the_hook_exists_only_with_limited_labels() -> None:
    assert SemiSupervisedHook.create(_job(None, labeled=1.0).scenario) is None
    assert SemiSupervisedHook.create(_job(None).scenario) is not None
    order = list(CLIENT_HOOKS)
    assert order.index(SemiSupervisedHook) < order.index(MaliciousHook)  # poison the labelled
    assert any(isinstance(h, SemiSupervisedHook) for h in client_hooks(_job(None).scenario))


def test_supervised_only_trains_on_the_labelled_part_alone() -> None:
    hook = SemiSupervisedHook()
    job = _job(None)
    plan = hook.plan(job, nn.Linear(16, 2), _plan())
    assert len(plan.y) == 10 and plan.terms == ()
    assert hook.metrics(job, None, {"num-examples": 10}) == {  # type: ignore[arg-type]
        "num-examples": 10,
        "num-unlabeled": 30,
    }


def test_the_same_labels_every_round_and_other_labels_on_another_client() -> None:
    a = SemiSupervisedHook().plan(_job(None, rnd=1), nn.Linear(16, 2), _plan())
    b = SemiSupervisedHook().plan(_job(None, rnd=7), nn.Linear(16, 2), _plan())
    c = SemiSupervisedHook().plan(_job(None, partition=1), nn.Linear(16, 2), _plan())
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)


def test_semi_supervised_adds_its_term_and_local_training_runs() -> None:
    hook = SemiSupervisedHook()
    job = _job({"method": "fixmatch", "threshold": 0.0, "unlabeled_batch_ratio": 2})
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    plan = hook.plan(job, model, _plan())
    (term,) = plan.terms
    assert isinstance(term, SemiSupervisedTerm) and len(term.batches.x) == 30
    torch.manual_seed(0)
    result = local_train(
        model, plan.x, plan.y, train=job.scenario.train, num_classes=2, seed=0,
        plugins=plan.plugins(),
    )  # fmt: skip
    assert result.num_examples == 10  # the aggregation weight: the labelled examples
    assert term.seen == 3 * 8  # 3 labelled batches of 4, each with 8 unlabelled inputs
    metrics = hook.metrics(job, result, {})
    assert metrics["pseudo-label-rate"] == 1.0 and metrics["num-unlabeled"] == 30

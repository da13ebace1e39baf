"""The ``evaluation.explain`` section: defaults, fields refused where they do not apply,
switching methods keeps what applies."""

from __future__ import annotations

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.explain.config import ExplainConfig
from fedrobust.scenario import parse_scenario

BASE = {"name": "x", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}}}


def scenario(explain: dict) -> object:
    return parse_scenario({**BASE, "evaluation": {"explain": explain}})


def test_the_defaults_explain_100_examples_by_integrated_gradients() -> None:
    cfg = scenario({}).evaluation.explain
    assert (cfg.method, cfg.samples, cfg.baseline, cfg.n_steps) == (
        "integrated_gradients", 100, "zeros", 50,
    )  # fmt: skip
    assert parse_scenario(BASE).evaluation.explain is None


@pytest.mark.parametrize(
    ("explain", "where"),
    [
        ({"method": "lime"}, "evaluation.explain.method"),
        ({"method": "saliency", "n_steps": 10}, "evaluation.explain.n_steps"),
        ({"method": "saliency", "baseline": "mean"}, "evaluation.explain.baseline"),
        ({"method": "integrated_gradients", "window": 3}, "evaluation.explain.window"),
        ({"method": "occlusion", "shap_samples": 3}, "evaluation.explain.shap_samples"),
        ({"samples": 0}, "evaluation.explain.samples"),
        ({"n_steps": 1}, "evaluation.explain.n_steps"),
        ({"baseline": "blur"}, "evaluation.explain.baseline"),
        ({"colour": "red"}, "evaluation.explain.colour"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(explain: dict, where: str) -> None:
    with pytest.raises(FedrobustError) as caught:
        scenario(explain)
    assert caught.value.where == where


def test_switching_method_keeps_the_fields_that_apply() -> None:
    cfg = ExplainConfig(method="integrated_gradients", samples=40, baseline="mean", n_steps=9)
    occlusion = cfg.for_method("occlusion")
    assert (occlusion.method, occlusion.samples, occlusion.baseline) == ("occlusion", 40, "mean")
    saliency = cfg.for_method("saliency", samples=7)
    assert (saliency.method, saliency.samples) == ("saliency", 7)
    assert "n_steps" not in saliency.model_dump()


def test_a_run_asking_for_explanations_without_captum_is_refused_before_launch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fedrobust.explain import config

    monkeypatch.setattr("fedrobust.extras.find_spec", lambda name: None)
    with pytest.raises(FedrobustError, match=r"fedrobust\[explain\]") as caught:
        config.check_explain(scenario({}).evaluation.explain)
    assert caught.value.where == "evaluation.explain"
    config.check_explain(parse_scenario(BASE).evaluation.explain)  # no section: nothing to refuse

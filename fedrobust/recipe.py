"""The recipe a server sends with every message: the scenario and the data's input spec.

An edge client holds no copy of the scenario nor of the server's dataset. The validated
scenario (as JSON) tells it how to train; the input spec (shape and number of classes)
tells it which model to build and what its own data must look like.
"""

from __future__ import annotations

from flwr.app import ConfigRecord

from fedrobust.models.registry import InputSpec
from fedrobust.scenario import Scenario

SCENARIO = "scenario"
INPUT_SHAPE = "input-shape"
NUM_CLASSES = "num-classes"


def recipe_config(scenario: Scenario, spec: InputSpec) -> ConfigRecord:
    """The ConfigRecord entries every message to a client carries."""
    return ConfigRecord(
        {
            SCENARIO: scenario.model_dump_json(),
            INPUT_SHAPE: [int(d) for d in spec.shape],
            NUM_CLASSES: int(spec.num_classes),
        }
    )


def read_recipe(config: ConfigRecord) -> tuple[Scenario, InputSpec]:
    """The scenario and input spec in a message's ``config`` record."""
    missing = [key for key in (SCENARIO, INPUT_SHAPE, NUM_CLASSES) if key not in config]
    if missing:
        raise ValueError(f"the message's config record lacks {missing}")
    scenario = Scenario.model_validate_json(str(config[SCENARIO]))
    shape = tuple(int(d) for d in config[INPUT_SHAPE])  # type: ignore[union-attr]
    return scenario, InputSpec(shape=shape, num_classes=int(config[NUM_CLASSES]))  # type: ignore[arg-type]

"""The ``personalization`` section: a personal model per client beside the global one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from fedrobust.config.base import Section, field_error

PERSONALIZATION_METHODS = ("finetune", "fedper", "fedrep", "ditto", "fedbn")

# Which optional fields each method reads; setting another is an error.
METHOD_FIELDS: dict[str, set[str]] = {
    "finetune": {"finetune_epochs"},
    "fedper": {"head_layers"},
    "fedrep": {"head_layers", "head_epochs"},
    "ditto": {"lambda_", "personal_epochs"},
    "fedbn": set(),
}


class PersonalizationConfig(Section):
    """How each client turns the global model into its own (needs
    ``data.local_test_fraction > 0``: personal models are measured on the clients' own
    test splits).

    Parameters
    ----------
    method : str
        finetune: ``finetune_epochs`` of local training from the global model before
        evaluation | fedper (Arivazhagan et al. 2019): the last ``head_layers`` linear
        layers are private, the rest is trained jointly and shared | fedrep (Collins et
        al. 2021): the same split; each round trains the private head for
        ``head_epochs`` with the body frozen, then the body for ``train.local_epochs``
        with the head frozen | ditto (Li et al. 2021): a private model trained for
        ``personal_epochs`` a round with ``lambda / 2 * ||v - w_global||^2`` beside the
        usual global update | fedbn (Li et al. 2021): normalisation layers stay private.
    finetune_epochs : int
        finetune: local epochs from the global model.
    head_layers : int
        fedper / fedrep: how many of the last linear layers form the private head.
    head_epochs : int
        fedrep: epochs of head training each round (and at evaluation).
    lambda_ : float
        ditto: weight of the pull towards the global model (YAML key ``lambda``).
    personal_epochs : int
        ditto: epochs of the personal model each round.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    method: Literal[PERSONALIZATION_METHODS]  # type: ignore[valid-type]
    finetune_epochs: Annotated[int, Field(ge=1, le=100)] = 1
    head_layers: Annotated[int, Field(ge=1)] = 1
    head_epochs: Annotated[int, Field(ge=1, le=100)] = 1
    lambda_: Annotated[float, Field(ge=0, alias="lambda")] = 0.1
    personal_epochs: Annotated[int, Field(ge=1, le=100)] = 1

    def applicable(self) -> set[str]:
        return METHOD_FIELDS[self.method] | {"method"}

    @model_validator(mode="after")
    def _fields_fit_method(self) -> PersonalizationConfig:
        for name in sorted(self.model_fields_set - self.applicable()):
            shown = "lambda" if name == "lambda_" else name
            raise field_error(shown, f"does not apply to personalization method '{self.method}'")
        return self

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        keep = self.applicable()  # written back under its YAML name
        doc = {k: v for k, v in handler(self).items() if k in keep}
        return {("lambda" if k == "lambda_" else k): v for k, v in doc.items()}

"""The ``evaluation.explain`` section: attribution maps of the model a run keeps."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedrobust.config.base import Section
from fedrobust.extras import require

#: The attribution methods and the fields each one reads (besides the common ones).
METHOD_FIELDS: dict[str, set[str]] = {
    "integrated_gradients": {"baseline", "n_steps"},
    "saliency": set(),
    "gradient_shap": {"shap_samples", "background"},
    "occlusion": {"baseline", "window"},
}
COMMON_FIELDS = {"method", "samples", "examples"}


class ExplainConfig(Section):
    """Attribute the kept model's predictions to its input features (Captum).

    After the last round the server explains ``samples`` test examples, stratified per
    class and seeded: attributions for the predicted and for the true class, per-class
    mean maps, a few single examples, and, when the scenario has a backdoor attack, the
    share of the attribution that falls inside the trigger on triggered and clean
    inputs. Figures go to ``final.explain``, ``explain/results.json`` and the report;
    ``fedrobust explain RUN_DIR`` runs any method again on a finished run.

    Parameters
    ----------
    method : str
        integrated_gradients (Sundararajan et al. 2017) | saliency (Simonyan et al.
        2014; the gradient's magnitude) | gradient_shap (Lundberg & Lee 2017; expected
        gradients from baselines drawn from the server's data) | occlusion (Zeiler &
        Fergus 2014; the output's drop when a window is blanked out).
    samples : int
        Test examples explained (fewer when the test set is smaller).
    examples : int
        Single examples drawn in the examples figure (input | attribution).
    baseline : str
        integrated_gradients, occlusion: the reference input, ``zeros`` (a black image)
        or ``mean`` (the mean of the server's test inputs).
    n_steps : int
        integrated_gradients: steps of the path integral (Gauss-Legendre).
    shap_samples : int
        gradient_shap: random (baseline, interpolation point) draws per input.
    background : int
        gradient_shap: baselines drawn from the server's test inputs.
    window : int or None
        occlusion: side of the square window (images) or its length (flat inputs);
        default about a seventh of the input's side, at least 2 (stride: half of it).
    """

    method: Literal[tuple(METHOD_FIELDS)] = "integrated_gradients"  # type: ignore[valid-type]
    samples: Annotated[int, Field(ge=1, le=10_000)] = 100
    examples: Annotated[int, Field(ge=0, le=32)] = 6
    baseline: Literal["zeros", "mean"] = "zeros"
    n_steps: Annotated[int, Field(ge=2, le=1000)] = 50
    shap_samples: Annotated[int, Field(ge=1, le=1000)] = 20
    background: Annotated[int, Field(ge=1, le=10_000)] = 50
    window: Annotated[int, Field(ge=1)] | None = None

    def applicable(self) -> set[str]:
        return COMMON_FIELDS | METHOD_FIELDS[self.method]

    @model_validator(mode="after")
    def _fields_fit_method(self) -> ExplainConfig:
        self.check_applicable(f"evaluation.explain.method '{self.method}'")
        return self

    def for_method(self, method: str, samples: int | None = None) -> ExplainConfig:
        """This section with another ``method`` (the fields that apply to it kept) and,
        when given, another number of ``samples``; validated again."""
        keep = COMMON_FIELDS | METHOD_FIELDS.get(method, set())
        fields = {k: v for k, v in self.model_dump().items() if k in keep}
        fields["method"] = method
        if samples is not None:
            fields["samples"] = samples
        return ExplainConfig.model_validate(fields)


def check_explain(cfg: ExplainConfig | None) -> None:
    """Refuse ``evaluation.explain`` before launch when Captum or matplotlib is missing.

    Raises
    ------
    FedrobustError
        Naming ``evaluation.explain`` and the install command.
    """
    if cfg is not None:
        require("evaluation.explain", "captum", "matplotlib")

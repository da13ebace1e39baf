"""The ``privacy`` section: differential privacy, its audit and secure aggregation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedrobust.config.base import Section, field_error
from fedrobust.secagg.config import SecAggConfig

DP_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "sample": {
        "noise_multiplier",
        "target_epsilon",
        "epsilon_budget",
        "delta",
        "max_grad_norm",
        "accountant",
        "poisson_sampling",
        "grad_sample_mode",
        "max_physical_batch_size",
        "reproducible",
    },
    "client": {
        "noise_multiplier",
        "target_epsilon",
        "delta",
        "accountant",
        "clipping",
        "clipping_norm",
        "side",
        "target_clipped_quantile",
        "clip_norm_lr",
        "clipped_count_stddev",
        "reproducible",
    },
}
ADAPTIVE_FIELDS = {"target_clipped_quantile", "clip_norm_lr", "clipped_count_stddev"}


class DPConfig(Section):
    """Differential privacy (``fedrobust.privacy``).

    Parameters
    ----------
    mode : str
        none | sample (Opacus DP-SGD on every client: each client's examples are
        protected) | client (user-level DP-FedAvg: each client's whole update is clipped
        and the server adds Gaussian noise to the average).
    noise_multiplier : float
        sigma: noise standard deviation over the clipping norm. Exactly one of
        ``noise_multiplier`` and ``target_epsilon``.
    target_epsilon : float
        Calibrate sigma once for the whole run so that no client ends above this epsilon;
        it is also each client's budget.
    epsilon_budget : float
        sample, with ``noise_multiplier``: a client whose next round would take it above
        this epsilon refuses to train (default: no budget).
    delta : float
        The delta of (epsilon, delta)-DP; sample: below 1 / (largest client training
        set); client: below 1 / (number of clients).
    max_grad_norm : float
        sample: per-example gradient clipping norm C.
    accountant : str
        rdp | prv | gdp (Opacus accountants).
    poisson_sampling : bool
        sample: Poisson-sampled batches (what the accountant assumes).
    grad_sample_mode : str
        sample: hooks | functorch | ew | ghost (Opacus per-sample gradient engines) |
        fast (per-example norms and the clipped sum without per-example gradients:
        :mod:`fedrobust.privacy.fastclip`; a model with a layer it does not cover
        trains with hooks, with a warning).
    max_physical_batch_size : int
        sample: split logical batches into physical ones of at most this size (memory).
    clipping : str
        client: fixed | adaptive (Andrew et al. 2021 quantile-based clipping norm).
    clipping_norm : float
        client: the update clipping norm (adaptive: its initial value).
    side : str
        client: where updates are clipped, client | server.
    target_clipped_quantile, clip_norm_lr, clipped_count_stddev : float
        client, adaptive: the quantile of update norms to clip at, the geometric
        update rate of the norm, and the noise on the clipped count (default: sampled
        clients / 20).
    reproducible : bool
        Derive the protecting randomness (DP-SGD noise and Poisson batches, client-level
        noise and client sampling) from the public seed instead of the OS's secret
        entropy, so a run repeats exactly. Anyone holding the run directory can then
        regenerate the noise: such a run reports ``final.privacy_valid: false`` and its
        epsilon protects nothing. Default false.
    """

    mode: Literal["none", "sample", "client"] = "none"
    noise_multiplier: Annotated[float, Field(gt=0)] | None = None
    target_epsilon: Annotated[float, Field(gt=0)] | None = None
    epsilon_budget: Annotated[float, Field(gt=0)] | None = None
    delta: Annotated[float, Field(gt=0, lt=1)] = 1e-5
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    accountant: Literal["rdp", "prv", "gdp"] = "rdp"
    poisson_sampling: bool = True
    grad_sample_mode: Literal["hooks", "functorch", "ew", "ghost", "fast"] = "fast"
    max_physical_batch_size: Annotated[int, Field(ge=1)] | None = None
    clipping: Literal["fixed", "adaptive"] = "fixed"
    clipping_norm: Annotated[float, Field(gt=0)] = 1.0
    side: Literal["client", "server"] = "client"
    target_clipped_quantile: Annotated[float, Field(ge=0, le=1)] = 0.5
    clip_norm_lr: Annotated[float, Field(gt=0)] = 0.2
    clipped_count_stddev: Annotated[float, Field(gt=0)] | None = None
    reproducible: bool = False

    def applicable(self) -> set[str]:
        fields = DP_FIELDS[self.mode] | {"mode"}
        if self.mode == "client" and self.clipping == "fixed":
            fields -= ADAPTIVE_FIELDS
        return fields

    @model_validator(mode="after")
    def _fields_fit_mode(self) -> DPConfig:
        self.check_applicable(f"privacy.dp.mode '{self.mode}'")
        if self.mode != "none" and (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise field_error(
                "noise_multiplier", "set exactly one of noise_multiplier and target_epsilon"
            )
        if self.epsilon_budget is not None and self.target_epsilon is not None:
            raise field_error("epsilon_budget", "target_epsilon is already the budget; set one")
        return self

    @property
    def budget(self) -> float | None:
        """The epsilon no client may exceed, if any."""
        return self.target_epsilon if self.target_epsilon is not None else self.epsilon_budget


class AuditConfig(Section):
    """One-run privacy audit (Steinke, Nasr & Jagielski 2023).

    Parameters
    ----------
    canaries : int
        Number of canary examples (random images with random labels), spread over the
        clients; each is included in its client's training set with probability 1/2.
    confidence : float
        Confidence of the reported lower bound on epsilon.
    """

    canaries: Annotated[int, Field(ge=10, le=100_000)] = 500
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95


class PrivacyConfig(Section):
    """Privacy: differential privacy and its empirical audit.

    Parameters
    ----------
    dp : DPConfig
        Differential privacy mode and parameters.
    audit : AuditConfig
        Canary audit run with the training (default: off).
    secure_aggregation : SecAggConfig
        SecAgg+ between clients and server (default: off).
    """

    dp: DPConfig = DPConfig()
    audit: AuditConfig | None = None
    secure_aggregation: SecAggConfig | None = None

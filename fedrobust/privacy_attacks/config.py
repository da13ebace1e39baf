"""The ``evaluation.privacy_attacks`` section: record what the server sees, attack it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedrobust.config.base import Section, field_error

PRIVACY_ATTACKS = ("inversion", "membership")
INVERSION_METHODS = ("geiping", "dlg")


class InversionConfig(Section):
    """Gradient inversion by the server, from the update it received.

    Parameters
    ----------
    method : str
        geiping: cosine matching with a total-variation prior and signed Adam (Geiping
        et al. 2020, "Inverting Gradients") | dlg: squared-distance matching with the
        labels read off the last layer (Zhu et al. 2019; Zhao et al. 2020, iDLG).
    iterations : int
        Optimisation steps per restart.
    restarts : int
        Random restarts; the one whose gradients match best is kept.
    lr : float
        Adam's learning rate on the dummy inputs.
    tv : float
        Weight of the total-variation prior (geiping; 0 turns it off).
    """

    method: Literal[INVERSION_METHODS] = "geiping"  # type: ignore[valid-type]
    iterations: Annotated[int, Field(ge=1, le=100_000)] = 1000
    restarts: Annotated[int, Field(ge=1, le=64)] = 1
    lr: Annotated[float, Field(gt=0, le=10)] = 0.1
    tv: Annotated[float, Field(ge=0)] = 1e-4


class MembershipConfig(Section):
    """Membership inference on the model the run keeps.

    Parameters
    ----------
    samples : int
        Members drawn from the clients' training data, and as many non-members from
        the data the run held out (the test set); fewer when there are fewer.
    shadow_models : int
        Shadow models of the LiRA attack (Carlini et al. 2022), each trained centrally
        by the scenario's recipe (model, optimizer, batch size; no DP) on a random half
        of the candidates; 0 runs the loss-threshold attack alone.
    shadow_epochs : int or None
        Epochs of each shadow model; default: as many passes over its data as the run
        made over a client's (``rounds x local_epochs x fraction_train``, at least 1).
    """

    samples: Annotated[int, Field(ge=10, le=100_000)] = 500
    shadow_models: Annotated[int, Field(ge=0, le=256)] = 8
    shadow_epochs: Annotated[int, Field(ge=1, le=10_000)] | None = None

    @model_validator(mode="after")
    def _shadows(self) -> MembershipConfig:
        if self.shadow_models == 1:
            raise field_error("shadow_models", "LiRA needs at least 2 (or 0: loss attack alone)")
        return self


class PrivacyAttacksConfig(Section):
    """What a curious server or a model user learns, measured during the run.

    The server records the updates it receives from ``clients`` in ``rounds`` (under
    SecAgg+ it only ever sees the unmasked aggregate, so that is what it records and
    attacks); after the last round the attacks run and their figures go to
    ``final.privacy_attacks`` and ``privacy_attacks/results.json``. ``fedrobust
    privacy-attack RUN_DIR`` runs them again on a finished run.

    Parameters
    ----------
    attacks : list[str]
        inversion (the server reconstructs a client's training inputs from its update)
        and/or membership (a model user tells training members from non-members).
    clients : list[int] or None
        Partition ids whose updates the server records (plain aggregation; default
        ``[0]``). Under SecAgg+ there is no single client's update to record: leave it
        out.
    rounds : list[int]
        Rounds whose updates the server records.
    images : int or None
        Inputs each inversion reconstructs (its batch of dummy inputs); default: as many
        as the training examples the update reports (the server knows the count), at
        most 32.
    inversion : InversionConfig
        How the inversion optimises.
    membership : MembershipConfig
        How many candidates and shadow models.
    """

    attacks: Annotated[list[Literal[PRIVACY_ATTACKS]], Field(min_length=1)] = [  # type: ignore[valid-type]
        "inversion",
        "membership",
    ]
    clients: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] | None = None
    rounds: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [1]
    images: Annotated[int, Field(ge=1, le=256)] | None = None
    inversion: InversionConfig = InversionConfig()
    membership: MembershipConfig = MembershipConfig()

    def applicable(self) -> set[str]:
        fields = {"attacks"}
        if "inversion" in self.attacks:
            fields |= {"clients", "rounds", "images", "inversion"}
        if "membership" in self.attacks:
            fields.add("membership")
        return fields

    @model_validator(mode="after")
    def _unique(self) -> PrivacyAttacksConfig:
        self.check_applicable(f"evaluation.privacy_attacks.attacks {self.attacks}")
        for name in ("attacks", "clients", "rounds"):
            values = getattr(self, name) or []
            if len(set(values)) != len(values):
                raise field_error(name, f"lists a value twice: {values}")
        return self

    def recorded_clients(self) -> list[int]:
        """The partitions whose updates a plain round records."""
        return [0] if self.clients is None else list(self.clients)

    def images_for(self, num_examples: int) -> int:
        """Inputs to reconstruct from an update of ``num_examples`` examples."""
        return self.images if self.images is not None else max(1, min(num_examples, 32))

    def records_updates(self) -> bool:
        """Whether the server must record updates (an inversion is asked for)."""
        return "inversion" in self.attacks

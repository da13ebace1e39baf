"""The base of every scenario section and the error that points at a sub-field.

Every section is one pydantic model; unknown keys are refused at every level. A validator
that wants its error to name a sub-field (``sizes``, ``privacy.dp.side``) raises
:func:`field_error`; :mod:`fedrobust.scenario` turns it into a
:class:`~fedrobust.errors.FedrobustError` whose ``where`` is the full dotted path.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class FieldError(ValueError):
    """Raised inside validators to point at a sub-field by its dotted name.

    Parameters
    ----------
    field : str
        Dotted name relative to the model whose validator raises it.
    what : str
        What is wrong with it.
    """

    def __init__(self, field: str, what: str) -> None:
        super().__init__(what)
        self.field = field
        self.what = what


def field_error(field: str, what: str) -> FieldError:
    """The error a validator raises to blame ``field`` (dotted, relative) with ``what``."""
    return FieldError(field, what)


class Section(BaseModel):
    """Base of every scenario section: strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    def applicable(self) -> set[str]:
        """Fields that mean something for this section's choice (kind, name, ...)."""
        return set(type(self).model_fields)

    def check_applicable(self, choice: str) -> None:
        """Refuse a field the user set that does not apply to ``choice``."""
        for name in sorted(self.model_fields_set - self.applicable()):
            raise field_error(name, f"does not apply to {choice}")

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Dumps leave out fields that do not apply, so a resolved scenario validates again.
        keep = self.applicable()
        return {k: v for k, v in handler(self).items() if k in keep}


def check_registered(value: str, kind: str, known: list[str]) -> str:
    """Return ``value`` if it is one of the registry's ``known`` names, else refuse it.

    Parameters
    ----------
    value : str
        The name the scenario gives.
    kind : str
        What the registry holds, for the message ("model", "loss").
    known : list[str]
        The registered names.

    Raises
    ------
    ValueError
        ``unknown <kind> '<value>'; known: ...``, blamed on the validated field.
    """
    if value not in known:
        raise ValueError(f"unknown {kind} '{value}'; known: {', '.join(known)}")
    return value

"""The generated scenario reference covers every field of every section, with words."""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated

from pydantic import BaseModel

from fedrobust.config.base import Section
from fedrobust.config.reference import (
    NO_DESCRIPTION,
    missing_descriptions,
    parameter_descriptions,
    scenario_reference_markdown,
)
from fedrobust.scenario import Scenario


def _models(annotation) -> list[type[BaseModel]]:
    """Models a field admits, found without the module under test."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _models(args[0])
    if origin in (typing.Union, types.UnionType, list):
        return [m for a in args for m in _models(a)]
    return []


def _walk(model: type[BaseModel], path: str, out: list[tuple[str, type[BaseModel]]]) -> None:
    out.append((path, model))
    for name, info in model.model_fields.items():
        key = info.alias or name
        for sub in _models(info.annotation):
            _walk(sub, f"{path}.{key}" if path else key, out)


def _reachable() -> list[tuple[str, type[BaseModel]]]:
    out: list[tuple[str, type[BaseModel]]] = []
    _walk(Scenario, "", out)
    return out


def _rendered_sections(text: str) -> list[tuple[str, set[str]]]:
    """(heading, field keys of its table) for every section of the Markdown."""
    out = []
    for block in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        keys = set(re.findall(r"^\| `([^`]+)` \|", body, flags=re.MULTILINE))
        out.append((heading, keys))
    return out


def test_every_field_of_every_reachable_section_is_in_the_reference():
    text = scenario_reference_markdown()
    rendered = _rendered_sections(text)
    reachable = _reachable()
    assert len(reachable) > 40  # the walk really descends
    for path, model in reachable:
        keys = {info.alias or name for name, info in model.model_fields.items()}
        heading = f"`{path}" if path else "Top level"
        matches = [fields for head, fields in rendered if head.startswith(heading)]
        assert any(keys <= fields for fields in matches), (
            f"{path or 'the top level'} ({model.__name__}): fields "
            f"{sorted(keys - set().union(*matches)) if matches else sorted(keys)} "
            "missing from the reference"
        )


def test_every_section_is_a_section_and_every_field_has_a_description():
    for path, model in _reachable():
        assert issubclass(model, Section), f"{path}: {model.__name__} is not a Section"
    missing = missing_descriptions()
    assert missing == [], (
        "fields without a description in their section's numpy docstring "
        f"(add them under Parameters): {missing}"
    )
    assert NO_DESCRIPTION not in scenario_reference_markdown()


def test_a_field_added_without_a_description_is_reported_and_rendered():
    class Extra(Section):
        """A test section.

        Parameters
        ----------
        described : int
            Has words.
        """

        described: int = 1
        bare: str = "x"

    class Root(Section):
        """Root.

        Parameters
        ----------
        extra : Extra
            The section above.
        """

        extra: Extra = Extra()

    assert missing_descriptions(Root) == ["extra.bare"]
    text = scenario_reference_markdown(Root)
    assert "| `bare` | string | `x` | (no description) |" in text
    assert "| `described` | integer | `1` | Has words. |" in text
    assert "{#extra}" in text and "[Extra](#extra)" in text


def test_docstring_parser_reads_numpy_parameters():
    class Doc:
        """Summary.

        Parameters
        ----------
        a, b : int
            Both of them,
            on two lines.
        c
            Untyped.

        Returns
        -------
        int
            Not a parameter.
        """

    assert parameter_descriptions(Doc) == {
        "a": "Both of them, on two lines.",
        "b": "Both of them, on two lines.",
        "c": "Untyped.",
    }


def test_types_defaults_and_allowed_values_come_from_the_models():
    text = scenario_reference_markdown()
    assert "| `kind` | `iid` \\| `dirichlet`" in text  # data.partition.kind's Literal
    assert "| `num_clients` | integer (≥ 1, ≤ 10,000) | `10` |" in text
    assert "| `lambda` |" in text  # the YAML key, not the Python name lambda_
    assert "| `name` | string (length ≥ 1, matching" in text

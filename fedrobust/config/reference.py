"""The scenario reference, generated from the config models (never copied by hand).

:func:`scenario_reference_markdown` walks :class:`~fedrobust.scenario.Scenario` and every
section reachable from it (through ``Optional``, unions, discriminated lists) and renders
one table per section: field | type or allowed values | default | description. The
descriptions come from each section class's numpy docstring (``Parameters``), so a field
added in code appears in the docs with the words its author wrote beside it;
:func:`missing_descriptions` lists the fields whose docstring says nothing (the tests keep
it empty). The documentation site calls it from its build hook
(``docs/hooks/reference.py``).
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

#: What a field without a docstring description shows in the table.
NO_DESCRIPTION = "(no description)"


@dataclass(frozen=True)
class SectionDoc:
    """One section of the scenario as the reference shows it.

    Parameters
    ----------
    path : str
        Its dotted place in a scenario (``data.partition``; ``""`` for the top level).
    model : type[BaseModel]
        The config model that validates it.
    variant : str
        For a member of a discriminated union (``data.augment``): its tag
        (``name: shift``); empty otherwise.
    repeated : bool
        Whether the section is a list item (each entry of ``data.augment``).
    """

    path: str
    model: type[BaseModel]
    variant: str = ""
    repeated: bool = False

    @property
    def anchor(self) -> str:
        """The HTML id of its heading (``data-partition``, ``data-augment-shift``)."""
        base = self.path.replace(".", "-").replace("_", "-") or "scenario"
        if self.variant:
            base += "-" + re.sub(r"[^a-z0-9]+", "-", self.variant.split(":")[-1].lower()).strip("-")
        return base


def field_key(name: str, info: FieldInfo) -> str:
    """The key a scenario file writes for a field (its alias: ``lambda`` for ``lambda_``)."""
    return info.alias or name


def sections(root: type[BaseModel] | None = None) -> list[SectionDoc]:
    """Every section reachable from ``root`` (default: the Scenario), depth first, in the
    order the fields are declared; a model reached twice on different paths appears
    under each path."""
    if root is None:
        from fedrobust.scenario import Scenario

        root = Scenario
    out: list[SectionDoc] = []
    _walk(SectionDoc("", root), out, seen=())
    return out


def _walk(doc: SectionDoc, out: list[SectionDoc], seen: tuple[type, ...]) -> None:
    out.append(doc)
    for name, info in doc.model.model_fields.items():
        key = field_key(name, info)
        path = f"{doc.path}.{key}" if doc.path else key
        models, repeated = _models_in(info.annotation)
        tagged = len(models) > 1
        for model in models:
            if model in seen or model is doc.model:
                continue  # no section contains itself; guards against a cycle
            variant = _variant(model) if tagged else ""
            _walk(SectionDoc(path, model, variant, repeated), out, (*seen, doc.model))


def _models_in(annotation: Any) -> tuple[list[type[BaseModel]], bool]:
    """The pydantic models a field admits (through Optional, unions, Annotated and list
    items), and whether they are list items; a mapping's values are not sections."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _models_in(args[0])
    if origin in (typing.Union, types.UnionType):
        found: list[type[BaseModel]] = []
        repeated = False
        for arg in args:
            models, rep = _models_in(arg)
            found += [m for m in models if m not in found]
            repeated = repeated or rep
        return found, repeated
    if origin is list and args:
        models, _ = _models_in(args[0])
        return models, bool(models)
    return [], False


def _variant(model: type[BaseModel]) -> str:
    """The tag of a discriminated-union member: its one ``Literal`` field with a single
    value and no default (``name: shift``); else the class name."""
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is Literal and info.is_required():
            values = typing.get_args(info.annotation)
            if len(values) == 1:
                return f"{field_key(name, info)}: {values[0]}"
    return model.__name__


# ---------------------------------------------------------------- docstrings


_HEADER = re.compile(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", re.MULTILINE)


def parameter_descriptions(model: type) -> dict[str, str]:
    """``{name: description}`` from the ``Parameters`` section of ``model``'s numpy
    docstring. An entry ``a, b : type`` describes both names; a description is its
    indented lines joined into one paragraph (empty when the entry has none)."""
    doc = inspect.getdoc(model) or ""
    lines = doc.splitlines()
    start = None
    for i in range(len(lines) - 1):
        if lines[i].strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            start = i + 2
            break
    if start is None:
        return {}
    out: dict[str, str] = {}
    current: list[str] = []
    body: list[str] = []

    def flush() -> None:
        text = " ".join(part.strip() for part in body).strip()
        for name in current:
            out[name] = text

    i = start
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and set(nxt.strip()) == {"-"} and not line.startswith(" "):
            break  # the next section (Returns, Notes, ...)
        if line and not line.startswith(" "):
            flush()
            names = line.split(" : ")[0]
            current = [n.strip().strip("*") for n in names.split(",") if n.strip()]
            body = []
        elif line.strip():
            body.append(line)
        i += 1
    flush()
    return out


def summary(model: type) -> str:
    """The docstring's text before its first section header, as one paragraph per
    blank-line-separated block."""
    doc = inspect.getdoc(model) or ""
    match = _HEADER.search(doc)
    head = doc[: match.start()] if match else doc
    blocks = [" ".join(b.split()) for b in head.strip().split("\n\n")]
    return "\n\n".join(b for b in blocks if b)


def _own_description(model: type[BaseModel], name: str, key: str) -> str:
    text = parameter_descriptions(model)
    return text.get(key) or text.get(name) or ""


def missing_descriptions(root: type[BaseModel] | None = None) -> list[str]:
    """Dotted fields (``data.partition.alpha``) whose section's docstring has no
    description for them; a variant's fields carry its tag (``data.augment[shift].p``)."""
    missing = []
    for doc in sections(root):
        for name, info in doc.model.model_fields.items():
            key = field_key(name, info)
            if not _own_description(doc.model, name, key):
                missing.append(_dotted(doc, key))
    return missing


def _dotted(doc: SectionDoc, key: str) -> str:
    tag = f"[{doc.variant.split(': ')[-1]}]" if doc.variant else ""
    return f"{doc.path}{tag}.{key}" if doc.path else key


# ---------------------------------------------------------------- rendering


def _code(text: str) -> str:
    return f"`{text}`"


def _bound_text(meta: Any) -> str | None:
    for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        value = getattr(meta, attr, None)
        if value is not None and isinstance(meta, annotated_types.BaseMetadata):
            return f"{sign} {_number(value)}"
    for attr, sign in (("min_length", "≥"), ("max_length", "≤")):
        value = getattr(meta, attr, None)
        if value is not None:
            return f"length {sign} {value}"
    if getattr(meta, "pattern", None):
        return f"matching `{meta.pattern}`"
    return None


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1000:
        power = value.bit_length() - 1
        if value == 2**power and power >= 16:
            return f"2^{power}"
        return f"{value:,}"
    return repr(value) if isinstance(value, float) else str(value)


def _constraints(metadata: list[Any]) -> list[str]:
    out: list[str] = []
    for meta in metadata:
        if isinstance(meta, FieldInfo):  # Field(...) inside Annotated
            out += _constraints(meta.metadata)
        elif (text := _bound_text(meta)) is not None:
            out.append(text)
    return out


def type_text(annotation: Any, metadata: list[Any] | None = None, link: Any = None) -> str:
    """A field's type for a reader: allowed values of a ``Literal``, bounds of a number,
    ``list of ...``, ``or null``; a section as a link (``link(model) -> str``)."""
    bounds = _constraints(metadata or [])
    text = _type(annotation, link)
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _type(annotation: Any, link: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Annotated:
        inner = _type(args[0], link)
        bounds = _constraints(list(args[1:]))
        return f"{inner} ({', '.join(bounds)})" if bounds else inner
    if origin is Literal:
        return " | ".join(_code(_literal(v)) for v in args)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        text = " or ".join(_type(a, link) for a in parts)
        return f"{text} or null" if len(parts) < len(args) else text
    if origin is list:
        return f"list of {_type(args[0], link)}" if args else "list"
    if origin is dict:
        return f"mapping {_type(args[0], link)} → {_type(args[1], link)}" if args else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return link(annotation) if link else annotation.__name__
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(_code(str(m.value)) for m in annotation)
    if isinstance(annotation, type):
        return {"str": "string", "bool": "boolean", "int": "integer", "float": "number"}.get(
            annotation.__name__, annotation.__name__
        )
    if annotation is Any:
        return "any"
    return str(annotation).replace("typing.", "")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def default_text(info: FieldInfo) -> str:
    """A field's default as a scenario file writes it; ``required`` when it has none."""
    if info.is_required():
        return "required"
    value = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "(section)"
    return _code(_yaml_value(value))


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, int):
        return _number(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def markdown_text(text: str) -> str:
    """Docstring reST made Markdown: ````code```` and ``:mod:`x```-style roles become code
    spans."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return text.replace("``", "`")


def markdown_cell(text: str) -> str:
    """``text`` as one table cell: on one line, ``|`` escaped, and ``<`` / ``>`` outside
    code spans written as entities (``runs/<name>`` is not an HTML tag)."""
    pieces = " ".join(text.split()).split("`")
    for i in range(0, len(pieces), 2):  # even pieces lie outside code spans
        pieces[i] = pieces[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(pieces).replace("|", "\\|")


def _title(doc: SectionDoc) -> str:
    if not doc.path:
        return "Top level"
    title = _code(doc.path + ("[]" if doc.repeated else ""))
    return f"{title} with {_code(doc.variant)}" if doc.variant else title


def scenario_reference_markdown(root: type[BaseModel] | None = None, level: int = 2) -> str:
    """The scenario reference as Markdown: for every section reachable from ``root``
    (default: the Scenario) a heading with its dotted path, its docstring's summary and a
    table field | type / allowed values | default | description.

    Parameters
    ----------
    root : type[BaseModel], optional
        The model to document (default :class:`~fedrobust.scenario.Scenario`).
    level : int
        Heading level of each section (2: ``##``).
    """
    docs = sections(root)
    anchors = {}
    for doc in docs:
        anchors.setdefault(doc.model, doc.anchor)

    def link(model: type[BaseModel]) -> str:
        anchor = anchors.get(model)
        return f"[{model.__name__}](#{anchor})" if anchor else model.__name__

    hashes = "#" * level
    parts: list[str] = []
    for doc in docs:
        parts.append(f"{hashes} {_title(doc)} {{#{doc.anchor}}}\n")
        text = markdown_text(summary(doc.model))
        if text:
            parts.append(text + "\n")
        if doc.repeated:
            parts.append("Each entry of the list is one such mapping.\n")
        fields = doc.model.model_fields
        if not fields:
            continue
        parts.append("| field | type / allowed values | default | description |")
        parts.append("| --- | --- | --- | --- |")
        for name, info in fields.items():
            key = field_key(name, info)
            description = _own_description(doc.model, name, key) or NO_DESCRIPTION
            parts.append(
                "| "
                + " | ".join(
                    [
                        _code(key),
                        markdown_cell(type_text(info.annotation, info.metadata, link)),
                        markdown_cell(default_text(info)),
                        markdown_cell(markdown_text(description)),
                    ]
                )
                + " |"
            )
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"

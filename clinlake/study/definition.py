"""Study definition: the YAML a network study sends to every site, validated into a typed model.

Every mistake is reported with its field path and what is wrong (``outputs[1].top_n: ...``), all at once,
as one UserError. The canonical hash (``study_sha256``) is taken over the validated, normalised model, so
two sites running the same definition agree on it even when the file's comments or layout differ.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clinlake.errors import UserError

Dimension = Literal["age_band", "sex", "year", "note_type"]
Granularity = Literal["year", "month"]
_PERIOD = {"year": re.compile(r"^\d{4}$"), "month": re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")}
_NAME = r"^[a-z][a-z0-9_]{0,47}$"  # output names become file names


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently change what a study means."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConceptRef(_Strict):
    """One cohort code in any loaded vocabulary, optionally with all its descendants."""

    vocabulary_id: str = Field(min_length=1)
    concept_code: str = Field(min_length=1)
    include_descendants: bool = True


class Cohort(_Strict):
    """Persons with at least one qualifying mention of any of these concepts."""

    concepts: list[ConceptRef] = Field(min_length=1)
    # source = note_nlp_source_concept_id (the vocabulary the recogniser coded to); standard = note_nlp_concept_id
    match_on: list[Literal["source", "standard"]] = Field(default=["source", "standard"], min_length=1)


class Assertion(_Strict):
    """Filters on note_nlp assertion columns; null switches a filter off."""

    term_exists: Literal["Y", "N"] | None = "Y"
    negated: bool | None = False
    experiencer: list[str] | None = Field(default=["patient"], min_length=1)
    certainty: list[str] | None = Field(default=None, min_length=1)
    exclude_temporality: list[str] = ["historical"]


class TimeWindow(_Strict):
    """Inclusive window on note_date, written no finer than the study's date_granularity (2015 or 2015-06)."""

    start: str | None = None
    end: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """YAML reads 2015 as an int and 2015-06-01 as a date: keep the text so granularity can be checked."""
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return str(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    @field_validator("start", "end")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        """A year (YYYY) or a month (YYYY-MM); days are finer than any study may publish."""
        if value is not None and not any(p.match(value) for p in _PERIOD.values()):
            raise ValueError(f"'{value}' is not a year (YYYY) or a month (YYYY-MM)")
        return value


class Strata(_Strict):
    """How the strata are cut."""

    age_bands: list[int] = Field(default=[0, 18, 45, 65], min_length=1)
    note_type: Literal["note_title", "note_type_concept_id"] = "note_type_concept_id"

    @field_validator("age_bands")
    @classmethod
    def _bands(cls, value: list[int]) -> list[int]:
        """Band lower bounds: start at 0, strictly increasing, below 130."""
        if value[0] != 0:
            raise ValueError("must start at 0 so every age falls in a band")
        if any(b >= a for a, b in zip(value[1:], value)):
            raise ValueError("must be strictly increasing")
        if value[-1] >= 130:
            raise ValueError("bounds must be below 130")
        return value


class CohortCounts(_Strict):
    """Persons per stratum (cross table of `strata`, its one-way margins and the total)."""

    type: Literal["cohort_counts"]
    name: str = Field(pattern=_NAME)
    strata: list[Dimension] = []

    @field_validator("strata")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        """Each dimension once."""
        if len(set(value)) != len(value):
            raise ValueError("a dimension is listed twice")
        return value


class TopConcepts(_Strict):
    """Most frequent other concepts mentioned in the cohort's qualifying notes (persons per concept)."""

    type: Literal["top_concepts"]
    name: str = Field(pattern=_NAME)
    top_n: int = Field(default=20, ge=1, le=200)
    vocabularies: list[str] | None = Field(default=None, min_length=1)


class CountsOverTime(_Strict):
    """Persons entering the cohort (first qualifying note) per period."""

    type: Literal["counts_over_time"]
    name: str = Field(pattern=_NAME)
    granularity: Granularity | None = None  # default: the study's date_granularity


Output = Annotated[Union[CohortCounts, TopConcepts, CountsOverTime], Field(discriminator="type")]


class Study(_Strict):
    """A whole study definition."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    title: str = ""
    description: str = ""
    cohort: Cohort
    assertion: Assertion = Assertion()
    time_window: TimeWindow = TimeWindow()
    strata: Strata = Strata()
    outputs: list[Output] = Field(min_length=1)
    date_granularity: Granularity = "year"
    min_cell_count: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> "Study":
        """Cross-field rules: unique output names, nothing finer than date_granularity, an ordered window."""
        problems = []
        seen: set[str] = set()
        for i, out in enumerate(self.outputs):
            if out.name in seen:
                problems.append(f"outputs[{i}].name: '{out.name}' is used by an earlier output")
            seen.add(out.name)
            if isinstance(out, CountsOverTime) and out.granularity == "month" and self.date_granularity == "year":
                problems.append(f"outputs[{i}].granularity: 'month' is finer than date_granularity 'year'")
        for field in ("start", "end"):
            value = getattr(self.time_window, field)
            if value and self.date_granularity == "year" and not _PERIOD["year"].match(value):
                problems.append(f"time_window.{field}: '{value}' is finer than date_granularity 'year' (write YYYY)")
        start, end = self.time_window.start, self.time_window.end
        if start and end and period_bounds(start)[0] > period_bounds(end)[1]:
            problems.append(f"time_window: start {start} is after end {end}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def granularity_of(self, out: CountsOverTime) -> str:
        """Effective period of a counts_over_time output."""
        return out.granularity or self.date_granularity

    def canonical(self) -> dict[str, Any]:
        """Normalised plain-data form (defaults filled), the thing that is hashed."""
        return self.model_dump(mode="json")

    def sha256(self) -> str:
        """Hash of the canonical form: equal for equal meaning, whatever the file's layout."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a YYYY or YYYY-MM period."""
    if len(period) == 4:
        return dt.date(int(period), 1, 1), dt.date(int(period), 12, 31)
    year, month = int(period[:4]), int(period[5:7])
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return dt.date(year, month, 1), nxt - dt.timedelta(days=1)


def _where(loc: tuple[Any, ...], data: Any) -> str:
    """`outputs[1].top_n` from a pydantic location, dropping the union tag pydantic inserts."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        if isinstance(node, dict) and item not in node and item in ("cohort_counts", "top_concepts", "counts_over_time"):
            continue  # discriminated-union branch name, not a key the user wrote
        parts.append(("." if parts else "") + str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(study)"


def format_errors(exc: ValidationError, data: Any) -> list[str]:
    """One 'path: problem' line per mistake."""
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "union_tag_invalid":
            msg = "type must be one of cohort_counts, top_concepts, counts_over_time"
        elif err["type"] == "union_tag_not_found":
            msg = "output needs a type: cohort_counts, top_concepts or counts_over_time"
        if not err["loc"]:  # model-level rules already name their fields
            lines.extend(msg.split("; "))
            continue
        lines.append(f"{_where(tuple(err['loc']), data)}: {msg}")
    return lines


def parse_study(data: Any, source: str = "study") -> Study:
    """Validate plain data (as read from YAML) into a Study, or UserError listing every mistake."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a study must be a mapping of fields, got {type(data).__name__}")
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, data)
        raise UserError(f"{source} is invalid ({len(lines)} problem{'s' * (len(lines) > 1)}): " + "; ".join(lines)) from None


def load_study(path: str | Path) -> tuple[Study, str]:
    """Read and validate a study YAML; returns the model and the sha256 of the file's bytes."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"study file not found: {p}")
    raw = p.read_bytes()
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_study(data, str(p)), hashlib.sha256(raw).hexdigest()

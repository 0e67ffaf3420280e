"""Replace PHI spans in a note by type masks or consistent surrogates, returning the offset mapping.

Offsets: every returned ``Replacement`` gives the span in the original text (start, end) and in the de-identified
text (new_start, new_end). Anything computed downstream on ``note_deid`` (NER, note_nlp offsets) refers to the
de-identified text; map back through these rows only inside the restricted audit table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from clinlake.deid.dates import shift_date_text
from clinlake.deid.merge import DEFAULT_JOIN_LABELS, DEFAULT_PRIORITY, has_overlaps, merge_spans
from clinlake.deid.rules import spanish_number
from clinlake.deid.surrogates import DeidSecret, as_secret, offset_days, surrogate
from clinlake.deid.types import Span

ACTIONS = ("mask", "surrogate", "keep")

# short mask tags, "[NOMBRE]"-style; any label not here is masked as "[<LABEL>]"
DEFAULT_MASK_TAGS: dict[str, str] = {
    "NOMBRE_SUJETO_ASISTENCIA": "NOMBRE",
    "NOMBRE_PERSONAL_SANITARIO": "NOMBRE_SANITARIO",
    "FAMILIARES_SUJETO_ASISTENCIA": "FAMILIAR",
    "EDAD_SUJETO_ASISTENCIA": "EDAD",
    "SEXO_SUJETO_ASISTENCIA": "SEXO",
    "FECHAS": "FECHA",
    "CALLE": "CALLE",
    "TERRITORIO": "TERRITORIO",
    "PAIS": "PAIS",
    "HOSPITAL": "HOSPITAL",
    "CENTRO_SALUD": "CENTRO_SALUD",
    "INSTITUCION": "INSTITUCION",
    "PROFESION": "PROFESION",
    "CORREO_ELECTRONICO": "EMAIL",
    "NUMERO_TELEFONO": "TELEFONO",
    "NUMERO_FAX": "FAX",
    "ID_SUJETO_ASISTENCIA": "ID_PACIENTE",
    "ID_CONTACTO_ASISTENCIAL": "ID_EPISODIO",
    "ID_ASEGURAMIENTO": "ID_ASEGURAMIENTO",
    "ID_TITULACION_PERSONAL_SANITARIO": "ID_COLEGIADO",
    "ID_EMPLEO_PERSONAL_SANITARIO": "ID_EMPLEO",
    "OTROS_SUJETO_ASISTENCIA": "OTROS",
    "URL_WEB": "URL",
    "DIRECCION_IP": "IP",
    "OTRO_NUMERO_IDENTIF": "ID",
}

# surrogates where a realistic value helps readers and cannot be mistaken for a real identifier; identifiers,
# phones and free-form types stay masked (a realistic DNI/NSS/phone surrogate would trip the residual suite)
DEFAULT_ACTIONS: dict[str, str] = {
    "NOMBRE_SUJETO_ASISTENCIA": "surrogate",
    "NOMBRE_PERSONAL_SANITARIO": "surrogate",
    "CALLE": "surrogate",
    "TERRITORIO": "surrogate",
    "PAIS": "surrogate",
    "HOSPITAL": "surrogate",
    "CENTRO_SALUD": "surrogate",
    "INSTITUCION": "surrogate",
    "PROFESION": "surrogate",
    "CORREO_ELECTRONICO": "surrogate",
    "URL_WEB": "surrogate",
    "FECHAS": "surrogate",
    "EDAD_SUJETO_ASISTENCIA": "surrogate",
    "SEXO_SUJETO_ASISTENCIA": "keep",
}


@dataclass(frozen=True)
class DeidPolicy:
    """Per-type action (mask | surrogate | keep) and the parameters of masks, date shifts and age capping.

    ``surrogate`` means: a Faker value for names/places/institutions, a shifted date for FECHAS, and for ages the
    original text unless the age exceeds ``age_threshold`` years, when it becomes ``age_generalised``.
    """

    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    default_action: str = "mask"
    mask_tags: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MASK_TAGS))
    mask_format: str = "[{tag}]"
    date_shift_range: tuple[int, int] = (-365, -30)
    age_threshold: int = 89
    age_generalised: str = "90 o más años"
    detector_priority: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PRIORITY))
    join_labels: frozenset[str] = DEFAULT_JOIN_LABELS  # model pieces of these labels joined across spaces
    max_chars: int = 5_000_000
    phrases: tuple[tuple[str, str], ...] = ()  # (phrase, label) PHI list matched as whole words (deid.phrases)
    propagate_min_chars: int = 4  # other occurrences of a detected text this long are PHI too; 0 = off

    def __post_init__(self) -> None:
        bad = {a for a in list(self.actions.values()) + [self.default_action] if a not in ACTIONS}
        if bad:
            raise ValueError(f"unknown de-identification action(s) {sorted(bad)}; use one of {ACTIONS}")
        lo, hi = self.date_shift_range
        if lo > hi:
            raise ValueError("date_shift_range must be (low, high) with low <= high")

    def action(self, label: str) -> str:
        """The action for a label."""
        return self.actions.get(label, self.default_action)

    def mask(self, label: str) -> str:
        """The mask text for a label."""
        return self.mask_format.format(tag=self.mask_tags.get(label, label), label=label)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, object] | None) -> DeidPolicy:
        """Build from a config mapping (e.g. the ``deid`` section of conf/*.yaml); unknown keys raise."""
        cfg = dict(cfg or {})
        kw: dict[str, object] = {}
        if "actions" in cfg:
            kw["actions"] = {**DEFAULT_ACTIONS, **dict(cfg.pop("actions"))}  # type: ignore[arg-type]
        if "mask_tags" in cfg:
            kw["mask_tags"] = {**DEFAULT_MASK_TAGS, **dict(cfg.pop("mask_tags"))}  # type: ignore[arg-type]
        if "date_shift_range" in cfg:
            lo, hi = cfg.pop("date_shift_range")  # type: ignore[misc]
            kw["date_shift_range"] = (int(lo), int(hi))
        if "join_labels" in cfg:
            kw["join_labels"] = frozenset(str(x) for x in cfg.pop("join_labels"))  # type: ignore[union-attr]
        if "phrases" in cfg:
            kw["phrases"] = tuple((str(p), str(lab)) for p, lab in cfg.pop("phrases"))  # type: ignore[union-attr]
        kw.update(cfg)
        return cls(**kw)  # type: ignore[arg-type]


class Replacement(NamedTuple):
    """One replaced span: original offsets, offsets in the de-identified text, label, new text, detector."""

    start: int
    end: int
    new_start: int
    new_end: int
    label: str
    replacement: str
    detector: str


_AGE_NUM_RE = re.compile(r"^\s*(?P<n>\d{1,3}|[a-záéíóúñ]+(?:\s+y\s+[a-záéíóúñ]+)?)\s*(?P<unit>[a-zA-Záéíóúñ.]*)", re.I)


def _age_years(text: str) -> int | None:
    """Age in whole years when the expression is in years ('95 años', 'noventa y dos años', 'Edad: 91'), else None."""
    m = _AGE_NUM_RE.match(text)
    if m is None:
        return None
    unit = m.group("unit").lower()
    if unit and not unit.startswith(("año", "a")):
        return None  # months, weeks, days: always under the threshold that matters here
    return spanish_number(m.group("n"))


def replacement_text(
    text: str, label: str, person_id: str, policy: DeidPolicy, secret: DeidSecret, shift: int
) -> str:
    """What replaces one span's text under the policy."""
    action = policy.action(label)
    if action == "keep":
        return text
    if action == "mask":
        return policy.mask(label)
    if label == "FECHAS":
        shifted = shift_date_text(text, shift)
        return shifted if shifted is not None else policy.mask(label)  # unparseable dates are masked, not kept
    if label == "EDAD_SUJETO_ASISTENCIA":
        years = _age_years(text)
        return policy.age_generalised if years is not None and years > policy.age_threshold else text
    return surrogate(secret, person_id, label, text)


def replace_spans(
    text: str,
    spans: Iterable[Span],
    person_id: str,
    policy: DeidPolicy,
    secret: DeidSecret | bytes | str,
) -> tuple[str, list[Replacement]]:
    """De-identify text: spans are merged if they overlap, then each is replaced; returns (new_text, mapping)."""
    key = as_secret(secret)
    spans = list(spans)
    if has_overlaps(spans) or any(s.end > len(text) for s in spans):
        spans = merge_spans(spans, policy.detector_priority, text_length=len(text))
    else:
        spans = sorted(s for s in spans if s.start < s.end)
    shift = offset_days(key, str(person_id), *policy.date_shift_range)
    parts: list[str] = []
    mapping: list[Replacement] = []
    pos = 0
    new_len = 0
    for s in spans:
        keep = text[pos : s.start]
        parts.append(keep)
        new_len += len(keep)
        new = replacement_text(text[s.start : s.end], s.label, str(person_id), policy, key, shift)
        parts.append(new)
        mapping.append(Replacement(s.start, s.end, new_len, new_len + len(new), s.label, new, s.detector))
        new_len += len(new)
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts), mapping

"""In-memory gold/prediction structures shared by the readers, the metrics and the evaluation job."""

from __future__ import annotations

from dataclasses import dataclass, field

Fragment = tuple[int, int]


@dataclass(frozen=True)
class Mention:
    """One annotated span of a document: label, [start, end) edges, fragments, covered text and optional code."""

    label: str
    start: int
    end: int
    code: str | None = None
    fragments: tuple[Fragment, ...] = ()
    text: str = ""
    ann_id: str = ""

    @property
    def frags(self) -> tuple[Fragment, ...]:
        """Fragments, defaulting to the single contiguous [start, end)."""
        return self.fragments or ((self.start, self.end),)


@dataclass(frozen=True)
class Mismatch:
    """A gold span whose annotated text differs from the note text at its offsets (reported, never fixed)."""

    doc_id: str
    ann_id: str
    fragments: tuple[Fragment, ...]
    expected: str
    found: str


@dataclass
class Corpus:
    """A split as loaded from disk (gold) or a system's output (predictions); unused parts stay None.

    notes: doc_id -> text. mentions: doc_id -> spans (brat entities, CodiEsp-X rows, CoNLL entities).
    codes_d / codes_p: doc_id -> codes in file order (ranked for predictions). sentences: CoNLL sentences of
    (token, label). deid_texts: doc_id -> de-identified text, replacements: doc_id -> ((orig_start, orig_end),
    new_text) pairs, both filled only by de-identifiers that rewrite text. model_versions: model name ->
    version a predictor used (logged as MLflow params).
    """

    notes: dict[str, str] = field(default_factory=dict)
    mentions: dict[str, list[Mention]] | None = None
    codes_d: dict[str, list[str]] | None = None
    codes_p: dict[str, list[str]] | None = None
    sentences: list[list[tuple[str, str]]] | None = None
    deid_texts: dict[str, str] | None = None
    replacements: dict[str, list[tuple[Fragment, str]]] | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    parse_errors: list[str] = field(default_factory=list)
    model_versions: dict[str, str] = field(default_factory=dict)

    @property
    def documents(self) -> int:
        """Number of documents (CoNLL: sentences)."""
        if self.notes:
            return len(self.notes)
        return len(self.sentences or [])

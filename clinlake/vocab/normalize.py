"""Text normalisation for dictionary matching, as pure Python and as the identical Spark Column expression.

Both versions apply the same steps in the same order, built from the same tables below, so a mention
normalised in a UDF, on the driver or in a Spark plan gets the same key:

1. lower-case;
2. strip diacritics with an explicit table (``ACCENTS``; ñ -> n too, because several sources such as the
   WHO CIE-10 CSV drop it);
3. every run of characters outside ``[a-z0-9]`` becomes one space (punctuation, symbols, other scripts);
4. split on spaces and expand whole-token Spanish clinical abbreviations (``ABBREVIATIONS``, one map
   lookup per token rather than one regex per abbreviation);
5. drop Spanish function words (``STOP_WORDS``; negation words such as "sin"/"no" are kept because
   they change the meaning of a term);
6. join the tokens with one space.

An explicit table rather than ``unicodedata`` NFKD is used so the Spark side (``translate``) can reproduce
it exactly; characters outside the table are treated as punctuation by step 3 on both sides.
"""

from __future__ import annotations

import re

from pyspark.sql import Column
from pyspark.sql import functions as F

# Lower-case accented letters seen in Spanish/Catalan/Portuguese clinical text -> ASCII letter.
ACCENTS: dict[str, str] = {
    **dict.fromkeys("áàäâãå", "a"),
    **dict.fromkeys("éèëê", "e"),
    **dict.fromkeys("íìïî", "i"),
    **dict.fromkeys("óòöôõø", "o"),
    **dict.fromkeys("úùüû", "u"),
    "ñ": "n",
    "ç": "c",
    "ý": "y",
    "ÿ": "y",
}

# Whole-token abbreviations (already normalised: lower-case, no accents) -> expansion (normalised too).
# Only abbreviations that are not also ordinary Spanish words; "se", "cm", "ca", "fa" stay untouched.
ABBREVIATIONS: dict[str, str] = {
    "hta": "hipertension arterial",
    "dm": "diabetes mellitus",
    "dm1": "diabetes mellitus tipo 1",
    "dm2": "diabetes mellitus tipo 2",
    "iam": "infarto agudo miocardio",
    "epoc": "enfermedad pulmonar obstructiva cronica",
    "tac": "tomografia axial computarizada",
    "tc": "tomografia computarizada",
    "rmn": "resonancia magnetica nuclear",
    "rm": "resonancia magnetica",
    "ecg": "electrocardiograma",
    "eeg": "electroencefalograma",
    "rx": "radiografia",
    "acv": "accidente cerebrovascular",
    "avc": "accidente vascular cerebral",
    "ictus": "accidente cerebrovascular",
    "icc": "insuficiencia cardiaca congestiva",
    "irc": "insuficiencia renal cronica",
    "ira": "insuficiencia renal aguda",
    "erc": "enfermedad renal cronica",
    "tep": "tromboembolismo pulmonar",
    "tvp": "trombosis venosa profunda",
    "acxfa": "arritmia completa fibrilacion auricular",
    "vih": "virus inmunodeficiencia humana",
    "itu": "infeccion tracto urinario",
    "hbp": "hiperplasia benigna prostata",
    "lla": "leucemia linfoblastica aguda",
    "lma": "leucemia mieloide aguda",
    "llc": "leucemia linfatica cronica",
    "lmc": "leucemia mieloide cronica",
    "eco": "ecografia",
    # oncology and frequent discharge-report abbreviations (CANTEMIST / CodiEsp), none an ordinary word
    "cdi": "carcinoma ductal infiltrante",
    "cli": "carcinoma lobulillar infiltrante",
    "mts": "metastasis",
    "bx": "biopsia",
    "qt": "quimioterapia",
    "ivu": "infeccion vias urinarias",
    "hda": "hemorragia digestiva alta",
    "hdb": "hemorragia digestiva baja",
    "nac": "neumonia adquirida comunidad",
    "tce": "traumatismo craneoencefalico",
    "tbc": "tuberculosis",
    "dlp": "dislipemia",
    "eii": "enfermedad inflamatoria intestinal",
    "ela": "esclerosis lateral amiotrofica",
    "sahs": "sindrome apnea hipopnea sueno",
}

# Function words that carry no meaning for matching. Negation/absence words are deliberately kept.
STOP_WORDS: frozenset[str] = frozenset(
    "a al de del el la las lo los un una unos unas y e o u en con por para que su sus se the of".split()
)

_NON_ALNUM = r"[^a-z0-9]+"
_SRC = "".join(ACCENTS)
_DST = "".join(ACCENTS.values())
_TRANS = str.maketrans(ACCENTS)


def strip_accents(text: str) -> str:
    """Lower-case text and replace accented letters with their ASCII base (explicit ACCENTS table)."""
    return text.lower().translate(_TRANS)


def normalize(text: str | None) -> str:
    """Normalised matching key for a mention or a synonym (see module docstring); None gives ''."""
    if text is None:
        return ""
    tokens = re.sub(_NON_ALNUM, " ", strip_accents(text)).split()
    expanded = " ".join(ABBREVIATIONS.get(t, t) for t in tokens).split()
    return " ".join(t for t in expanded if t not in STOP_WORDS)


def normalize_col(col: Column | str) -> Column:
    """Spark Column equivalent of normalize(), from built-in functions only (no Python UDF)."""
    c = F.col(col) if isinstance(col, str) else col
    spaced = F.trim(F.regexp_replace(F.translate(F.lower(c), _SRC, _DST), _NON_ALNUM, " "))
    tokens = F.filter(F.split(spaced, " "), lambda t: t != "")
    abbrev = F.create_map(*[F.lit(x) for kv in sorted(ABBREVIATIONS.items()) for x in kv])
    # expansions are multi-word: join and split again so stop-word filtering sees single tokens
    expanded = F.split(F.array_join(F.transform(tokens, lambda t: F.coalesce(F.try_element_at(abbrev, t), t)), " "), " ")
    stop = F.array(*[F.lit(w) for w in sorted(STOP_WORDS)])
    kept = F.filter(expanded, lambda t: (t != "") & ~F.array_contains(stop, t))
    return F.coalesce(F.array_join(kept, " "), F.lit(""))

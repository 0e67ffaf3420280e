"""ICD-O-3 morphology codes composed from their axes: histology/behaviour[grade][/H] ("8140/32", "8000/6").

The ranker picks among codes that annotators or the vocabulary have used. For a mention it has never seen
("adenocarcinoma ductal moderadamente diferenciado"), the winning code is that of the nearest known term
("adenocarcinoma ductal", 8500/3), with that term's behaviour and grade. The mention's own words state those
two axes: "metastásico" is behaviour 6, "in situ" behaviour 2, "moderadamente diferenciado" grade 2. So, for
mentions that are not an indexed term, the cued axes replace the ranked code's; the histology stays the
ranker's. A known mention keeps its code: its annotated code already reflects its words, and some histologies
carry the differentiation themselves ("carcinoma indiferenciado" is 8020/3, with no grade digit).

Cue -> digit tables, measured on the 9,056 CANTEMIST train + dev2 gold mentions (docs/resolution.md): the
metastasis cues ("metast", "M1", "estadio IV", "disemina", "implante", "recidiva", "afectación") mark behaviour 6
in 2,027 of 2,034 mentions, "carcinomatosis" behaviour 9 in 84 of 84, "in situ" without "infiltra"/"invasi"
behaviour 2 in 15 of 15; the grade cues give their digit in 86/109 (1), 104/117 (2), 139/145 (3) and 151/176 (4)
mentions. When two different grades are cued, the grade is left as ranked. Both the Python function and the
Column expression read the same tables; they run on the normalised mention (lower-case, no accents, no function
words), see clinlake.vocab.normalize.

Histology: when the ranked code of an unseen mention is a "not otherwise specified" one (8000 neoplasm, 8001
tumour cells, 8010 carcinoma) and the mention contains a known, more specific term ("metástasis orbitaria por
carcinoma lobulillar" contains "carcinoma lobulillar", 8520/3), that term's histology is the more specific code a
coder would choose (specific_subterms). The longest such term wins, then the most annotated. A resolver version
with an ICD-O-3 classifier (udfs/icdo_classify.py) codes its unseen mentions with that instead, before the cues.
"""

from __future__ import annotations

import re
from typing import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from clinlake.resolver import index as ix

# (regex on the normalised mention, behaviour digit); the first that matches wins.
BEHAVIOUR_CUES: tuple[tuple[str, str], ...] = (
    (r"metast|(\b|[0-9x])m1[abc]?\b|\bestadio iv\b|disemina|implante|recidiva|afectacion", "6"),
    (r"carcinomatosis", "9"),
    (r"\bin situ\b", "2"),
)
# An "in situ" cue does not hold when the mention also says the tumour invades ("con componente in situ").
IN_SITU_VETO = r"infiltra|invasi"
# (regex, grade digit); a mention's grade is set when exactly one digit is cued, else left as ranked. (Removing
# the ranked grade when no cue is present measured +0.001 on dev2 gold spans and -0.001 on dev1: not kept.)
# "grado 2", "G2", "grado histológico 2", "grado nuclear de Fuhrman 2", "Fuhrman 2" (normalised: no "de")
_GRADE = r"\b(grado|g|fuhrman)( histologico| nuclear)?( fuhrman)? ?"
GRADE_CUES: tuple[tuple[str, str], ...] = (
    (r"\bbien diferenciad|\bbajo grado\b|" + _GRADE + r"(1|i)\b", "1"),
    (r"\bmoderadamente diferenciad|\bgrado intermedio\b|" + _GRADE + r"(2|ii)\b", "2"),
    (r"\b(poco|pobremente|mal) diferenciad|" + _GRADE + r"(3|iii)\b", "3"),
    (r"\bindiferenciad|\balto grado\b|" + _GRADE + r"(4|iv)\b", "4"),
)
ICDO_VOCABULARY = "ICDO3"
# "not otherwise specified" histologies: neoplasm, tumour cells, carcinoma
NOS_HISTOLOGIES = ("8000", "8001", "8010")
# histology / behaviour, optional grade, optional CANTEMIST "/H" flag
CODE = r"^(\d{4})/(\d)(\d?)(/H)?$"


def cued_behaviour(mention_norm: str) -> str | None:
    """The behaviour digit the normalised mention states, or None."""
    for rx, digit in BEHAVIOUR_CUES:
        if re.search(rx, mention_norm):
            if digit == "2" and re.search(IN_SITU_VETO, mention_norm):
                return None
            return digit
    return None


def cued_grade(mention_norm: str) -> str | None:
    """The one grade digit the normalised mention states; None when none or two different ones."""
    digits = {d for rx, d in GRADE_CUES if re.search(rx, mention_norm)}
    return digits.pop() if len(digits) == 1 else None


def compose(code: str | None, mention_norm: str) -> str | None:
    """The code with its behaviour and grade replaced by the mention's cues; other codes unchanged."""
    m = re.match(CODE, code or "", re.IGNORECASE)
    if not m:
        return code
    hist, behaviour, grade, flag = m.groups()
    return f"{hist}/{cued_behaviour(mention_norm) or behaviour}{cued_grade(mention_norm) or grade}{flag or ''}"


def cued_behaviour_col(mention_norm: Column) -> Column:
    """Column version of cued_behaviour."""
    out = F.lit(None).cast("string")
    for rx, digit in reversed(BEHAVIOUR_CUES):   # built inside out, so the first cue that matches wins
        value = F.lit(digit)
        if digit == "2":   # a vetoed "in situ" states no behaviour
            value = F.when(~mention_norm.rlike(IN_SITU_VETO), value)
        out = F.when(mention_norm.rlike(rx), value).otherwise(out)
    return out


def cued_grade_col(mention_norm: Column) -> Column:
    """Column version of cued_grade."""
    digits = F.array_compact(F.array(*[F.when(mention_norm.rlike(rx), F.lit(d)) for rx, d in GRADE_CUES]))
    return F.when(F.size(digits) == 1, digits[0])


def compose_col(code: Column, mention_norm: Column) -> Column:
    """Column version of compose."""
    parts = [F.regexp_extract(code, "(?i)" + CODE, i) for i in range(1, 5)]
    hist, behaviour, grade, flag = parts
    composed = F.concat(hist, F.lit("/"), F.coalesce(cued_behaviour_col(mention_norm), behaviour),
                        F.coalesce(cued_grade_col(mention_norm), grade), flag)
    return F.when(code.rlike("(?i)" + CODE), composed).otherwise(code)


def specific_subterms(mentions: DataFrame, terms: DataFrame) -> DataFrame:
    """(label, mention_norm) -> sub_histology: the histology of the longest (then most annotated) known term inside
    the mention whose most annotated ICD-O-3 code is not a NOS histology; mentions without one are absent."""
    toks = "split(mention_norm, ' ')"
    # every contiguous run of 1..n-1 tokens, as (length, text); only mentions of 2+ tokens have one
    runs = mentions.filter(F.expr(f"size({toks}) > 1")).select("label", "mention_norm", F.explode(F.expr(
        f"flatten(transform(sequence(1, size({toks}) - 1), n -> transform(sequence(1, size({toks}) - n + 1), "
        f"i -> named_struct('n', n, 'term_norm', array_join(slice({toks}, i, n), ' ')))))")).alias("r")) \
        .select("label", "mention_norm", "r.n", "r.term_norm")
    gaz = terms.filter((F.col("vocabulary_id") == ICDO_VOCABULARY) & (F.col("gaz_count") > 0))
    top = gaz.withColumn("rk", F.row_number().over(Window.partitionBy("label", "term_norm").orderBy(
        F.desc("gaz_count"), "concept_code"))).filter("rk = 1") \
        .select("label", "term_norm", "gaz_count", F.substring("concept_code", 1, 4).alias("sub_histology")) \
        .filter(~F.col("sub_histology").isin(*NOS_HISTOLOGIES))
    hits = runs.join(top, ["label", "term_norm"])
    return hits.withColumn("rk", F.row_number().over(Window.partitionBy("label", "mention_norm").orderBy(
        F.desc("n"), F.desc("gaz_count"), "term_norm"))).filter("rk = 1") \
        .select("label", "mention_norm", "sub_histology")


def with_composed_codes(best: DataFrame, terms: DataFrame, specific_histology: bool = True,
                        classify: Callable[[Column], Column] | None = None) -> DataFrame:
    """Per (label, mention_norm) best codes: ICD-O-3 codes of mentions that are no indexed term take the code of the
    resolver's classifier when it has one (`classify`, udfs.icdo_classify: a struct of code and calibrated p, which
    becomes the row's score when present), else the histology of a more specific term inside them when theirs is
    NOS; then the mention's cued behaviour and grade (compose_col). Everything else is returned unchanged."""
    keys = ["label", "mention_norm"]
    # only ICD-O-3 rows can change, so only ICD-O-3 terms need looking up (not the ICD-10 synonyms)
    known = ix.indexed_mentions(terms.filter(F.col("vocabulary_id") == ICDO_VOCABULARY)) \
        .withColumn("_known", F.lit(True))
    flagged = best.join(known, keys, "left").withColumn("_unseen", (F.col("vocabulary_id") == ICDO_VOCABULARY)
                                                        & F.col("_known").isNull()
                                                        & F.col("concept_code").rlike("(?i)" + CODE))
    code = F.col("concept_code")
    if classify is not None:
        # predicted for the unseen tumour mentions only (a pandas UDF in a CASE would run on every row)
        unseen = flagged.filter("_unseen").select(*keys).distinct() \
            .withColumn("_classified", classify(F.col("mention_norm")))
        flagged = flagged.join(unseen, keys, "left")
        code = F.coalesce(F.col("_classified.code"), code)
        # The ranker's p was for its own code; the classifier's calibrated p is for the code now given (the cues
        # below then change behaviour or grade, which they state right 79-99 % of the time: docs/resolution.md).
        flagged = flagged.withColumn("score", F.coalesce(F.when(F.col("_classified.code").isNotNull(),
                                                                F.col("_classified.p")), F.col("score")))
    elif specific_histology:
        nos = flagged.filter(F.col("_unseen") & F.substring("concept_code", 1, 4).isin(*NOS_HISTOLOGIES)) \
            .select(*keys)
        flagged = flagged.join(specific_subterms(nos, terms), keys, "left")
        code = F.coalesce(F.when(F.col("sub_histology").isNotNull(),
                                 F.concat("sub_histology", F.substring("concept_code", 5, 100))), code)
    return flagged.withColumn("concept_code", F.when(F.col("_unseen"), compose_col(code, F.col("mention_norm")))
                              .otherwise(F.col("concept_code"))) \
        .drop("_known", "_unseen", "sub_histology", "_classified")

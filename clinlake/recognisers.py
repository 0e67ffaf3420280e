"""Several recognisers served together: load each by registry alias, explode their chunks, merge overlaps.

Overlap policy (documented in docs/ner.md, tested in tests/test_recognisers.py):
1. within one recogniser and one label, a chunk inside a longer one is dropped (longest match wins);
2. across recognisers, a chunk that overlaps (shares at least one character with) a chunk of the SAME label from a
   recogniser earlier in `extract.recognisers` is dropped: the configured order is the priority. Labels listed in
   `extract.keep_overlaps` keep both chunks (an ensemble: each row names its recogniser) and drop only a chunk with
   exactly the same span as an earlier recogniser's;
3. chunks of different labels never suppress each other (a drug inside a procedure is two facts).

Voting (`vote:` on a recogniser entry): several versions of one registered model serve as one recogniser; a chunk is
kept when at least `min_votes` of them give the very same label and span. The recogniser's `nlp_system` names every
member version, `<name>@<v1>+<v2>+<v3>`, so a new version of any member re-runs the recogniser (docs/ner.md).
`crf: <alias>` adds the recogniser's CRF (clinlake.crf.crf_name: `ner-morphology-crf-es`) as one more voter: it tags
the first member's tokens and its chunks count like a version's (`<name>@<v1>+<v2>,<name-crf>@<v>`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from typing import Any

from omegaconf import DictConfig
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from clinlake import recognise, tracking
from clinlake.errors import UserError

CHUNK_KEYS = ["note_id", "label", "offset_start", "offset_end"]


def configured(cfg: DictConfig) -> list[tuple[str, str]]:
    """(registered name, alias) of every recogniser to serve, in priority order."""
    entries = cfg.extract.get("recognisers") or [{"name": cfg.models.recogniser.name,
                                                  "alias": cfg.models.recogniser.alias}]
    out = [(str(e), "champion") if isinstance(e, str) else (str(e["name"]), str(e.get("alias", "champion")))
           for e in entries]
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise UserError(f"extract.recognisers lists a model twice: {names}")
    return out


def majority(n_members: int) -> int:
    """The fewest votes that are more than half of n_members (the default `min_votes`)."""
    return n_members // 2 + 1


def voting(cfg: DictConfig) -> dict[str, tuple[list[str], int, str]]:
    """name -> (the other members' aliases, min_votes, the CRF voter's alias or "") for every configured recogniser
    with a `vote:` entry.

    The NER recognisers vote on spans only: `combine: tokens` is served by deid.vote, so asking for it here is an
    error rather than a span vote the configuration did not ask for.
    """
    out = {}
    for e in cfg.extract.get("recognisers") or []:
        if isinstance(e, str) or not e.get("vote"):
            continue
        where = f"extract.recognisers: {e['name']}'s vote"
        if combine_of(e["vote"], where) != "spans":
            raise UserError(f"{where}: combine: {e['vote'].get('combine')} is served for deid.vote only; "
                            "the recognisers vote on spans")
        out[str(e["name"])] = (*vote_of(e["vote"], where), str(e["vote"].get("crf") or ""))
    return out


def vote_of(vote: Any, where: str) -> tuple[list[str], int]:
    """A `vote:` entry ({members: [aliases], min_votes, crf}) -> (members, min_votes); `where` names it in errors.

    One NerDL version and its CRF (`members: []`, `crf: <alias>`) is a vote of two."""
    members = [str(a) for a in (vote.get("members") or [])]
    voters = len(members) + 1 + bool(vote.get("crf"))    # the served alias votes too, and a CRF
    min_votes = int(vote.get("min_votes", majority(voters)))
    if not (members or vote.get("crf")) or not 1 <= min_votes <= voters:
        raise UserError(f"{where} needs members (other aliases) or a crf, and 1 <= min_votes <= the voters "
                        f"({voters}), got {members} and {min_votes}")
    return members, min_votes


COMBINE = ("spans", "tokens", "spans+tokens")


def combine_of(vote: Any, where: str) -> str:
    """A vote's `combine` ("spans", the default, or "tokens"); anything else is a UserError naming `where`."""
    combine = str(vote.get("combine") or "spans")
    if combine not in COMBINE:
        raise UserError(f"{where}.combine must be one of {', '.join(COMBINE)}, got {combine!r}")
    return combine


@dataclass(frozen=True)
class Ensemble:
    """Versions of one registered recogniser voting on chunks; `ref` names them all: '<name>@<v1>+<v2>+...'."""

    members: tuple[tuple[Any, str], ...]   # (PipelineModel, '<name>@<version>'), the served alias's first
    min_votes: int
    combine: str = "spans"                 # "spans": exact span vote; "tokens": per-token distributions (deid);
    #                                        "spans+tokens": the exact vote, then the token vote where it left nothing
    crf: Any = None                        # a clinlake.crf.CrfMember voting with the NerDL versions

    @property
    def voters(self) -> int:
        """How many taggers vote: the NerDL versions and the CRF when there is one."""
        return len(self.members) + (self.crf is not None)

    @property
    def ref(self) -> str:
        """'ner-morphology-es@1+2+3' ('...@1+2+3#tokens' for the token vote: other spans, so another system); a
        min_votes other than the majority is part of it too ('deid-ner-es@2+1+3+4+5:2#spans+tokens'), so that
        changing it re-runs what the vote produced; a CRF voter follows after a comma (',deid-crf-es@1')."""
        ref = f"{model_name(self.members[0][1])}@" + "+".join(r.rsplit("@", 1)[1] for _, r in self.members)
        if self.combine != "tokens" and self.min_votes != majority(self.voters):  # the token vote has no count
            ref += f":{self.min_votes}"
        ref = ref if self.combine == "spans" else f"{ref}#{self.combine}"
        return ref if self.crf is None else f"{ref},{self.crf.ref}"


def load_ensemble(cfg: DictConfig, name: str, alias: str, members: list[str], min_votes: int,
                  combine: str = "spans", crf_voters: int = 0) -> tuple[Ensemble, str]:
    """`name@alias` and the member aliases, each distinct version loaded once -> (Ensemble, its ref).

    The same version under two aliases votes once: when fewer distinct versions (and `crf_voters`, the CRF the
    caller adds) than `min_votes` remain, no chunk could ever pass, so that is a UserError rather than an empty
    recogniser.
    """
    versions: dict[str, tuple[str, Any]] = {}
    for a in [alias, *members]:
        mv = tracking.resolve_alias(cfg, name, a)
        versions.setdefault(str(mv.version), (a, mv))
    if len(versions) + crf_voters < min_votes:
        raise UserError(f"{name}: the vote of {[alias, *members]} has {len(versions)} distinct versions "
                        f"({', '.join(versions)}), fewer than min_votes={min_votes}")
    # the versions resolved above, not the aliases again: a moving alias cannot change what the ref names
    members = (tracking.load_model_version(name, a, mv) for a, mv in versions.values())
    ens = Ensemble(tuple((tracking.for_serving(m, cfg), ref) for m, ref in members), min_votes, combine)
    return ens, ens.ref


def with_alias(cfg: DictConfig, alias: str | None) -> list[tuple[str, str]]:
    """Configured recognisers, `alias` used by every model that has it (e.g. the one challenger under evaluation).

    Models without that alias keep their configured one, so a challenger is judged inside the pipeline it would
    join; an alias that no configured model has is an error.
    """
    models = configured(cfg)
    if not alias:
        return models
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking.configure(cfg)
    client, out, hit = MlflowClient(), [], False
    for name, own in models:
        try:
            client.get_model_version_by_alias(name, alias)
            out.append((name, alias))
            hit = True
        except MlflowException:
            out.append((name, own))
    if not hit:
        raise UserError(f"alias '{alias}' not found in the registry at {tracking.tracking_uri(cfg)} for any configured "
                        f"recogniser ({', '.join(n for n, _ in models)})")
    return out


def load(cfg: DictConfig, alias: str | None = None) -> list[tuple[PipelineModel | Ensemble, str]]:
    """Every configured recogniser loaded by alias -> [(model, '<name>@<version>')]; any missing one is an error.

    A recogniser with a `vote:` entry loads as an Ensemble of its versions (the served alias, possibly the one under
    evaluation, and the members').
    """
    votes = voting(cfg)
    return [load_vote(cfg, name, a, *votes[name]) if name in votes else tracking.load_spark_model(cfg, name, a)
            for name, a in with_alias(cfg, alias)]


def load_vote(cfg: DictConfig, name: str, alias: str, members: list[str], min_votes: int, crf_alias: str = "",
              combine: str = "spans", crf_model: str | None = None) -> tuple[Ensemble, str]:
    """load_ensemble, and a CRF as one more voter when `crf_alias` is set: `crf_model@crf_alias`, by default the
    recogniser's own CRF (clinlake.crf.crf_name; deid names deid-crf-es)."""
    ens, ref = load_ensemble(cfg, name, alias, members, min_votes, combine, crf_voters=int(bool(crf_alias)))
    if not crf_alias:
        return ens, ref
    from clinlake.crf import crf_name, load_member

    ens = dataclasses.replace(ens, crf=load_member(cfg, crf_model or crf_name(name), crf_alias))
    return ens, ens.ref


def model_name(ref: str) -> str:
    """'ner-drug-es@3' -> 'ner-drug-es'."""
    return ref.rsplit("@", 1)[0]


def recognise_chunks(notes: DataFrame, model: PipelineModel | Ensemble, ref: str, scale: Any = None) -> DataFrame:
    """One recogniser over notes(note_id, note_text, text_sha256) -> chunks with nlp_system = ref (rule 1 applied)."""
    keep = ["note_id", "text_sha256"]
    # bounded pieces (scale.max_chunk_chars), one model pass for all labels, rule 1 inside each piece
    if isinstance(model, Ensemble):
        pieces = recognise.text_pieces(notes, keep, scale)      # cut and sized once for every member
        parts = [recognise.explode_piece_chunks(m.transform(pieces), m, keep).withColumn("member", F.lit(i))
                 for i, (m, _) in enumerate(model.members)]
        if model.crf is not None:
            parts.append(crf_chunks(pieces, model, keep).withColumn("member", F.lit(len(parts))))
        chunks = reduce(DataFrame.unionByName, parts).transform(filter_votes, model.min_votes)
    else:
        chunks = recognise.chunks(model, notes, keep, scale)
    return chunks.withColumn("nlp_system", F.lit(ref)) \
        .withColumn("model_name", F.lit(model_name(ref)))


def crf_chunks(pieces: DataFrame, model: Ensemble, keep: list[str]) -> DataFrame:
    """The vote's CRF voter over text pieces: chunks as explode_piece_chunks gives a member's (whole words, longest)."""
    return recognise.explode_piece_chunks(with_crf_spans(pieces, model), None, keep, spans=F.col(CRF_SPANS))


CRF_SPANS = "__crf"


def with_crf_spans(texts: DataFrame, model: Ensemble) -> DataFrame:
    """texts (note_text) + CRF_SPANS: the vote's CRF chunks, array<struct<label,s,e>> (end exclusive).

    The CRF tags the tokens of the first member's own text stages (its stages up to the Tokenizer, rerun here: a few
    per cent of a NerDL pass), so it votes on the very tokens the versions tag, without running a NerDL model twice.
    """
    from udfs.crf_tag import crf_spans_udf

    first = model.members[0][0]
    cut = next((i for i, s in enumerate(first.stages) if type(s).__name__ == "TokenizerModel"), None)
    if cut is None:
        raise UserError(f"{model.members[0][1]} has no Tokenizer stage for its CRF voter to share")
    tokens = PipelineModel(stages=first.stages[:cut + 1]).transform(texts)
    # non-deterministic: the optimiser must not inline the column into each of its readers (one CRF pass each)
    spans = crf_spans_udf(texts.sparkSession.sparkContext.broadcast(model.crf.model)).asNondeterministic()
    tok = F.col(first.stages[cut].getOutputCol())
    return tokens.withColumn(CRF_SPANS, spans(F.col(recognise.TEXT_COL), tok["begin"],
                                             F.transform(tok["end"], lambda e: e + 1))) \
        .drop(*[c for c in tokens.columns if c not in texts.columns])


def filter_votes(chunks: DataFrame, min_votes: int, mean: Iterable[str] = ()) -> DataFrame:
    """Chunks (with a `member` column) that at least `min_votes` distinct members gave, once each, `member` dropped.

    A chunk is its every other column (the same label and span in the same note) except those in `mean`, which are
    averaged over the members that gave it (a confidence). A NerDL tagger's chunks of one label never overlap each
    other, so with a strict majority of such members two kept chunks cannot overlap.
    """
    mean = list(mean)
    keys = [c for c in chunks.columns if c != "member" and c not in mean]
    return (chunks.groupBy(*keys).agg(F.countDistinct("member").alias("__votes"), *[F.avg(c).alias(c) for c in mean])
            .filter(F.col("__votes") >= min_votes).drop("__votes"))


def filter_overlaps(chunks: DataFrame, priority: list[str], keep_labels: Iterable[str] = ()) -> DataFrame:
    """Rule 2: drop a chunk overlapping a same-label chunk of a recogniser earlier in `priority` (model names).

    For a label in `keep_labels` only a chunk with the very same span as an earlier recogniser's is dropped.
    """
    if len(priority) < 2:
        return chunks
    keep = sorted(set(keep_labels))
    same_span = (F.col("a.offset_start") == F.col("b.offset_start")) & (F.col("a.offset_end") == F.col("b.offset_end"))
    suppressible = (~F.col("a.label").isin(keep) | same_span) if keep else F.lit(True)
    rank = F.create_map(*[x for i, n in enumerate(priority) for x in (F.lit(n), F.lit(i))])
    ranked = chunks.withColumn("__prio", F.coalesce(rank[F.col("model_name")], F.lit(len(priority))))
    keys = ranked.select("note_id", "label", "offset_start", "offset_end", "__prio")
    a, b = keys.alias("a"), keys.alias("b")
    beaten = a.join(
        b,
        (F.col("a.note_id") == F.col("b.note_id")) & (F.col("a.label") == F.col("b.label"))
        & (F.col("b.__prio") < F.col("a.__prio"))
        & (F.col("b.offset_start") < F.col("a.offset_end")) & (F.col("a.offset_start") < F.col("b.offset_end"))
        & suppressible,
        "left_semi",
    ).select("note_id", "label", "offset_start", "offset_end", "__prio")
    return ranked.join(beaten, ["note_id", "label", "offset_start", "offset_end", "__prio"], "left_anti") \
        .drop("__prio")


def recognise_all(notes: DataFrame, recognisers: list[tuple[Any, str]], scale: Any = None,
                  keep_labels: Iterable[str] = ()) -> DataFrame:
    """Every recogniser over the same notes, unioned and merged by the overlap policy (scale: the `scale:` knobs)."""
    parts = [recognise_chunks(notes, model, ref, scale) for model, ref in recognisers]
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.transform(filter_overlaps, [model_name(ref) for _, ref in recognisers], keep_labels)


def keep_overlaps(cfg: DictConfig) -> list[str]:
    """Labels whose overlapping chunks from different recognisers are all kept (`extract.keep_overlaps`)."""
    return list(cfg.extract.get("keep_overlaps") or [])

"""Study definition validation: the example is valid, every mistake names its field, the hash ignores layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from clinlake.errors import UserError
from clinlake.study.definition import load_study, parse_study, period_bounds

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "conf" / "studies" / "example.yaml"


def minimal(**changes):
    """A small valid study as plain data, with top-level fields replaced."""
    data = {"id": "s1", "cohort": {"concepts": [{"vocabulary_id": "ICD10CM", "concept_code": "I10"}]},
            "outputs": [{"type": "cohort_counts", "name": "by_sex", "strata": ["sex"]}]}
    data.update(changes)
    return data


def test_example_study_is_valid():
    study, file_sha = load_study(EXAMPLE)
    assert study.cohort.concepts and len(file_sha) == 64
    assert {o.type for o in study.outputs} == {"cohort_counts", "counts_over_time", "top_concepts"}


def test_defaults_are_the_documented_assertion_filters():
    s = parse_study(minimal())
    assert (s.assertion.term_exists, s.assertion.negated, s.assertion.experiencer) == ("Y", False, ["patient"])
    assert s.assertion.exclude_temporality == ["historical"]
    assert s.min_cell_count is None and s.date_granularity == "year"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"cohort": {"concepts": []}}, "cohort.concepts"),
        ({"cohort": {"concepts": [{"vocabulary_id": "ICD10CM"}]}}, "cohort.concepts[0].concept_code: required field"),
        ({"outputs": [{"type": "cohort_counts", "name": "a", "strata": ["age"]}]}, "outputs[0].strata[0]"),
        ({"outputs": [{"type": "top_concepts", "name": "a", "top_n": 0}]}, "outputs[0].top_n"),
        ({"outputs": [{"type": "histogram", "name": "a"}]}, "outputs[0]: type must be one of"),
        ({"outputs": [{"name": "a"}]}, "outputs[0]: output needs a type"),
        ({"outputs": [{"type": "cohort_counts", "name": "Bad Name"}]}, "outputs[0].name"),
        ({"outputs": [{"type": "cohort_counts", "name": "a"}, {"type": "counts_over_time", "name": "a"}]},
         "outputs[1].name: 'a' is used by an earlier output"),
        ({"outputs": [{"type": "cohort_counts", "name": "a", "strata": ["sex", "sex"]}]}, "listed twice"),
        ({"min_cell_count": 0}, "min_cell_count"),
        ({"colour": "blue"}, "colour: unknown field"),
        ({"time_window": {"start": "2015-06-01"}}, "time_window.start: '2015-06-01' is not a year"),
        ({"time_window": {"start": "2015-06"}}, "time_window.start: '2015-06' is finer than date_granularity"),
        ({"time_window": {"start": 2020, "end": 2019}}, "time_window: start 2020 is after end 2019"),
        ({"outputs": [{"type": "counts_over_time", "name": "t", "granularity": "month"}]}, "finer than date_granularity"),
        ({"strata": {"age_bands": [10, 20]}}, "strata.age_bands: must start at 0"),
        ({"strata": {"age_bands": [0, 40, 20]}}, "strictly increasing"),
        ({"assertion": {"negated": "sometimes"}}, "assertion.negated"),
    ],
)
def test_each_mistake_names_its_field(changes, expected):
    with pytest.raises(UserError) as err:
        parse_study(minimal(**changes))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)  # one line for the CLI


def test_all_mistakes_are_reported_at_once():
    with pytest.raises(UserError) as err:
        parse_study(minimal(min_cell_count=-1, colour=1, outputs=[{"type": "top_concepts", "name": "x", "top_n": 0}]))
    assert "3 problems" in str(err.value)


def test_monthly_study_accepts_months():
    s = parse_study(minimal(date_granularity="month", time_window={"start": "2019-02", "end": 2020},
                            outputs=[{"type": "counts_over_time", "name": "t", "granularity": "month"}]))
    assert period_bounds(s.time_window.start)[0].isoformat() == "2019-02-01"
    assert period_bounds("2020-02")[1].isoformat() == "2020-02-29"


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_study(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_study(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_study(listing)


def test_hash_ignores_layout_but_not_meaning(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    relaid = tmp_path / "relaid.yaml"
    relaid.write_text("# another comment\n" + yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    a, fa = load_study(EXAMPLE)
    b, fb = load_study(relaid)
    assert a.sha256() == b.sha256() and fa != fb
    data["min_cell_count"] = 11
    assert parse_study(data).sha256() != a.sha256()


def test_min_cell_count_site_can_only_be_stricter():
    from jobs.run_study import min_cell_count

    study = parse_study(minimal(min_cell_count=5))
    assert min_cell_count(study, OmegaConf.create({})) == 5
    assert min_cell_count(study, OmegaConf.create({"study": {"min_cell_count": 11}})) == 11
    assert min_cell_count(study, OmegaConf.create({"study": {"min_cell_count": 3}})) == 5
    assert min_cell_count(parse_study(minimal()), OmegaConf.create({"study": {"min_cell_count": 3}})) == 3
    assert min_cell_count(parse_study(minimal()), OmegaConf.create({})) == 5
    with pytest.raises(UserError, match="study.min_cell_count"):
        min_cell_count(study, OmegaConf.create({"study": {"min_cell_count": "five"}}))

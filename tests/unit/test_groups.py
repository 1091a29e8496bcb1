"""Group rates against hand counts, the four-fifths flag, intervals, weak spots, cohorts, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import groups
from core.cli import main
from core.synthetic import generate
from tests.conftest import bundle_of


def frame(**columns: list) -> pd.DataFrame:
    return pd.DataFrame({k: [str(v) for v in vals] for k, vals in columns.items()})


# -- group rates -------------------------------------------------------------------------------------
def test_rates_match_hand_counts() -> None:
    values = frame(AFFILIATION=["A"] * 4 + ["B"] * 6)
    rec = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    p = np.linspace(0.1, 1.0, 10)
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0], dtype=float)
    report = groups.group_rates(values, rec, p, y, by=["AFFILIATION"], min_size=2)
    a, b = report.groups
    assert (a.value, a.n, a.recommended, a.selection_rate) == ("B", 6, 2, round(2 / 6, 6))
    assert (b.value, b.n, b.recommended, b.selection_rate) == ("A", 4, 3, 0.75)
    assert report.highest == {"AFFILIATION": "A"}
    assert a.ratio_to_highest == round((2 / 6) / 0.75, 6)
    assert a.flag is True and b.flag is False
    assert a.mean_chance == pytest.approx(p[4:].mean())
    # B: y = 1 1 0 0 0 0, rec = 1 0 0 0 0 1 -> right on rows 0,2,3,4 -> 4/6
    assert a.accuracy == round(4 / 6, 6)
    assert a.tpr == 0.5 and a.fpr == 0.25
    assert a.success_rate == round(2 / 6, 6)
    assert a.calibration_gap == pytest.approx(p[4:].mean() - 2 / 6, abs=1e-6)
    # A: y = 1 1 0 0, rec = 1 1 1 0 -> tpr 1, fpr 0.5, accuracy 3/4
    assert (b.tpr, b.fpr, b.accuracy) == (1.0, 0.5, 0.75)
    assert report.sentences == [
        f"AFFILIATION B is recommended at {(2 / 6) / 0.75:.0%} of the rate of A (33% vs 75%); 6 applicants."
    ]


def test_rare_values_are_pooled_as_other_and_small_groups_never_flagged() -> None:
    values = frame(F=["big"] * 40 + ["mid"] * 35 + ["r1"] * 3 + ["r2"] * 2)
    rec = np.array([1] * 40 + [0] * 35 + [0] * 5, dtype=bool)
    report = groups.group_rates(values, rec, np.full(80, 0.5), by=["F"], min_size=30)
    by_value = {g.value: g for g in report.groups}
    assert set(by_value) == {"big", "mid", "other"}
    assert by_value["other"].n == 5 and by_value["other"].small
    assert by_value["other"].flag is False  # ratio 0, but only 5 rows
    assert by_value["mid"].flag is True  # ratio 0 with 35 rows
    assert by_value["big"].ratio_to_highest == 1.0


def test_a_single_rare_value_keeps_its_name_and_other_is_never_the_reference() -> None:
    values = frame(F=["a"] * 40 + ["b"] * 40 + ["c"] * 3)
    rec = np.array([1] * 20 + [0] * 20 + [1] * 30 + [0] * 10 + [1] * 3, dtype=bool)
    report = groups.group_rates(values, rec, np.full(83, 0.5), by=["F"], min_size=30)
    assert [g.value for g in report.groups] == ["a", "b", "c"]
    assert report.highest == {"F": "b"}  # c has the highest rate but only 3 rows


def test_wilson_interval_covers_about_95_percent_on_average() -> None:
    """Exact coverage (binomial probabilities, no simulation noise), averaged over rates and sizes: the
    Wilson interval's coverage oscillates with n and p but averages close to its nominal 95%."""
    from scipy.stats import binom

    coverages = []
    for n in (30, 60, 120):
        for p in np.linspace(0.05, 0.95, 19):
            k = np.arange(n + 1)
            inside = [lo <= p <= hi for lo, hi in (groups.wilson(int(i), n) for i in k)]
            coverages.append(float(binom.pmf(k, n, p)[inside].sum()))
    assert 0.94 <= np.mean(coverages) <= 0.96
    assert min(coverages) >= 0.90


def test_ask_bins_are_named_as_written_by_the_tool() -> None:
    got = groups.ask_bin(np.array([5000, 5001, 25000, 25001, 100000, 1_000_001, 2e10]))
    assert got.tolist() == [
        "5000",
        "5001-25000",
        "5001-25000",
        "25001-100000",
        "25001-100000",
        "1M-10M",
        "over 10M",
    ]


# -- weak spots --------------------------------------------------------------------------------------
def planted(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    rng = np.random.default_rng(seed)
    values = frame(
        A=rng.choice(["a1", "a2", "a3"], n).tolist(),
        B=rng.choice(["b1", "b2", "b3", "b4"], n).tolist(),
        C=rng.choice(["c1", "c2"], n).tolist(),
    )
    errors = rng.random(n) < 0.2
    slice_ = (values["A"] == "a2") & (values["B"] == "b3")
    errors[slice_.to_numpy()] = rng.random(int(slice_.sum())) < 0.6
    return values, errors, {"A": "a2", "B": "b3"}


def test_a_planted_weak_spot_is_found_first() -> None:
    values, errors, rule = planted()
    spots = groups.weak_spots(values, errors, by=["A", "B", "C"], min_size=50)
    assert spots[0].rule == rule
    mask = groups.cohort_mask(values, rule)
    assert spots[0].n == int(mask.sum())
    assert spots[0].error_rate == round(errors[mask].mean(), 6)
    assert spots[0].overall_error_rate == round(errors.mean(), 6)
    assert spots[0].lift == round(errors[mask].mean() / errors.mean(), 4)
    assert spots[0].error_low < spots[0].error_rate < spots[0].error_high


def test_listed_slices_never_overlap_by_more_than_half() -> None:
    values, errors, rule = planted()
    spots = groups.weak_spots(values, errors, by=["A", "B", "C"], min_size=50)
    assert spots[0].rule == rule
    rules = [s.rule for s in spots]
    assert len(rules) == len({json.dumps(r, sort_keys=True) for r in rules})
    for i, spot in enumerate(spots):
        mask = groups.cohort_mask(values, spot.rule)
        for other in spots[:i]:
            omask = groups.cohort_mask(values, other.rule)
            assert (mask & omask).sum() / (mask | omask).sum() <= groups.MERGE_JACCARD
    # the planted slice cut by C (about half of its rows each) is not merged; A=a2 alone holds the
    # planted rows among three times as many: Jaccard about 1/4, listed on its own if at all
    assert len(spots) <= groups.TOP_SLICES


def test_merged_slices_are_recorded_on_the_survivor() -> None:
    values = frame(A=["x"] * 100 + ["y"] * 300, B=["p"] * 95 + ["q"] * 305)
    errors = np.array([True] * 80 + [False] * 20 + [False] * 280 + [True] * 20)
    spots = groups.weak_spots(values, errors, by=["A", "B"], min_size=50)
    # B=p (and A=x with B=p, the same 95 rows): 80 errors in 95; A=x: 80 in 100; Jaccard 0.95
    assert spots[0].rule == {"B": "p"}
    assert spots[0].merged == [{"A": "x", "B": "p"}, {"A": "x"}]
    assert all(s.rule != {"A": "x"} for s in spots)


def test_slices_smaller_than_the_minimum_are_ignored() -> None:
    values = frame(A=["x"] * 40 + ["y"] * 400)
    errors = np.array([True] * 40 + [False] * 300 + [True] * 100)
    assert [s.rule for s in groups.weak_spots(values, errors, by=["A"], min_size=50)] == []


# -- cohorts -----------------------------------------------------------------------------------------
def test_cohorts_are_saved_listed_and_select_rows(home_copy: Path) -> None:
    groups.save_cohort(
        "  Sponsored   with big asks ", {"AFFILIATION": "CompanySponsored", "ASK_AMT": "1M-10M"}
    )
    assert groups.list_cohorts() == {
        "Sponsored with big asks": {"AFFILIATION": "CompanySponsored", "ASK_AMT": "1M-10M"}
    }
    values = frame(
        AFFILIATION=["CompanySponsored", "CompanySponsored", "Independent"],
        ASK_AMT=["1M-10M", "5000", "1M-10M"],
    )
    assert groups.cohort_mask(values, groups.list_cohorts()["Sponsored with big asks"]).tolist() == [
        True,
        False,
        False,
    ]
    groups.delete_cohort("Sponsored with big asks")
    assert groups.list_cohorts() == {}
    with pytest.raises(groups.BadRequest):
        groups.save_cohort("x", {"EIN": "1"})


def test_a_damaged_cohorts_file_is_reported_and_kept(home_copy: Path) -> None:
    path = home_copy / "cohorts.json"
    path.write_text("{not json")
    with pytest.raises(groups.BadRequest, match="damaged"):
        groups.list_cohorts()
    assert path.read_text() == "{not json"


# -- the CLI contract --------------------------------------------------------------------------------
def test_cli_groups_contract(models_dir: Path, tmp_path: Path) -> None:
    bundle = bundle_of(models_dir, "tuned")
    data = generate(1200, random_state=31)
    src = tmp_path / "g.csv"
    data.to_csv(src, index=False)
    out = tmp_path / "g.json"
    assert main(["groups", "--input", str(src), "--version", bundle.version, "--threshold", "0.55",
                 "--weak-spots", "--json", str(out)]) == 0  # fmt: skip
    got = json.loads(out.read_text())
    fields = {g["field"] for g in got["groups"]}
    assert fields == set(groups.GROUP_FIELDS)
    from core.batch import score_upload

    scored = score_upload(bundle, src, "g.csv")
    rec = scored.probabilities >= 0.55
    affiliation = {g["value"]: g for g in got["groups"] if g["field"] == "AFFILIATION"}
    independent = (scored.features["AFFILIATION"] == "Independent").to_numpy()
    entry = affiliation["Independent"]
    assert entry["n"] == int(independent.sum())
    assert entry["recommended"] == int(rec[independent].sum())
    assert entry["selection_rate"] == round(rec[independent].mean(), 6)
    y = data["IS_SUCCESSFUL"].to_numpy()
    assert entry["accuracy"] == round((rec[independent].astype(int) == y[independent]).mean(), 6)
    for g in got["groups"]:
        assert set(g) >= {"field", "value", "n", "recommended", "selection_rate", "ratio_to_highest", "flag",
                          "accuracy", "tpr", "fpr"}  # fmt: skip
    first = {g["value"] for g in got["groups"] if g["field"] == "first_time"}
    assert first <= {"0", "1"}
    assert got["weak_spots"], "labelled file: weak spots expected"
    for spot in got["weak_spots"]:
        assert spot["n"] >= 50 and spot["error_rate"] > spot["overall_error_rate"]
        assert set(spot) >= {"rule", "n", "error_rate", "overall_error_rate"}


def test_cli_groups_budget_by_and_min_size(models_dir: Path, tmp_path: Path, capsys) -> None:
    bundle = bundle_of(models_dir, "baseline")
    src = tmp_path / "u.csv"
    generate(400, random_state=32, with_target=False).to_csv(src, index=False)
    out = tmp_path / "u.json"
    args = ["groups", "--input", str(src), "--version", bundle.version, "--budget", "3000000",
            "--by", "AFFILIATION,first_time", "--min-size", "10", "--weak-spots",
            "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    got = json.loads(out.read_text())
    assert {g["field"] for g in got["groups"]} == {"AFFILIATION", "first_time"}
    assert "weak_spots" not in got  # no labels
    assert all(g["accuracy"] is None and g["tpr"] is None for g in got["groups"])
    assert got["min_size"] == 10
    assert main(["groups", "--input", str(src), "--by", "EIN", "--json", str(out)]) == 2
    assert (
        main(["groups", "--input", str(src), "--threshold", "0.5", "--budget", "5", "--json", str(out)]) == 2
    )

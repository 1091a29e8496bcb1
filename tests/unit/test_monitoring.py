"""Batch monitoring: exact statistics, clean batches pass, real shifts fail, CBPE, outcomes, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import batch, monitoring, storage
from core.cli import main
from core.decisions import Rule
from core.synthetic import generate
from tests.conftest import bundle_of, csv_bytes

FIELDS = [
    "APPLICATION_TYPE", "AFFILIATION", "CLASSIFICATION", "USE_CASE", "ORGANIZATION",
    "STATUS", "INCOME_AMT", "SPECIAL_CONSIDERATIONS", "ASK_AMT",
]  # fmt: skip


@pytest.fixture(scope="module")
def bundle(models_dir: Path):
    return bundle_of(models_dir, "baseline")


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    """The demo training population (the models were trained on these rows) without outcomes."""
    return generate(8000, random_state=0, with_target=False)


def check_of(bundle, rows: pd.DataFrame) -> monitoring.Check:
    return batch.score_upload(bundle, csv_bytes(rows), "b.csv").check


# -- exact statistics ------------------------------------------------------------------------------
def test_psi_matches_its_formula() -> None:
    value = monitoring.psi(np.array([0.5, 0.5]), np.array([0.25, 0.75]))
    assert value == pytest.approx((0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5))


def test_compare_counts_is_the_two_sample_chi_square() -> None:
    from scipy.stats import chi2_contingency

    ref, got = np.array([600, 300, 100]), np.array([50, 30, 20])
    stat, p, _ = monitoring.compare_counts(ref, got)
    expected = chi2_contingency(np.vstack([ref, got]), correction=False)
    assert stat == pytest.approx(expected[0])
    assert p == pytest.approx(expected[1])


def test_small_buckets_are_pooled_and_their_count_tested_exactly() -> None:
    # buckets 3 and 4 expect 0.5 and 1 row in a batch of 100: pooled (1.5 expected, still under 5), the
    # chi-square merges the pool into the smallest other bucket, and a binomial test checks the pool
    from scipy.stats import binomtest, chi2_contingency

    ref = np.array([500, 415, 85, 5, 10])
    got = np.array([50, 40, 8, 1, 1])
    stat, p, value = monitoring.compare_counts(ref, got)
    merged = chi2_contingency(np.array([[500, 415, 100], [50, 40, 10]]), correction=False)
    pool = binomtest(2, 100, 15 / 1015).pvalue
    assert stat == pytest.approx(merged[0])
    assert p == pytest.approx(min(1.0, 2 * min(merged[1], pool)))
    assert value == pytest.approx(
        monitoring.psi(np.array([500, 415, 85, 15]) / 1015, np.array([50, 40, 8, 2]) / 100)
    )


@pytest.mark.parametrize(
    ("n", "p"),
    [(1, 0.3), (7, 0.5), (20, 0.05), (100, 15 / 1015), (250, 0.9), (3000, 0.001), (50, 0.0), (50, 1.0)],
)
def test_the_binomial_test_is_scipys_binomtest(n: int, p: float) -> None:
    from scipy.stats import binomtest

    for k in sorted({0, 1, 2, n // 3, round(n * p), n // 2, n - 1, n} & set(range(n + 1))):
        assert monitoring.binomial_test(k, n, p) == pytest.approx(
            binomtest(k, n, p).pvalue, rel=1e-9, abs=1e-300
        )


def test_serving_checks_import_no_scipy_stats() -> None:
    """The data checks of every scored batch use scipy.special, never scipy.stats (1.4 s to import)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from core import monitoring\n"
        "monitoring.compare_counts(np.array([500, 415, 85, 5, 10]), np.array([50, 40, 8, 1, 1]))\n"
        "print('scipy.stats' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_an_unseen_value_in_many_rows_is_not_hidden_in_a_large_bucket() -> None:
    # two main values, a rare one, and a never-seen value in a third of the batch
    ref = np.array([5400, 4590, 10, 0])
    got = np.array([340, 330, 0, 330])
    _, p, value = monitoring.compare_counts(ref, got)
    assert p < 1e-100
    assert value > 1.0


def test_expected_first_time_share_is_leave_one_out() -> None:
    # A twice, B once, one blank: B and the blank are new to the other rows -> 2 of 4
    assert monitoring.expected_first_time(np.array(["A", "A", "B", ""], dtype=object)) == 0.5


def test_estimate_is_cbpe_with_a_bernoulli_interval() -> None:
    est = monitoring.estimate(np.array([0.9, 0.2]), np.array([True, False]))
    assert est.accuracy == pytest.approx(0.85)
    sd = math.sqrt(0.9 * 0.1 + 0.8 * 0.2) / 2
    assert est.accuracy_low == pytest.approx(0.85 - monitoring.Z90 * sd, abs=1e-6)
    assert est.accuracy_high == pytest.approx(min(1.0, 0.85 + monitoring.Z90 * sd), abs=1e-6)
    assert est.expected_successes == pytest.approx(1.1)
    assert est.expected_successes_recommended == pytest.approx(0.9)
    assert est.expected_precision == pytest.approx(0.9)
    assert est.recommended == 1


def test_estimate_sums_add_up_chunk_by_chunk() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    whole = monitoring.estimate(p, p >= 0.4)
    sums = monitoring.EstimateSums()
    for part in np.array_split(np.arange(1000), 7):
        sums.add(p[part], p[part] >= 0.4)
    assert sums.result() == whole


def test_realized_figures_on_known_outcomes() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.1])
    rec = np.array([True, True, False, False])
    y = np.array([1, 0, 1, 0])
    got = monitoring.realized(p, rec, y)
    assert got.accuracy == 0.5
    assert got.precision_recommended == 0.5
    assert got.roc_auc == 0.75
    assert got.calibration_gap == pytest.approx(0.525 - 0.5)


# -- clean and shifted batches -----------------------------------------------------------------------
def test_reference_is_stored_in_the_signed_bundle(bundle) -> None:
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert "reference.json" in manifest["files"]
    ref = monitoring.reference_of(bundle)
    assert ref.basis == "stored at training"
    assert set(ref.categories) == set(FIELDS) - {"ASK_AMT"}
    assert ref.ask_quantiles["0.00"] == 5000.0


@pytest.mark.parametrize("variant", ["baseline", "tuned"])  # tuned: refitted on training + validation
def test_reference_computed_on_first_use_matches_the_stored_one(models_dir: Path, variant: str) -> None:
    bundle = bundle_of(models_dir, variant)
    computed = monitoring._compute_for(bundle)  # the demo data is regenerated from its seed
    stored = monitoring.reference_of(bundle)
    assert computed.basis.startswith("computed on first use")
    assert computed.categories == stored.categories
    assert computed.ask_counts == stored.ask_counts
    assert computed.estimate_calibration == stored.estimate_calibration  # same rows, same calibration
    assert stored.estimate_calibration is not None


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_clean_resamples_have_no_failing_field(bundle, population, seed: int) -> None:
    rows = population.sample(1500 + 500 * seed, random_state=seed)
    check = check_of(bundle, rows)
    assert set(check.fields) == set(FIELDS)
    assert [c.name for c in check.fields.values() if c.status == monitoring.FAIL] == []


def test_a_field_in_another_scale_fails(bundle, population) -> None:
    rows = population.sample(800, random_state=1).assign(ASK_AMT=lambda f: f["ASK_AMT"] * 1000)
    check = check_of(bundle, rows)
    assert check.fields["ASK_AMT"].status == monitoring.FAIL
    assert check.status == monitoring.FAIL
    top = max(bundle.ask_range)
    assert check.fields["ASK_AMT"].unseen[f"above the training maximum ({top:,.0f})"] == int(
        (rows["ASK_AMT"] > top).sum()
    )


def test_an_unseen_category_in_a_third_of_rows_fails_and_is_named(bundle, population) -> None:
    rows = population.sample(900, random_state=2).reset_index(drop=True)
    rows.loc[rows.index % 3 == 0, "CLASSIFICATION"] = "C9999"
    check = check_of(bundle, rows)
    got = check.fields["CLASSIFICATION"]
    assert got.status == monitoring.FAIL
    assert got.unseen == {"C9999": 300}
    assert "C9999 (300)" in got.sentence
    assert check.fields["AFFILIATION"].status == monitoring.OK


def test_swapping_the_main_categories_fails(bundle, population) -> None:
    rows = population.sample(600, random_state=3)
    rows["ORGANIZATION"] = (
        rows["ORGANIZATION"]
        .map({"Trust": "Association", "Association": "Trust"})
        .fillna(rows["ORGANIZATION"])
    )
    check = check_of(bundle, rows)
    assert check.fields["ORGANIZATION"].status == monitoring.FAIL
    assert check.fields["USE_CASE"].status == monitoring.OK


def test_many_rejected_rows_fail(bundle, population) -> None:
    raw = population.sample(200, random_state=4).astype(str).reset_index(drop=True)
    raw.loc[:39, "STATUS"] = "7"  # 20% invalid
    check = check_of(bundle, raw)
    assert check.extra["rejected"].status == monitoring.FAIL
    assert check.n_rows == 200
    assert check.n_accepted == 160


def test_check_round_trips_through_json(bundle, population) -> None:
    check = check_of(bundle, population.sample(300, random_state=5))
    again = monitoring.Check.from_dict(json.loads(json.dumps(check.to_dict())))
    assert again == check
    table = check.table()
    assert list(table["check"]) == [*FIELDS, "first-time organisations", "model's chances", "rejected rows"]
    assert set(table["status"]) <= {"OK", "Warning", "Fail"}


# -- recording, outcomes and the CLI -----------------------------------------------------------------
def test_a_recorded_batch_keeps_its_check_and_estimate(bundle, population, own_db) -> None:
    scored = batch.score_upload(bundle, csv_bytes(population.sample(400, random_state=6)), "r.csv")
    selection = batch.decide(scored, Rule("budget", budget=2_000_000))
    batch_id = batch.record(scored, selection, "ann", live=True)
    stored = storage.get_batch(batch_id).monitoring_data()
    assert stored["check"] == json.loads(json.dumps(scored.check.to_dict()))
    assert stored["estimate"] == batch.estimate_of(scored, selection.mask).to_dict()
    assert stored["estimate"]["calibrated"] is True  # calibrated on the served network's unseen rows


def test_outcomes_join_on_ein_and_measure_the_recorded_recommendation(bundle, tmp_path, own_db) -> None:
    labelled = generate(500, random_state=8)
    src = tmp_path / "in.csv"
    labelled.drop(columns=["IS_SUCCESSFUL"]).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert main(["score", "--input", str(src), "--output", str(out), "--record", "--user", "ann",
                 "--version", bundle.version, "--threshold", "0.45"]) == 0  # fmt: skip
    batch_id = storage.list_batches()[0].id
    results = pd.read_csv(out)
    outcomes = labelled[["EIN", "IS_SUCCESSFUL"]].sample(frac=1, random_state=1)  # any order
    outcomes.iloc[:100].to_csv(tmp_path / "o.csv", index=False)
    result_json = tmp_path / "o.json"
    assert (
        main(
            ["outcomes", "--batch", batch_id, "--input", str(tmp_path / "o.csv"), "--json", str(result_json)]
        )
        == 0
    )
    got = json.loads(result_json.read_text())
    truth = results.merge(outcomes.iloc[:100], on="EIN")
    assert got["n_matched"] == 100
    assert got["joined_on"] == "EIN"
    assert got["accuracy"] == pytest.approx((truth["recommended"] == truth["IS_SUCCESSFUL"]).mean(), abs=1e-6)
    stored = storage.get_batch(batch_id).monitoring_data()["estimate"]
    assert got["estimated_accuracy"] == stored["accuracy"]
    scored = batch.score_upload(bundle, src, "in.csv")
    assert stored["accuracy"] == batch.estimate_of(scored, scored.probabilities >= 0.45).accuracy
    history = batch.monitoring_history()
    assert history.loc[0, "realized_accuracy"] == got["accuracy"]


def test_outcomes_fall_back_to_source_line(bundle, tmp_path, own_db) -> None:
    rows = generate(60, random_state=9)
    rows.loc[5, "EIN"] = rows.loc[4, "EIN"]  # EIN not unique: cannot join on it
    scored = batch.score_upload(bundle, csv_bytes(rows.drop(columns=["IS_SUCCESSFUL"])), "d.csv")
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.5)), "ann", live=False)
    outcomes = pd.DataFrame(
        {"EIN": rows["EIN"], "source_line": np.arange(2, 62), "IS_SUCCESSFUL": rows["IS_SUCCESSFUL"]}
    )
    result = batch.attach_outcomes(batch_id, csv_bytes(outcomes), "o.csv", "ann")
    assert result.joined_on == "source_line"
    assert result.realized.n_matched == 60
    expected = ((scored.probabilities >= 0.5).astype(int) == rows["IS_SUCCESSFUL"].to_numpy()).mean()
    assert result.realized.accuracy == pytest.approx(expected, abs=1e-6)


def test_outcomes_without_a_key_are_a_user_error(bundle, tmp_path, own_db, capsys) -> None:
    scored = batch.score_upload(bundle, csv_bytes(generate(30, random_state=10, with_target=False)), "k.csv")
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.5)), "ann", live=True)
    bad = tmp_path / "bad.csv"
    bad.write_text("NAME,IS_SUCCESSFUL\nA,1\nB,0\n")
    assert main(["outcomes", "--batch", batch_id, "--input", str(bad)]) == 2
    assert "EIN" in capsys.readouterr().err
    assert main(["outcomes", "--batch", "no-such-batch", "--input", str(bad)]) == 2


def test_cli_check_writes_the_contract(bundle, population, tmp_path) -> None:
    src = tmp_path / "c.csv"
    population.sample(700, random_state=11).to_csv(src, index=False)
    out = tmp_path / "c.json"
    assert main(["check", "--input", str(src), "--version", bundle.version, "--threshold", "0.6",
                 "--json", str(out)]) == 0  # fmt: skip
    got = json.loads(out.read_text())
    assert got["n_rows"] == 700
    assert got["model_version"] == bundle.version
    assert list(got["fields"]) == FIELDS
    for entry in got["fields"].values():
        assert entry["status"] in ("ok", "warn", "fail")
        assert isinstance(entry["test"], str)
        assert isinstance(entry["statistic"], float)
        assert isinstance(entry["unseen"], dict)
    scored = batch.score_upload(bundle, src, "c.csv")
    expected = batch.estimate_of(scored, scored.probabilities >= 0.6)
    assert expected.calibrated is True
    assert got["estimate"]["accuracy"] == expected.accuracy
    assert got["estimate"]["expected_successes"] == expected.expected_successes
    assert got["estimate"]["expected_successes_recommended"] == expected.expected_successes_recommended
    assert got["estimate"]["accuracy_low"] < got["estimate"]["accuracy"] < got["estimate"]["accuracy_high"]


def test_cli_check_user_errors(tmp_path, capsys) -> None:
    assert main(["check", "--input", str(tmp_path / "missing.csv"), "--json", str(tmp_path / "x.json")]) == 2
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert main(["check", "--input", str(empty), "--json", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_stored_outcomes_frame(bundle, tmp_path, own_db) -> None:
    rows = generate(40, random_state=12)
    scored = batch.score_upload(bundle, csv_bytes(rows.drop(columns=["IS_SUCCESSFUL"])), "s.csv")
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.5)), "ann", live=True)
    batch.attach_outcomes(batch_id, csv_bytes(rows[["EIN", "IS_SUCCESSFUL"]]), "o.csv", "bo")
    frame = storage.outcomes_frame(batch_id)
    assert list(frame.columns) == ["source_line", "IS_SUCCESSFUL"]
    assert frame["IS_SUCCESSFUL"].tolist() == rows["IS_SUCCESSFUL"].tolist()
    assert storage.latest_outcomes()[batch_id].user == "bo"


def test_the_estimate_says_whether_it_was_calibrated() -> None:
    p, rec = np.array([0.9, 0.2, 0.6]), np.array([True, False, True])
    plain = monitoring.estimate(p, rec).sentence()
    assert plain.endswith(
        "This model version predates the calibration of this estimate: its chances are taken as they are, "
        "so the estimate may lean optimistic, most of all on first-time organisations."
    )
    assert "recalibrated" not in plain

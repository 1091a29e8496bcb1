"""Counterfactuals are verified, minimal and honour locked fields; decline reasons; the review queue."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import batch, review, storage
from core.cli import main
from core.decisions import Rule
from core.explain import FieldExplainer, name_records
from core.synthetic import generate
from core.whatif import CHANGEABLE, DEFAULT_CHANGE, Searcher, decline_reasons, parse_fields
from tests.conftest import bundle_of, csv_bytes


@pytest.fixture(scope="module")
def bundle(models_dir: Path):
    return bundle_of(models_dir, "baseline")


@pytest.fixture(scope="module")
def below(bundle) -> pd.DataFrame:
    scored = batch.score_upload(bundle, csv_bytes(generate(300, random_state=51, with_target=False)), "w.csv")
    return scored.features[scored.probabilities < 0.6].iloc[:25].reset_index(drop=True)


def rescore(bundle, row: pd.Series, changes: dict) -> float:
    changed = row.copy()
    for f, v in changes.items():
        changed[f] = v
    return float(bundle.predict_proba(pd.DataFrame([changed]))[0])


def test_every_suggestion_is_verified_by_rescoring(bundle, below) -> None:
    found = Searcher(bundle, CHANGEABLE, 2).search(below, 0.6)
    assert any(c.found for c in found)
    for i, c in enumerate(found):
        assert c.found in (True, False)
        if c.found:
            assert rescore(bundle, below.iloc[i], c.changes) == pytest.approx(c.new_probability, abs=1e-12)
            assert c.new_probability >= 0.6
            assert c.text.endswith(
                f"would raise the chance to {c.new_probability:.0%} (from {c.probability:.0%})."
            )


def test_locked_fields_never_change(bundle, below) -> None:
    found = Searcher(bundle, ["USE_CASE", "ASK_AMT"], 2).search(below, 0.6)
    assert sum(bool(c.found) for c in found) >= 1  # the claim is about real suggestions, not none
    for c in found:
        assert set(c.changes) <= {"USE_CASE", "ASK_AMT"}
        if "ASK_AMT" in c.changes:
            assert c.changes["ASK_AMT"] < c.before["ASK_AMT"]


def candidates(searcher: Searcher, row: pd.Series, f: str) -> list:
    if f == "ASK_AMT":
        return [v for v in searcher.ask_grid if v < float(row["ASK_AMT"])]
    current = int(row[f]) if f == "STATUS" else str(row[f])
    return [v for v in searcher.values[f] if v != current]


def test_suggestions_are_minimal_by_brute_force(bundle, below) -> None:
    fields = ["AFFILIATION", "USE_CASE", "INCOME_AMT", "ASK_AMT"]
    searcher = Searcher(bundle, fields, 2)
    found = searcher.search(below.iloc[:8], 0.6)
    for i, c in enumerate(found):
        row = below.iloc[i]
        singles = [(f, v, rescore(bundle, row, {f: v})) for f in fields for v in candidates(searcher, row, f)]
        reach_one = [s for s in singles if s[2] >= 0.6]
        if reach_one:
            assert c.found and len(c.changes) == 1
            own = float(row["ASK_AMT"])
            best = min(
                reach_one, key=lambda s, own=own: ((own - s[1]) / own if s[0] == "ASK_AMT" else 0.0, -s[2])
            )
            assert c.changes == {best[0]: best[1]}
            continue
        pairs = []
        for f, g in itertools.combinations(fields, 2):
            for v, u in itertools.product(candidates(searcher, row, f), candidates(searcher, row, g)):
                pairs.append(rescore(bundle, row, {f: v, g: u}) >= 0.6)
        assert bool(c.found) == any(pairs)
        if c.found:
            assert len(c.changes) == 2


def test_none_found_is_an_answer(bundle, below) -> None:
    c = Searcher(bundle, ["SPECIAL_CONSIDERATIONS"], 1).search(below.iloc[:1], 0.999)[0]
    assert c.found is False and c.changes == {}
    assert c.text == (
        "No change of at most 1 of the fields SPECIAL_CONSIDERATIONS brings the chance "
        f"({c.probability:.0%}) to the threshold (100%)."
    )


def test_rows_at_or_above_the_threshold_get_no_search(bundle, below) -> None:
    c = Searcher(bundle).search(below.iloc[:1], 0.0)[0]
    assert c.found is None and c.text == ""


def test_name_and_ein_can_never_change() -> None:
    assert parse_fields(None) == DEFAULT_CHANGE
    assert parse_fields("ask_amt, use_case") == ["ASK_AMT", "USE_CASE"]
    for bad in ("NAME", "EIN", "ASK_AMT,NAME", "COLOUR"):
        with pytest.raises(batch.BadRequest):
            parse_fields(bad)


def test_decline_reasons_name_only_fields_that_lowered_the_chance(bundle, below) -> None:
    attr = FieldExplainer(bundle).explain(below)
    reasons = decline_reasons(attr, bundle.seen_names, name_records(bundle))
    values = attr.values.to_numpy()
    for i, found in enumerate(reasons):
        negative = [attr.fields[j] for j in np.argsort(values[i]) if values[i, j] < -0.0005][:4]
        assert len(found) == len(negative) <= 4
        for field, text in zip(negative, found):
            assert text.startswith(f"{field} = ") and " lowered the chance by " in text
            assert f"{abs(values[i, attr.fields.index(field)]) * 100:.1f} points" in text


# -- the CLI contract ---------------------------------------------------------------------------------
def test_cli_whatif_contract(bundle, tmp_path: Path) -> None:
    raw = generate(40, random_state=52, with_target=False).astype(str)
    raw.loc[7, "STATUS"] = "9"  # rejected
    src = tmp_path / "in.csv"
    raw.to_csv(src, index=False)
    out = tmp_path / "out.csv"
    args = ["whatif", "--input", str(src), "--output", str(out), "--version", bundle.version,
            "--threshold", "0.6", "--change", "ASK_AMT,AFFILIATION", "--max-changes", "1"]  # fmt: skip
    assert main(args) == 0
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(got.columns[: len(raw.columns)]) == list(raw.columns)
    assert got["EIN"].tolist() == raw["EIN"].tolist()
    for col in ["success_probability", "cf_found", "cf_fields", "cf_probability", "cf_text", "cf_ASK_AMT",
                "cf_AFFILIATION"]:  # fmt: skip
        assert col in got.columns
    assert "cf_USE_CASE" not in got.columns
    assert got.loc[7, "success_probability"] == "" and got.loc[7, "rejected"] != ""
    p = pd.to_numeric(got["success_probability"], errors="coerce")
    above = p >= 0.6
    assert (got.loc[above, "cf_found"] == "").all()
    below_rows = got[(p < 0.6)]
    assert set(below_rows["cf_found"]) <= {"0", "1"} and len(below_rows)
    assert (below_rows["cf_found"] == "1").sum() >= 1  # some suggestions were found and are checked below
    for _, row in below_rows[below_rows["cf_found"] == "1"].iterrows():
        assert row["cf_fields"] in ("ASK_AMT", "AFFILIATION")
        assert float(row["cf_probability"]) >= 0.6
        assert row[f"cf_{row['cf_fields']}"] != ""


def test_cli_whatif_user_errors(bundle, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    generate(5, random_state=53, with_target=False).to_csv(src, index=False)
    out = str(tmp_path / "o.csv")
    assert main(["whatif", "--input", str(src), "--output", out, "--change", "NAME"]) == 2
    assert main(["whatif", "--input", str(src), "--output", out, "--max-changes", "4"]) == 2
    assert main(["whatif", "--input", str(tmp_path / "none.csv"), "--output", out]) == 2


# -- the review queue ---------------------------------------------------------------------------------
def recorded(bundle, raw: pd.DataFrame, threshold: float = 0.5) -> tuple[str, batch.ScoredBatch]:
    scored = batch.score_upload(bundle, csv_bytes(raw), "q.csv")
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=threshold)), "ann", True)
    return batch_id, scored


def test_queue_rules_pick_exactly_their_rows(bundle, models_dir, own_db) -> None:
    raw = generate(80, random_state=54, with_target=False)
    raw.loc[10, "EIN"] = raw.loc[11, "EIN"]  # duplicate EIN
    raw.loc[20, "CLASSIFICATION"] = "C9999"  # never seen
    batch_id, scored = recorded(bundle, raw)
    challenger = bundle_of(models_dir, "tuned")
    result = review.build_queue(batch_id, 0.05, bundle, challenger)
    items = storage.list_review_items(batch_id).set_index("source_line")
    p = scored.probabilities
    lines = scored.source_lines
    near = set(lines[np.abs(p - 0.5) <= 0.05])
    theirs = challenger.predict_proba(scored.features) >= 0.5
    disagree = set(lines[theirs != (p >= 0.5)])
    first = set(lines[~bundle.is_seen(scored.features) & (np.abs(p - 0.5) <= 0.10)])
    expected = near | disagree | first | {12, 13, 22}
    assert set(items.index) == expected
    assert result.added == len(expected)
    assert "duplicate" in items.loc[12, "why"] and "duplicate" in items.loc[13, "why"]
    assert "never seen" in items.loc[22, "why"]
    assert result.by_rule["challenger disagrees"] == len(disagree)
    assert review.build_queue(batch_id, 0.05, bundle, challenger).added == 0  # queued rows stay


def test_queue_judges_values_as_validation_normalised_them(bundle, own_db) -> None:
    # lower-case and odd-case spellings validation accepts as known values are not "never seen";
    # a truly unseen value still is, and Score's duplicate warning and the queue agree
    raw = generate(40, random_state=56, with_target=False).astype(str)
    raw.loc[3, "AFFILIATION"] = raw.loc[3, "AFFILIATION"].lower()
    raw.loc[4, "ORGANIZATION"] = raw.loc[4, "ORGANIZATION"].swapcase()
    raw.loc[5, "APPLICATION_TYPE"] = raw.loc[5, "APPLICATION_TYPE"].lower()
    raw.loc[6, "INCOME_AMT"] = "Jan-99"  # the income band validation repairs to 1-9999
    raw.loc[7, "USE_CASE"] = "pRoDuCtDeV"
    raw.loc[8, "CLASSIFICATION"] = "C9999"  # never seen in training
    raw.loc[9] = raw.loc[10]  # the same applicant twice
    batch_id, scored = recorded(bundle, raw, threshold=0.0)  # line 0: nothing is near it
    assert scored.report.n_warned == 1  # only C9999 drew a validation warning
    review.build_queue(batch_id, 0.0, bundle)
    items = storage.list_review_items(batch_id).set_index("source_line")
    unseen = {int(line) for line, why in items["why"].items() if "never seen" in why}
    assert unseen == {10}
    duplicates = {int(line) for line, why in items["why"].items() if "duplicate" in why}
    found = batch.duplicates(scored)
    assert duplicates == {11, 12} == set(found.repeated_ein_lines)
    assert found.identical_lines == [12]


def test_resolving_an_item_becomes_the_rows_override(bundle, own_db) -> None:
    batch_id, _ = recorded(bundle, generate(30, random_state=55, with_target=False))
    storage.add_review_items(batch_id, [(5, "near the line"), (6, "near the line"), (7, "duplicate")])
    items = storage.list_review_items(batch_id).set_index("source_line")
    storage.assign_review(int(items.loc[5, "id"]), "bo")
    storage.resolve_review(int(items.loc[5, "id"]), "decline", "asked twice this year", "bo")
    storage.resolve_review(int(items.loc[6, "id"]), "approve", "strong references", "cy")
    storage.resolve_review(int(items.loc[7, "id"]), "keep", "not a duplicate after all", "cy")
    current = storage.results_with_overrides(batch_id).set_index("source_line")
    assert current.loc["5", "final_decision"] == 0 and current.loc["5", "override"] == "decline"
    assert current.loc["5", "override_reason"] == "review: asked twice this year"
    assert current.loc["6", "final_decision"] == 1 and current.loc["6", "override_by"] == "cy"
    assert current.loc["7", "override"] == "none"
    assert int(current.loc["7", "final_decision"]) == int(current.loc["7", "recommended"])
    assert storage.review_counts() == {batch_id: (0, 3)}
    with pytest.raises(batch.BadRequest, match="already resolved"):
        storage.resolve_review(int(items.loc[5, "id"]), "approve", "again", "bo")
    assert storage.add_review_items(batch_id, [(8, "near the line")]) == 1
    eight = int(storage.list_review_items(batch_id).set_index("source_line").loc[8, "id"])
    with pytest.raises(batch.BadRequest, match="reason"):
        storage.resolve_review(eight, "keep", " ", "bo")
    assert storage.review_counts() == {batch_id: (1, 3)}

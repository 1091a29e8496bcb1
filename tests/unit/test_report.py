"""The batch report: the CLI contract, self-contained (no network), numbers equal the core functions,
hostile text escaped, size; the model card as HTML; the capture curve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import batch, storage
from core.cli import main
from core.decisions import Rule
from core.report import batch_report, capture_curve, capture_sentence
from core.synthetic import generate
from tests.conftest import bundle_of, csv_bytes

EXTERNAL = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*['\"]?\s*https?://", re.IGNORECASE)


def test_capture_curve_is_cumulative_expected_successes() -> None:
    p = np.array([0.9, 0.2, 0.5, 0.4])
    curve = capture_curve(p, np.array([100.0, 200.0, 300.0, 400.0]))
    assert curve["expected_capture"].round(6).tolist() == [0.45, 0.7, 0.9, 1.0]
    assert curve["money"].tolist() == [100.0, 400.0, 800.0, 1000.0]
    assert capture_sentence(curve, 2) == (
        "Funding the top 50% of applicants ($400) is expected to capture 70% of the expected successes."
    )
    real = capture_curve(p, np.ones(4), outcomes=np.array([1.0, 0.0, 0.0, 1.0]))
    # order by chance: 0.9 (y=1), 0.5 (y=0), 0.4 (y=1), 0.2 (y=0)
    assert real["realized_capture"].tolist() == [0.5, 0.5, 1.0, 1.0]


def test_capture_figure_draws_a_long_curve_through_at_most_501_points() -> None:
    from core import plots

    rng = np.random.default_rng(3)
    p = rng.random(10_000)
    curve = capture_curve(p, np.full(10_000, 5000.0))
    fig = plots.capture_figure(curve, funded=1234)
    expected, rule = fig.data[0], fig.data[-1]
    assert len(expected.x) == 501
    # the ends are kept and every drawn point lies on the full curve
    assert expected.x[0] == curve["share_of_applicants"].iloc[0] and expected.x[-1] == 1.0
    drawn = np.round(np.asarray(expected.x) * 10_000).astype(int) - 1
    assert np.allclose(np.asarray(expected.y), curve["expected_capture"].to_numpy()[drawn])
    # the current rule's point is exact, not the nearest drawn point
    assert rule.name == "the current rule"
    assert rule.x[0] == 0.1234 and rule.y[0] == curve["expected_capture"].iloc[1233]
    small = plots.capture_figure(curve.iloc[:300], funded=3)
    assert len(small.data[0].x) == 300


def test_cli_report_contract(models_dir: Path, tmp_path: Path, own_db) -> None:
    bundle = bundle_of(models_dir, "baseline")
    raw = generate(400, random_state=71, with_target=False)
    raw.loc[0, "NAME"] = "<script>alert(1)</script> ![x](http://evil.example/a.png)"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    raw.to_csv(src, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "core", "score", "--input", str(src), "--output", str(out), "--record",
         "--user", "ann", "--version", bundle.version, "--threshold", "0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    batch_id = done.stdout.strip().splitlines()[-1]
    assert storage.get_batch(batch_id).version == bundle.version
    report = tmp_path / "r.html"
    assert main(["report", "--batch", batch_id, "--output", str(report)]) == 0
    text = report.read_text()
    assert batch_id in text and bundle.version in text
    assert text.count('class="plotly-graph-div"') >= 3
    assert EXTERNAL.search(text) is None
    assert "<script>alert(1)</script>" not in text
    assert "&#60;script&#62;alert(1)&#60;/script&#62;" in text  # shown as text (every row is funded)
    headings = re.findall(r"<h2 id='[a-z]+-h'>([^<]+)</h2>", text)
    assert headings == [
        "Batch summary", "The model", "Data checks and the accuracy estimate", "The decision", "Group rates",
        "Overrides and review resolutions", "Top reasons across the batch", "Recommended applicants",
    ]  # fmt: skip


def test_report_numbers_equal_the_core_functions(models_dir: Path, own_db) -> None:
    bundle = bundle_of(models_dir, "tuned")
    scored = batch.score_upload(bundle, csv_bytes(generate(300, random_state=72, with_target=False)), "n.csv")
    selection = batch.decide(scored, Rule("budget", budget=2_500_000))
    batch_id = batch.record(scored, selection, "ann", live=False)
    storage.add_override(batch_id, int(scored.source_lines[0]), 0, "declined by the board", "bo")
    document, facts = batch_report(batch_id)
    assert facts.recommended == int(selection.mask.sum())
    assert facts.recommended_money == pytest.approx(float(scored.asks[selection.mask].sum()))
    assert facts.overrides == 1
    current = storage.results_with_overrides(batch_id)
    assert facts.final_recommended == int(current["final_decision"].astype(int).sum())
    curve = capture_curve(scored.probabilities, scored.asks, None, "probability")
    sentence = capture_sentence(curve, int(selection.mask.sum()))
    from core.text import safe_text

    assert safe_text(sentence, html_only=True) in document
    estimate = storage.get_batch(batch_id).monitoring_data()["estimate"]
    assert f"{estimate['accuracy']:.1%}" in document
    assert "declined by the board" in document


def test_report_flags_a_group_the_decision_after_overrides_leaves_out(models_dir: Path, own_db) -> None:
    # every applicant recommended, then staff decline every CompanySponsored one: the report must say
    # that group is recommended at 0% of the top group's rate, with its size counted from the file
    bundle = bundle_of(models_dir, "baseline")
    raw = generate(300, random_state=74, with_target=False)
    scored = batch.score_upload(bundle, csv_bytes(raw), "g.csv")
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.0)), "ann", live=True)
    company = raw.index[raw["AFFILIATION"] == "CompanySponsored"].to_numpy() + 2
    assert len(company) >= 30  # big enough to be judged
    for line in company:
        storage.add_override(batch_id, int(line), 0, "outside this programme", "bo")
    document, facts = batch_report(batch_id)
    assert facts.final_recommended == 300 - len(company)
    top = raw.loc[raw["AFFILIATION"] != "CompanySponsored", "AFFILIATION"].value_counts()
    top = top[top >= 30].index[0]  # every other sizeable group keeps a 100% rate; the first is named
    expected = f"CompanySponsored is recommended at 0% of the rate of {top} (0% vs 100%); " + (
        f"{len(company):,} applicants."
    )
    assert expected in document


def test_a_5000_row_report_stays_small_and_summarises_the_table(models_dir: Path, own_db) -> None:
    bundle = bundle_of(models_dir, "baseline")
    scored = batch.score_upload(
        bundle, csv_bytes(generate(5000, random_state=73, with_target=False)), "big.csv"
    )
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.2)), "ann", live=True)
    document, facts = batch_report(batch_id)
    assert facts.final_recommended > 1000
    assert len(document.encode("utf-8")) <= 10 * 1024 * 1024
    assert f"The 1,000 most likely of {facts.final_recommended:,} funded applicants are listed" in document


def test_a_missing_batch_is_one_line_and_exit_2(tmp_path: Path, own_db, capsys) -> None:
    assert main(["report", "--batch", "no-such-batch", "--output", str(tmp_path / "x.html")]) == 2
    assert capsys.readouterr().err == "error: No recorded batch no-such-batch.\n"
    assert not (tmp_path / "x.html").exists()


def test_model_card_as_html(models_dir: Path, tmp_path: Path) -> None:
    bundle = bundle_of(models_dir, "l2")
    out = tmp_path / "card.html"
    assert main(["models", "card", bundle.version, "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and bundle.version in text
    assert EXTERNAL.search(text) is None
    from core.text import safe_text

    for limit in bundle.card.limitations():
        assert safe_text(limit, html_only=True) in text

"""Scoring keeps every row accounted for, chunks don't change results, CSVs are formula-safe."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.reading import read_table
from tests.conftest import bundle_of
from core.scoring import PREDICTED, PROBABILITY, neutralise, score_file, score_frame, to_csv_bytes
from core.synthetic import sample_applicants


@pytest.fixture(scope="module")
def bundle(models_dir: Path):
    return bundle_of(models_dir, "tuned")


def messy_applicants(n: int = 120) -> pd.DataFrame:
    raw = sample_applicants(n, random_state=11).astype(str)
    raw.loc[3, "STATUS"] = "7"
    raw.loc[10, "ASK_AMT"] = "-1"
    raw.loc[50, "AFFILIATION"] = ""
    raw.loc[60, "CLASSIFICATION"] = "C9999"
    return raw


def test_output_is_input_plus_probability_and_decision(bundle) -> None:
    raw = messy_applicants()
    result = score_frame(bundle, raw)
    assert list(result.scored.columns) == list(raw.columns) + [PROBABILITY, PREDICTED]
    p = result.scored[PROBABILITY]
    assert p.between(0, 1).all()
    assert (result.scored[PREDICTED] == (p >= bundle.threshold).astype(int)).all()
    # input columns unchanged
    kept = raw.drop(index=[3, 10, 50]).reset_index(drop=True)
    pd.testing.assert_frame_equal(result.scored[raw.columns], kept)


def test_rows_are_conserved(bundle) -> None:
    result = score_frame(bundle, messy_applicants())
    assert result.report.n_accepted + result.report.n_rejected == 120
    assert len(result.scored) == result.report.n_accepted == 117
    assert sorted(result.report.rejected["line"]) == [5, 12, 52]
    assert 62 in set(result.report.warnings["line"])


def test_chunked_scoring_equals_one_shot(bundle, tmp_path: Path) -> None:
    raw = messy_applicants(500)
    src = tmp_path / "in.csv"
    raw.to_csv(src, index=False)
    one = score_frame(bundle, read_table(src))
    out, rej = tmp_path / "out.csv", tmp_path / "rej.csv"
    summary = score_file(bundle, src, out, rejects=rej, chunksize=37)
    chunked = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert summary.rows == 500 and summary.accepted == len(chunked) == one.report.n_accepted
    np.testing.assert_allclose(chunked[PROBABILITY].astype(float), one.scored[PROBABILITY], atol=1e-6)
    rejects = pd.read_csv(rej)
    assert list(rejects["line"]) == list(one.report.rejected["line"])
    assert summary.accepted + summary.rejected == summary.rows


def test_formula_cells_are_neutralised() -> None:
    frame = pd.DataFrame(
        {"NAME": ['=HYPERLINK("x")', "+1+1", "-2", "@SUM(A1)", "SAFE CLUB", "\tTAB"], "p": [0.1] * 6}
    )
    safe = neutralise(frame)
    assert list(safe["NAME"]) == ['\'=HYPERLINK("x")', "'+1+1", "'-2", "'@SUM(A1)", "SAFE CLUB", "'\tTAB"]
    text = to_csv_bytes(frame).decode()
    assert "\n=" not in text and ",=" not in text


def test_scored_csv_of_hostile_names_is_safe(bundle, tmp_path: Path) -> None:
    raw = sample_applicants(5).astype(str)
    raw.loc[0, "NAME"] = "=cmd|' /C calc'!A0"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    raw.to_csv(src, index=False)
    score_file(bundle, src, out)
    written = pd.read_csv(out, dtype=str)
    assert written.loc[0, "NAME"].startswith("'=")


def test_batch_metrics_only_when_target_present(bundle) -> None:
    from core.synthetic import generate

    labelled = generate(200, random_state=4).astype(str)
    result = score_frame(bundle, labelled)
    metrics = result.batch_metrics()
    assert metrics is not None and metrics["n"] == 200
    assert score_frame(bundle, labelled.drop(columns=["IS_SUCCESSFUL"])).batch_metrics() is None
    # the label is never a feature: changing it leaves probabilities unchanged
    flipped = labelled.assign(IS_SUCCESSFUL=lambda d: (1 - d["IS_SUCCESSFUL"].astype(int)).astype(str))
    np.testing.assert_array_equal(
        score_frame(bundle, flipped).scored[PROBABILITY], result.scored[PROBABILITY]
    )


def test_score_file_writes_to_a_stream(bundle) -> None:
    buf = io.StringIO()
    raw = sample_applicants(10)
    score_file(bundle, raw.to_csv(index=False).encode(), buf)
    assert len(pd.read_csv(io.StringIO(buf.getvalue()))) == 10


def test_file_without_name_column_scores_every_row_as_new_organisation(bundle) -> None:
    raw = sample_applicants(50, random_state=13).astype(str)
    without = score_frame(bundle, raw.drop(columns=["NAME"]))
    blank = score_frame(bundle, raw.assign(NAME=""))
    assert without.report.n_accepted == 50
    np.testing.assert_allclose(without.scored[PROBABILITY], blank.scored[PROBABILITY])
    assert not bundle.is_seen(raw.drop(columns=["NAME"])).any()


def test_ein_is_never_a_feature(bundle) -> None:
    raw = sample_applicants(30, random_state=14).astype(str)
    other = raw.assign(EIN=[str(10**8 + i) for i in range(30)])
    np.testing.assert_array_equal(
        score_frame(bundle, raw).scored[PROBABILITY], score_frame(bundle, other).scored[PROBABILITY]
    )

"""Scoring keeps every row accounted for with its source line, chunks don't change results, CSVs are safe."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import batch
from core.decisions import Rule
from core.scoring import PREDICTED, PROBABILITY, neutralise, to_csv_bytes
from core.synthetic import generate, sample_applicants
from tests.conftest import bundle_of


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


def upload(raw: pd.DataFrame) -> bytes:
    return raw.to_csv(index=False).encode()


def test_results_are_decision_first_in_file_order(bundle) -> None:
    raw = messy_applicants()
    scored = batch.score_upload(bundle, upload(raw), "m.csv")
    table = batch.results_frame(scored, batch.decide(scored, Rule("threshold", threshold=0.5)))
    assert list(table.columns) == [
        "source_line", "EIN", "NAME", PROBABILITY, "recommended", "reasons",
        "APPLICATION_TYPE", "AFFILIATION", "CLASSIFICATION", "USE_CASE", "ORGANIZATION", "STATUS",
        "INCOME_AMT", "SPECIAL_CONSIDERATIONS", "ASK_AMT", PREDICTED, "model_version",
    ]  # fmt: skip
    kept = raw.drop(index=[3, 10, 50]).reset_index(drop=True)
    assert table["source_line"].tolist() == [i + 2 for i in range(120) if i not in (3, 10, 50)]
    pd.testing.assert_frame_equal(table[list(raw.columns)], kept, check_dtype=False)  # cells as uploaded
    p = table[PROBABILITY]
    assert p.between(0, 1).all()
    assert (table["recommended"] == (p >= 0.5).astype(int)).all()
    assert (table[PREDICTED] == (p >= bundle.threshold).astype(int)).all()
    assert set(table["model_version"]) == {bundle.version}


def test_rows_are_conserved(bundle) -> None:
    scored = batch.score_upload(bundle, upload(messy_applicants()), "m.csv")
    assert scored.n + scored.report.n_rejected == scored.report.n_input == 120
    assert scored.n == 117
    assert batch.rejects_frame(scored.report)["source_line"].tolist() == [5, 12, 52]
    assert 62 in set(scored.report.warnings["line"])


def test_chunked_cli_scoring_equals_the_page(bundle, tmp_path: Path) -> None:
    raw = messy_applicants(500)
    src = tmp_path / "in.csv"
    raw.to_csv(src, index=False)
    page = batch.score_upload(bundle, src.read_bytes(), "in.csv")
    out, rej = tmp_path / "out.csv", tmp_path / "rej.csv"
    summary, _ = batch.score_file(bundle, src, out, rejects=rej, chunksize=37)
    chunked = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert summary.rows == 500 and summary.accepted == len(chunked) == page.n
    assert summary.accepted + summary.rejected == summary.rows
    np.testing.assert_array_equal(chunked[PROBABILITY].astype(float), page.probabilities)
    assert (
        pd.read_csv(rej)["source_line"].tolist() == batch.rejects_frame(page.report)["source_line"].tolist()
    )
    # same columns and values as the dashboard's download (no reasons asked for here)
    web = pd.read_csv(
        __import__("io").BytesIO(
            batch.results_csv(page, batch.decide(page, Rule("threshold", threshold=bundle.threshold)))
        ),
        dtype=str,
        keep_default_na=False,
    )
    assert list(web.columns) == list(chunked.columns)
    pd.testing.assert_frame_equal(web.drop(columns="reasons"), chunked.drop(columns="reasons"))


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
    batch.score_file(bundle, src, out)
    written = pd.read_csv(out, dtype=str)
    assert written.loc[0, "NAME"] == "'=cmd|' /C calc'!A0"


def test_labels_are_never_a_feature(bundle) -> None:
    labelled = generate(200, random_state=4).astype(str)
    scored = batch.score_upload(bundle, upload(labelled), "l.csv")
    assert scored.labels().tolist() == labelled["IS_SUCCESSFUL"].astype(float).tolist()
    assert (
        batch.score_upload(bundle, upload(labelled.drop(columns=["IS_SUCCESSFUL"])), "u.csv").labels() is None
    )
    flipped = labelled.assign(IS_SUCCESSFUL=lambda d: (1 - d["IS_SUCCESSFUL"].astype(int)).astype(str))
    np.testing.assert_array_equal(
        batch.score_upload(bundle, upload(flipped), "f.csv").probabilities, scored.probabilities
    )


def test_file_without_name_column_scores_every_row_as_new_organisation(bundle) -> None:
    raw = sample_applicants(50, random_state=13).astype(str)
    without = batch.score_upload(bundle, upload(raw.drop(columns=["NAME"])), "a.csv")
    blank = batch.score_upload(bundle, upload(raw.assign(NAME="")), "b.csv")
    assert without.n == 50
    np.testing.assert_allclose(without.probabilities, blank.probabilities)
    assert not bundle.is_seen(raw.drop(columns=["NAME"])).any()


def test_ein_is_never_a_feature(bundle) -> None:
    raw = sample_applicants(30, random_state=14).astype(str)
    other = raw.assign(EIN=[str(10**8 + i) for i in range(30)])
    np.testing.assert_array_equal(
        batch.score_upload(bundle, upload(raw), "a.csv").probabilities,
        batch.score_upload(bundle, upload(other), "b.csv").probabilities,
    )


def test_colliding_input_columns_keep_their_values(bundle) -> None:
    raw = sample_applicants(5).astype(str).assign(reasons="from the applicant", recommended="yes")
    scored = batch.score_upload(bundle, upload(raw), "c.csv")
    table = batch.results_frame(scored, batch.decide(scored, Rule("threshold", threshold=0.5)))
    assert table["input_REASONS"].tolist() == ["from the applicant"] * 5
    assert table["input_RECOMMENDED"].tolist() == ["yes"] * 5
    assert set(table["recommended"]) <= {0, 1}


def test_serving_never_imports_tensorflow_or_scikit_learn(models_dir: Path, tmp_path: Path) -> None:
    """Score, explain and what-if through the CLI's code path in a fresh process, and what the server
    imports at start: no TensorFlow or Keras, and no scikit-learn or scipy.stats either (training and
    model evaluation import those). Model evaluation itself never imports TensorFlow."""
    import json
    import subprocess
    import sys

    import core
    from core import config

    code = (
        "import json, sys; from core.cli import main\n"
        "assert main(['score', '--input', sys.argv[1], '--output', sys.argv[2]]) == 0\n"
        "assert main(['explain', '--input', sys.argv[1], '--output', sys.argv[3], '--rows', '5']) == 0\n"
        "import core, core.registry, core.storage; core.import_serving_code()\n"
        "roots = ('tensorflow', 'keras', 'sklearn', 'core')\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in roots or m == 'scipy.stats')\n"
        "print(json.dumps(loaded()))\n"
        "import core.evaluation\n"
        "print(json.dumps(loaded()))\n"
    )
    args = [str(config.SAMPLE_APPLICANTS), str(tmp_path / "o.csv"), str(tmp_path / "e.csv")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=config.PROJECT_ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    serving, evaluating = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert [m for m in serving if m.split(".")[0] != "core"] == []
    assert "core.training" not in serving and "core.workflow" not in serving and "core.fitting" not in serving
    assert set(core.SERVING_MODULES) <= set(serving)  # what serve.py imports at server start
    assert (
        "sklearn" in evaluating
        and [m for m in evaluating if m.split(".")[0] in ("tensorflow", "keras")] == []
    )


def test_explain_time_estimate_is_measured_per_row_on_the_batch(bundle) -> None:
    from core.explain import FieldExplainer

    scored = batch.score_upload(bundle, upload(messy_applicants()), "m.csv")
    assert scored.seconds_per_reason() is None  # nothing explained yet: no estimate is made up
    batch.add_reasons(scored, FieldExplainer(bundle), np.arange(40))
    assert scored.explained == 40
    assert 0 < scored.seconds_per_reason() == scored.explain_seconds / 40
    batch.add_reasons(scored, FieldExplainer(bundle), np.arange(50))  # 40 already have reasons
    assert scored.explained == 50


def test_memory_janitor_frees_garbage_cycles_until_stopped() -> None:
    import gc
    import threading
    import weakref

    class Node:
        pass

    gc.disable()  # only the janitor may collect here
    try:
        node = Node()
        node.self = node  # a reference cycle, as a page run's namespace is
        alive = weakref.ref(node)
        del node
        assert alive() is not None  # refcounting alone never frees a cycle
        stop = threading.Event()
        thread = batch.start_memory_janitor(interval=0.05, stop=stop)
        deadline = time.monotonic() + 10
        while alive() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert alive() is None
        stop.set()
        thread.join(5)
        assert not thread.is_alive()
    finally:
        gc.enable()


def test_frozen_objects_are_left_out_of_collections_and_later_cycles_are_still_freed() -> None:
    import gc
    import weakref

    class Node:
        pass

    before = gc.get_freeze_count()  # a page warm-up in this process may have frozen some already
    old = Node()
    old.self = old  # alive at the freeze: a cycle that collections must leave alone
    kept = weakref.ref(old)
    try:
        batch.freeze_long_lived()
        assert (
            gc.get_freeze_count() > before
        )  # what was made since (everything imported, when nothing was frozen)
        del old
        node = Node()
        node.self = node  # made after the freeze: a cycle the next collection frees
        alive = weakref.ref(node)
        del node
        assert alive() is not None
        gc.collect()
        assert alive() is None
        # the frozen cycle is out of collections (the freeze count itself may fall meanwhile: frozen
        # objects that other threads release by reference counting leave it)
        assert kept() is not None
    finally:
        gc.unfreeze()
        gc.collect()
    assert kept() is None  # unfrozen, the next collection frees it


def test_a_held_file_is_packed_and_gives_back_the_same_bytes(bundle) -> None:
    import hashlib

    data = upload(sample_applicants(400, random_state=12))
    held = batch.HeldFile.of("held.csv", data)
    assert (held.name, held.size, held.sha256) == ("held.csv", len(data), hashlib.sha256(data).hexdigest())
    assert held.data() == data
    assert len(held.packed) < len(data) // 3
    again = batch.score_upload(bundle, held.data(), held.name).probabilities
    np.testing.assert_array_equal(again, batch.score_upload(bundle, data, "x.csv").probabilities)

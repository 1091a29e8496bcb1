"""The CLI contract: train, score, evaluate; user errors are one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core import config
from core.cli import main
from core.synthetic import generate, sample_applicants


def run_io(command: str, source: object, output: object, models: object, *extra: str) -> int:
    """``python -m core COMMAND --input SOURCE --output OUTPUT --models-dir MODELS ...``."""
    io = ["--input", str(source), "--output", str(output), "--models-dir", str(models)]
    return main([command, *io, *extra])


def test_train_score_evaluate(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SCREENING_HOME", str(tmp_path))  # a fresh installation: training makes its key
    history = tmp_path / "history.csv"
    generate(800, random_state=9).to_csv(history, index=False)
    models = tmp_path / "models"
    argv = ["train", "--data", str(history), "--models-dir", str(models), "--variants", "baseline,tuned",
            "--seed", "1", "--max-epochs", "3", "--quiet", "--grouped"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.split()
    assert [v.split("-")[0] for v in printed] == ["baseline", "tuned"]
    assert {p.name for p in models.iterdir() if not p.name.startswith(".")} == {
        "baseline",
        "tuned",
        "registry.json",
    }
    tuned = json.loads((models / "tuned" / printed[1] / "meta.json").read_text())
    assert (
        tuned["metrics"]["grouped"]["split"] == "grouped by NAME"
        and 0 <= tuned["metrics"]["grouped"]["accuracy"] <= 1
    )
    assert tuned["epochs_run"] <= 3

    assert main(["models", "list", "--models-dir", str(models), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in listing] == printed
    assert [r["live"] for r in listing].count(True) == 1
    for r in listing:
        assert r["synthetic"] is False and 0 <= r["metrics"]["accuracy"] <= 1 and r["created"][:4] == "2026"

    applicants = tmp_path / "applicants.csv"
    raw = sample_applicants(40).astype(str)
    raw.loc[5, "STATUS"] = "x"
    raw.to_csv(applicants, index=False)
    scored, rejects = tmp_path / "scored.csv", tmp_path / "rejects.csv"
    assert (
        run_io("score", applicants, scored, models, "--variant", "baseline", "--rejects", str(rejects)) == 0
    )
    result = pd.read_csv(scored, keep_default_na=False)
    assert list(result.columns[:6]) == [
        "source_line",
        "EIN",
        "NAME",
        "success_probability",
        "recommended",
        "reasons",
    ]
    assert list(result.columns[-2:]) == ["predicted_success", "model_version"]
    assert len(result) == 39 and set(result["model_version"]) == {printed[0]}
    assert 7 not in set(result["source_line"]) and result["source_line"].tolist() == [
        n for n in range(2, 42) if n != 7
    ]
    assert (result["reasons"] != "").all()  # a small file: every row explained
    rej = pd.read_csv(rejects)
    assert rej["source_line"].tolist() == [7] and "STATUS must be 0 or 1" in rej["reason"][0]
    again = tmp_path / "again.csv"
    assert run_io("score", applicants, again, models, "--variant", "baseline") == 0
    assert again.read_bytes() == scored.read_bytes()

    labelled = tmp_path / "labelled.csv"
    generate(300, random_state=10).to_csv(labelled, index=False)
    capsys.readouterr()
    assert main(["evaluate", "--input", str(labelled), "--models-dir", str(models)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 300 and report["version"] == next(r["version"] for r in listing if r["live"])
    assert 0 <= report["overall"]["accuracy"] <= 1
    assert {"seen_organisations", "new_organisations"} <= set(report)


def test_models_promote_rollback_remove_card(home_copy: Path, tmp_path: Path, capsys) -> None:
    home = home_copy
    models = home / "models"
    assert main(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    live = next(r["version"] for r in listing if r["live"])
    other = next(r["version"] for r in listing if not r["live"])
    assert main(["models", "promote", other]) == 2
    assert "needs a reason" in capsys.readouterr().err
    assert main(["models", "promote", other, "--reason", "better calibrated", "--user", "ana"]) == 0
    assert main(["models", "list", "--json"]) == 0
    assert next(r["version"] for r in json.loads(capsys.readouterr().out) if r["live"]) == other
    assert main(["models", "remove", other]) == 2
    assert "is the live model" in capsys.readouterr().err
    assert main(["models", "rollback", "--reason", "staff asked", "--user", "ana"]) == 0
    registry_log = json.loads((models / "registry.json").read_text())["events"]
    assert [(e["action"], e["version"], e["user"]) for e in registry_log[1:]] == [
        ("promote", other, "ana"),
        ("rollback", live, "ana"),
    ]
    # a version that scored a recorded batch is kept
    src, out = tmp_path / "a.csv", tmp_path / "o.csv"
    sample_applicants(20).to_csv(src, index=False)
    capsys.readouterr()
    assert run_io("score", src, out, models, "--version", other, "--record", "--user", "sam") == 0
    batch_id = capsys.readouterr().out.strip()
    assert len(batch_id) == 36
    assert run_io("score", src, out, models, "--version", other, "--record", "--user", "sam") == 2
    assert f"as batch {batch_id}" in capsys.readouterr().err
    assert main(["models", "remove", other]) == 2
    assert "scored recorded batches" in capsys.readouterr().err
    unused = next(r["version"] for r in listing if r["version"] not in (live, other))
    assert main(["models", "remove", unused]) == 0
    card = tmp_path / "card.md"
    assert main(["models", "card", live, "--output", str(card)]) == 0
    text = card.read_text()
    assert text.startswith(f"# Model card: {live}") and "## Limitations" in text and "synthetic" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "--input", "/nonexistent.csv", "--output", "/tmp/x.csv"], "not found"),
        (["train", "--variants", "baseline,nope"], "unknown variant"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys, models_dir: Path) -> None:
    assert main([*argv, "--models-dir", str(models_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_score_without_models_explains_how_to_train(tmp_path: Path, capsys) -> None:
    src = tmp_path / "a.csv"
    sample_applicants(5).to_csv(src, index=False)
    assert run_io("score", src, tmp_path / "o.csv", tmp_path / "none") == 2
    assert "python -m core train" in capsys.readouterr().err


def test_module_entry_point_exits_nonzero_on_bad_file(tmp_path: Path, models_dir: Path) -> None:
    bad = tmp_path / "image.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "score",
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "o.csv"),
            "--models-dir",
            str(models_dir),
        ],
        capture_output=True,
        text=True,
        cwd=config.PROJECT_ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "PNG image" in proc.stderr and "Traceback" not in proc.stderr


def test_sample_file_is_synthetic_and_scorable(models_dir: Path, tmp_path: Path) -> None:
    sample = pd.read_csv(config.SAMPLE_APPLICANTS)
    assert 100 <= len(sample) <= 1000 and "IS_SUCCESSFUL" not in sample
    out = tmp_path / "o.csv"
    assert run_io("score", config.SAMPLE_APPLICANTS, out, models_dir) == 0
    assert len(pd.read_csv(out)) == len(sample)


def test_columns_command_prints_the_column_guide(capsys) -> None:
    import io

    from core.schema import COLUMN_NOTES, column_guide

    assert main(["columns"]) == 0
    captured = capsys.readouterr()
    printed = pd.read_csv(io.StringIO(captured.out), dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(printed, column_guide())
    assert captured.err == COLUMN_NOTES + "\n"


def test_explain_command(models_dir: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "a.csv", tmp_path / "e.csv"
    sample_applicants(30).to_csv(src, index=False)
    assert run_io("explain", src, out, models_dir, "--variant", "tuned", "--rows", "12") == 0
    frame = pd.read_csv(out)
    assert len(frame) == 12
    shap_cols = [c for c in frame.columns if c.startswith("shap_")]
    assert "shap_NAME" in shap_cols and "shap_ASK_AMT" in shap_cols
    total = frame["base_value"] + frame[shap_cols].sum(axis=1)
    assert (total - frame["success_probability"]).abs().max() < 1e-5
    assert frame["reasons"].str.contains("the chance by").any()


def test_ensure_models_retrains_only_missing_variants(home_copy: Path, tmp_path: Path, capsys) -> None:
    from core.registry import list_versions, live_version

    home = home_copy
    models = home / "models"
    before, _ = list_versions(models)
    live = live_version(models)
    broken = next(v for v, c in before.items() if c.variant == "baseline")
    (models / "baseline" / broken / "network.npz").write_bytes(b"broken")
    assert main(["ensure-models", "--models-dir", str(models), "--quiet", "--max-epochs", "2"]) == 0
    after, errors = list_versions(models, every_file=True)
    assert list(errors) == [f"baseline/{broken}"]  # kept and reported, never deleted
    new = set(after) - set(before)
    assert [after[v].variant for v in new] == ["baseline"]
    assert live_version(models) == live
    assert f"Not loadable, kept as it is: baseline/{broken}" in capsys.readouterr().err


def test_failed_output_write_leaves_no_truncated_file(models_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A full disk mid-way through: the previous output stays whole and no temporary file is left."""
    import errno

    from core import batch
    from tests.conftest import bundle_of

    src, out = tmp_path / "a.csv", tmp_path / "scored.csv"
    sample_applicants(50).to_csv(src, index=False)
    out.write_text("previous results\n")
    real = pd.DataFrame.to_csv
    calls = []

    def full_disk(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(OSError, match="No space left"):
        batch.score_file(bundle_of(models_dir, "baseline"), src, out, chunksize=10)
    assert len(calls) == 3
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "scored.csv"]


def test_large_file_gets_reasons_for_its_most_likely_rows(models_dir: Path, tmp_path: Path) -> None:
    """Several chunks: the rows with reasons are exactly those the dashboard picks."""
    from core import batch
    from core.explain import FieldExplainer
    from tests.conftest import bundle_of

    src, out = tmp_path / "a.csv", tmp_path / "o.csv"
    sample_applicants(1500, random_state=3).to_csv(src, index=False)
    bundle = bundle_of(models_dir, "tuned")
    summary, _ = batch.score_file(bundle, src, out, explainer=FieldExplainer(bundle), chunksize=400)
    frame = pd.read_csv(out, keep_default_na=False)
    assert summary.accepted == len(frame) == 1500
    expected = batch.reason_positions(
        frame["success_probability"].to_numpy(), frame["source_line"].to_numpy()
    )
    assert len(expected) == batch.TOP_REASONS
    assert (frame["reasons"] != "").to_numpy().nonzero()[0].tolist() == expected.tolist()
    page = batch.score_upload(bundle, src.read_bytes(), "a.csv")
    np_equal = (page.probabilities == frame["success_probability"].to_numpy()).all()
    assert np_equal and (page.source_lines == frame["source_line"].to_numpy()).all()


def test_recorded_batch_rescored_with_its_version_is_byte_identical(
    home_copy: Path, tmp_path: Path, capsys
) -> None:
    from core import registry, storage

    home = home_copy
    models = home / "models"
    src, out, again = tmp_path / "a.csv", tmp_path / "o.csv", tmp_path / "again.csv"
    sample_applicants(60, random_state=8).to_csv(src, index=False)
    capsys.readouterr()
    assert run_io("score", src, out, models, "--record", "--user", "sam") == 0
    batch_id = capsys.readouterr().out.strip()
    record = storage.get_batch(batch_id)
    assert record.version == registry.live_version(models) and record.live == 1
    other = registry.resolve_version(models, variant="baseline")
    registry.promote(models, other, "ana", "a later promotion")
    assert run_io("score", src, again, models, "--version", record.version) == 0
    assert again.read_bytes() == storage.batch_files(batch_id)[0] == out.read_bytes()


def test_scoring_while_training_and_promoting_gives_one_version_per_batch(
    home_copy: Path, tmp_path: Path
) -> None:
    import threading

    from core import registry

    home = home_copy
    models = home / "models"
    history = tmp_path / "h.csv"
    generate(600, random_state=3).to_csv(history, index=False)
    trainer = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--data", str(history), "--models-dir", str(models),
         "--variants", "baseline,l2", "--max-epochs", "2", "--quiet"],
        cwd=config.PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    live = registry.live_version(models)
    versions = [registry.resolve_version(models, variant="baseline"), live]  # flip away from live first
    stop = threading.Event()
    flips: list[str] = []
    errors: list[BaseException] = []

    def flip() -> None:
        i = 0
        while not stop.is_set():
            try:
                flips.append(registry.promote(models, versions[i % 2], "ana", f"flip {i}").version)
            except BaseException as err:  # reported by the assertion below
                errors.append(err)
                return
            i += 1
            time.sleep(0.05)

    flipper = threading.Thread(target=flip)
    flipper.start()
    src = tmp_path / "a.csv"
    sample_applicants(200, random_state=2).to_csv(src, index=False)
    seen = []
    training_while_scoring = []
    try:
        for i in range(8):
            out = tmp_path / f"o{i}.csv"
            assert run_io("score", src, out, models) == 0
            training_while_scoring.append(trainer.poll() is None)
            seen.append(set(pd.read_csv(out)["model_version"]))
    finally:
        stop.set()
        flipper.join()
        trainer.wait(300)
    assert trainer.returncode == 0
    assert training_while_scoring[0] is True  # the training run was still going when a file was scored
    assert errors == [] and len(flips) >= 4  # the live version really moved while files were scored
    assert all(len(s) == 1 and s <= set(versions) for s in seen)

"""The CLI contract: train, score, evaluate; user errors are one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_train_score_evaluate(tmp_path: Path, capsys) -> None:
    history = tmp_path / "history.csv"
    generate(800, random_state=9).to_csv(history, index=False)
    models = tmp_path / "models"
    assert (
        main(
            [
                "train",
                "--data",
                str(history),
                "--models-dir",
                str(models),
                "--variants",
                "baseline,tuned",
                "--seed",
                "1",
                "--quiet",
                "--grouped",
            ]
        )
        == 0
    )
    assert {p.name for p in models.iterdir() if not p.name.startswith(".")} == {"baseline", "tuned"}
    grouped = json.loads((models / "tuned" / "meta.json").read_text())["metrics"]["grouped"]
    assert grouped["split"] == "grouped by NAME" and 0 <= grouped["accuracy"] <= 1
    out = capsys.readouterr().out
    assert "baseline" in out and "acc" in out

    applicants = tmp_path / "applicants.csv"
    raw = sample_applicants(40).astype(str)
    raw.loc[5, "STATUS"] = "x"
    raw.to_csv(applicants, index=False)
    scored, rejects = tmp_path / "scored.csv", tmp_path / "rejects.csv"
    options = ["--variant", "baseline", "--rejects", str(rejects)]
    assert run_io("score", applicants, scored, models, *options) == 0
    result = pd.read_csv(scored)
    assert len(result) == 39 and {"success_probability", "predicted_success"} <= set(result.columns)
    assert len(pd.read_csv(rejects)) == 1

    labelled = tmp_path / "labelled.csv"
    generate(300, random_state=10).to_csv(labelled, index=False)
    capsys.readouterr()
    assert main(["evaluate", "--input", str(labelled), "--models-dir", str(models)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 300
    assert 0 <= report["overall"]["accuracy"] <= 1
    assert {"seen_organisations", "new_organisations"} <= set(report)


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


def test_ensure_models_retrains_only_damaged_ones(models_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(models_dir.parent, home)
    models = home / "models"
    before = {v: json.loads((models / v / "meta.json").read_text())["version"] for v in ("baseline", "tuned")}
    (models / "baseline" / "model.keras").write_bytes(b"broken")
    assert main(["ensure-models", "--models-dir", str(models), "--quiet"]) == 0
    after = {v: json.loads((models / v / "meta.json").read_text())["version"] for v in ("baseline", "tuned")}
    assert after["baseline"] != before["baseline"] and after["tuned"] == before["tuned"]
    assert "Retraining damaged models: baseline" in capsys.readouterr().err

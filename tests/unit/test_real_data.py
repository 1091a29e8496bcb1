"""Integration on the real Alphabet Soup history (present in CI under ../shared)."""

from __future__ import annotations

import pytest

from core import config
from core.workflow import load_training_data, train_variants

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not config.SHARED_TRAIN_CSV.exists(), reason="real history not available"),
]


def test_baseline_reaches_the_published_accuracy(tmp_path) -> None:
    data = load_training_data(config.SHARED_TRAIN_CSV)
    card = train_variants(data, ["baseline"], seed=0, models_dir=tmp_path)["baseline"]
    acc = card.test_accuracy
    assert 0.70 <= acc <= 0.75, acc
    assert card.training_data.rows == len(data.frame) > 27000 and card.synthetic is False

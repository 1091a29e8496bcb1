"""Alphabet Soup Screening core: everything the dashboard does, without any UI."""

import os

# Quiet TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # also keeps CPU results reproducible
# Arrow (pandas' string columns) allocates through malloc, so memory freed after a large upload can
# be handed back to the system (core.batch.release_memory) instead of staying in Arrow's own pool.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

SERVING_MODULES = (
    "core.batch",
    "core.explain",
    "core.features",
    "core.groups",
    "core.plots",
    "core.report",
    "core.whatif",
)
# imported on first use by them: the data checks of every batch (scipy.special, 0.3 s) and the first
# read of the batch record (the SQLite dialect, when the record is a SQLite file)
SERVING_LIBRARIES = ("scipy.special", "sqlalchemy.dialects.sqlite")


def import_serving_code() -> None:
    """Import what scoring, explaining and the pages' sections use (pandas, pyarrow, SciPy's sparse
    matrices and special functions, SQLAlchemy's SQLite dialect, Plotly; about 1.5 s on a cold
    start), so a server can do it before its first upload. Also builds one small chart: Plotly loads
    and validates its chart template on first use (0.4 s). Never TensorFlow or scikit-learn: only
    training and model evaluation import them."""
    import importlib

    for name in (*SERVING_MODULES, *SERVING_LIBRARIES):
        importlib.import_module(name)
    from core import plots

    plots.figure_summary(plots.score_histogram([0.5], 0.5))

"""The baselines a candidate is judged against, and how each is evaluated: scikit-learn's Dummy model, fitted on
the same training target (a classifier predicts the class prior, ``strategy="prior"``; a regressor the training
mean), and the champion. Each is scored on the candidate's holdout in this process and evaluated exactly as the
candidate is (``mlsteps.evaluation``), on a run of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsteps.schema import SchemaConfig

if TYPE_CHECKING:
    from mlsteps.evaluation import Evaluation


def fit_dummy(schema: SchemaConfig, train_target: Any) -> Any:
    """A Dummy model fitted on the training target (it never looks at the features)."""
    import numpy as np
    from sklearn.dummy import DummyClassifier, DummyRegressor

    dummy = DummyClassifier(strategy="prior") if schema.is_classification else DummyRegressor(strategy="mean")
    return dummy.fit(np.zeros((len(train_target), 1)), train_target)


def evaluate_baseline(model: Any, data: Any, schema: SchemaConfig, plots: bool) -> dict[str, float]:
    """A fitted baseline ``model`` scored and evaluated on the MLflow dataset ``data`` (features and target),
    logged on the active run: its metrics."""
    from mlsteps.evaluation import evaluate, score

    frame = data.df
    evaluation = evaluate(schema, score(model, frame.drop(columns=[data.targets]), frame[data.targets]), plots)
    log_baseline(evaluation, data)
    return evaluation.metrics


def log_baseline(evaluation: Evaluation, data: Any) -> None:
    """A baseline's evaluation on the active run, with the holdout it was measured on as the run's
    ``evaluation`` input."""
    from mlsteps.evaluation_log import log_evaluation
    from mlsteps.lineage import log_input

    log_input(data, "evaluation")
    log_evaluation(evaluation, data)

"""train_model transforms on tiny inline frames, and estimators named by import path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlsteps.errors import ConfigError, DataValidationError
from mlsteps.schema import SchemaConfig

from src.data.make_dataset import clean_data
from src.features.build_features import build_features
from src.models.train_model import TrainModelParams, build_model, feature_frame, model_features, train_model

ESTIMATORS = {
    "logistic_regression": {"class": "sklearn.linear_model.LogisticRegression"},
    "random_forest": {"class": "sklearn.ensemble.RandomForestClassifier"},
    "gradient_boosting": {"class": "sklearn.ensemble.HistGradientBoostingClassifier"},
}


@pytest.fixture
def train(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> pd.DataFrame:
    return build_features(clean_data(dummy_raw, schema, make_params)[0], schema)


@pytest.fixture
def features(train: pd.DataFrame, schema: SchemaConfig) -> list[str]:
    return model_features(train, schema)


def _params(estimator: str = "logistic_regression", **hyperparameters) -> TrainModelParams:
    return TrainModelParams(estimator=estimator, estimators=ESTIMATORS, set_params=hyperparameters, seed=1)


@pytest.mark.parametrize(
    ("estimator", "hyperparameters"),
    [
        ("logistic_regression", {"C": 0.5, "max_iter": 500}),
        ("random_forest", {"n_estimators": 10}),
        ("gradient_boosting", {"max_iter": 10, "min_samples_leaf": 2}),
        ("sklearn.ensemble.ExtraTreesClassifier", {"n_estimators": 5}),
    ],
)
def test_each_estimator_fits_raw_columns(train, features, estimator: str, hyperparameters: dict) -> None:
    model = train_model(train, _params(estimator, **hyperparameters), features, "outcome")

    probabilities = model.predict_proba(feature_frame(train, features))
    assert probabilities.shape == (12, 2)
    assert set(model.predict(feature_frame(train, features))) <= {"no", "yes"}


def test_model_features_are_what_feat_data_wrote(train, features, schema) -> None:
    assert features == ["age", "visits", "plan"]
    derived = train.assign(age_per_visit=train["age"] / (train["visits"] + 1)).drop(columns=["plan"])

    assert model_features(derived, schema) == ["age", "visits", "age_per_visit"]


def test_model_handles_missing_values_and_unseen_categories(train, features) -> None:
    model = train_model(train, _params(), features, "outcome")
    batch = feature_frame(train, features).head(2).copy()
    batch.loc[0, "age"] = np.nan
    batch.loc[1, "plan"] = "enterprise"

    assert len(model.predict(batch)) == 2


def test_same_seed_same_model(train, features) -> None:
    first = train_model(train, _params("random_forest", n_estimators=5), features, "outcome")
    second = train_model(train, _params("random_forest", n_estimators=5), features, "outcome")

    X = feature_frame(train, features)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_seed_is_passed_to_the_estimator() -> None:
    model = build_model(_params("random_forest"), ["age"], [])

    assert model.named_steps["estimator"].random_state == 1


def test_unknown_hyperparameter_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        _params(Cee=1.0)

    message = str(caught.value)
    assert "['Cee']" in message
    assert "LogisticRegression" in message
    assert "max_iter" in message


def test_invalid_hyperparameter_value_is_refused_by_scikit_learns_validation() -> None:
    with pytest.raises(ConfigError) as caught:
        _params(C=-1.0)

    assert "'C' parameter of LogisticRegression must be a float in the range (0.0, inf]" in str(caught.value)


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("xgb", "neither a name under train_model.estimators"),
        ("no_such_package.Model", "cannot import 'no_such_package'"),
        ("sklearn.ensemble.NoSuchForest", "has no class 'NoSuchForest'"),
        ("sklearn.preprocessing.StandardScaler.__class__", "cannot import"),
        ("collections.OrderedDict", "is not a scikit-learn-compatible estimator"),
    ],
)
def test_bad_estimator_names_say_what_is_wrong(estimator: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _params(estimator)

    assert expected in str(caught.value)


def test_estimator_package_is_recorded_with_its_version() -> None:
    import sklearn

    assert _params("sklearn.ensemble.ExtraTreesClassifier").estimator_package == f"scikit-learn=={sklearn.__version__}"


def test_training_data_without_target_is_rejected(train, features) -> None:
    with pytest.raises(DataValidationError) as caught:
        train_model(train.drop(columns=["outcome"]), _params(), features, "outcome")

    assert "lacks columns ['outcome']" in str(caught.value)


def test_a_regressor_learns_a_numeric_target(train, features) -> None:
    numeric = train.assign(outcome=[float(i) for i in range(len(train))])
    params = TrainModelParams(estimator="sklearn.linear_model.Ridge", seed=1)

    model = train_model(numeric, params, features, "outcome")

    assert model.predict(feature_frame(numeric, features)).dtype == "float64"


@pytest.mark.parametrize(
    ("estimator", "matrix_dtype", "expected"),
    [
        ("logistic_regression", "auto", "float32"),
        ("sklearn.linear_model.Ridge", "auto", "float64"),
        ("logistic_regression", "float64", "float64"),
        ("sklearn.linear_model.Ridge", "float32", "float32"),
    ],
)
def test_the_fitted_matrix_has_the_configured_type_and_leaves_the_data_as_it_was(
    train, features, estimator, matrix_dtype, expected
) -> None:
    target = train["outcome"] if estimator == "logistic_regression" else train["age"].fillna(0.0)
    data = train.assign(outcome=target)
    before = data.copy()
    params = TrainModelParams(estimator=estimator, estimators=ESTIMATORS, matrix_dtype=matrix_dtype, seed=1)

    model = train_model(data, params, features, "outcome")

    assert params.resolved_matrix_dtype() == expected
    assert model[:-1].transform(feature_frame(data, features)).dtype == expected
    pd.testing.assert_frame_equal(data, before)  # imputing and scaling in place never touch the caller's frame


class _Tagless:
    """A classifier in the duck-typed sense only: no scikit-learn base class, so no tags to say what it is."""

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict:
        return {"random_state": self.random_state}

    def fit(self, X, y) -> _Tagless:
        self.seen_dtype_ = X.dtype
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_auto_keeps_float64_for_an_estimator_without_tags(train, features) -> None:
    params = TrainModelParams(estimator=f"{__name__}._Tagless", seed=1)

    model = train_model(train, params, features, "outcome")

    assert params.resolved_matrix_dtype() == "float64"
    assert model.named_steps["estimator"].seen_dtype_ == "float64"


def test_a_float32_model_takes_nullable_columns_as_the_float64_one_does(train, features) -> None:
    X = feature_frame(train, features)
    nullable = X.assign(visits=pd.array([None, *X["visits"].iloc[1:].astype(int)], dtype="Int64"))
    as_nan = X.assign(visits=[np.nan, *X["visits"].iloc[1:]])
    model = train_model(train, _params(), features, "outcome")

    assert model.predict_proba(nullable).tolist() == model.predict_proba(as_nan).tolist()


def test_a_float32_matrix_gives_the_float64_models_predictions(train, features) -> None:
    X = feature_frame(train, features)
    narrow = train_model(train, _params(), features, "outcome")
    wide = train_model(
        train, TrainModelParams(estimators=ESTIMATORS, matrix_dtype="float64", seed=1), features, "outcome"
    )

    assert narrow.predict(X).tolist() == wide.predict(X).tolist()
    np.testing.assert_allclose(narrow.predict_proba(X), wide.predict_proba(X), atol=1e-5)


def test_feature_frame_keeps_only_features_in_order(train, features) -> None:
    X = feature_frame(train[["plan", "outcome", "visits", "id", "age"]], features)

    assert list(X.columns) == ["age", "visits", "plan"]
    assert X["visits"].dtype == "float64"


def test_feature_frame_turns_nullable_ints_and_bools_into_floats() -> None:
    df = pd.DataFrame(
        {
            "age": [1.0, None],
            "visits": pd.array([3, None], dtype="Int64"),
            "plan": ["pro", None],
            "member": pd.array([True, None], dtype="boolean"),
        }
    )

    X = feature_frame(df.astype({"plan": "category"}), ["age", "visits", "plan", "member"])

    assert X["visits"].dtype == "float64"
    assert X["member"].dtype == "float64"
    assert np.isnan(X.loc[1, "visits"])
    assert X["plan"].tolist() == ["pro", None]


def _imbalanced(rows: int = 1000) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype=float), "y": np.where(np.arange(rows) % 10 == 0, "rare", "common")})


def test_a_sample_keeps_the_class_shares_and_is_seeded() -> None:
    from src.models.train_model import sample_training_rows

    data = _imbalanced()

    sample, how = sample_training_rows(data, 200, seed=3, target="y", stratify=True)
    again, _ = sample_training_rows(data, 200, seed=3, target="y", stratify=True)
    other, _ = sample_training_rows(data, 200, seed=4, target="y", stratify=True)

    assert how == "stratified"
    assert len(sample) == 200
    assert (sample["y"] == "rare").sum() == 20
    pd.testing.assert_frame_equal(sample, again)
    assert set(sample.index) != set(other.index)
    assert set(sample.index) <= set(data.index)


@pytest.mark.parametrize(
    ("max_rows", "stratify", "rows", "how"),
    [(None, True, 1000, "all"), (1000, True, 1000, "all"), (5000, True, 1000, "all"), (300, False, 300, "random")],
)
def test_no_sample_unless_there_are_more_rows_than_asked(max_rows, stratify: bool, rows: int, how: str) -> None:
    from src.models.train_model import sample_training_rows

    sample, chosen = sample_training_rows(_imbalanced(), max_rows, seed=0, target="y", stratify=stratify)

    assert (len(sample), chosen) == (rows, how)


def test_a_class_of_one_row_keeps_its_row_in_a_stratified_sample() -> None:
    from src.models.train_model import sample_training_rows

    data = _imbalanced().assign(y=["lone"] + ["common"] * 999)

    sample, how = sample_training_rows(data, 100, seed=0, target="y", stratify=True)

    assert (len(sample), how) == (100, "stratified")
    assert (sample["y"] == "lone").sum() == 1


def test_a_sample_is_the_same_rows_whatever_their_order() -> None:
    from src.models.train_model import sample_training_rows

    data = _imbalanced()

    sample, _ = sample_training_rows(data, 200, seed=3, target="y", stratify=True, keys=["x"])
    shuffled, _ = sample_training_rows(data.sample(frac=1, random_state=0), 200, 3, "y", True, keys=["x"])

    assert set(shuffled["x"]) == set(sample["x"])


def test_max_train_rows_must_leave_two_rows() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TrainModelParams(estimators=ESTIMATORS, max_train_rows=1)

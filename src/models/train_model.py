"""train_model: the train split in, a fitted scikit-learn Pipeline out (the pipeline logs, evaluates and registers it).

The model's inputs are the columns feat_data produced (all but the id and the label), so a feature transform
there can add or drop model inputs; numeric columns are imputed and scaled, the others imputed and one-hot
encoded, inside the model, so a served model takes the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from mlsteps.dask_scoring import score_holdout
from mlsteps.engine import is_dask
from mlsteps.errors import ConfigError, DataValidationError
from mlsteps.estimators import build_estimator, distribution_of
from mlsteps.row_keys import Chooser, allocate
from mlsteps.schema import SchemaConfig
from mlsteps.step import ModelOutput, Step, StepContext, StepOutput, StepParams
from pydantic import Field, computed_field, model_validator

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


class EstimatorSpec(StepParams):
    # Import path of a scikit-learn-compatible estimator class.
    class_: str = Field(alias="class")
    # Its constructor arguments.
    params: dict[str, Any] = Field(default_factory=dict)


class TrainModelParams(StepParams):
    # A name under `estimators`, or an import path (sklearn.ensemble.ExtraTreesClassifier).
    estimator: str = "logistic_regression"
    estimators: dict[str, EstimatorSpec] = Field(default_factory=dict)
    # Applied over the chosen estimator's params (what --param KEY=VALUE sets).
    set_params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    # Fit on at most this many training rows, a seeded sample (stratified on the target for a classifier), so that
    # a dataset of tens of millions of rows trains on one machine; null: every row. Evaluation uses the whole test
    # split either way.
    max_train_rows: int | None = Field(None, ge=2)
    # The number type of the matrix the estimator is fitted on (after imputing, scaling and one-hot encoding):
    # float32 holds it in half the memory of float64, keeping about 7 significant digits of each value as it
    # comes in. auto: float32 for a classifier, float64 for a regressor (a linear one predicts in its matrix's
    # type) and for an estimator that does not say which it is.
    matrix_dtype: Literal["auto", "float32", "float64"] = "auto"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimator_class(self) -> str:
        spec = self.estimators.get(self.estimator)
        if spec is not None:
            return spec.class_
        if "." in self.estimator:
            return self.estimator
        raise ConfigError(
            f"train_model.estimator '{self.estimator}' is neither a name under train_model.estimators "
            f"({', '.join(self.estimators) or 'none'}) nor an import path like sklearn.ensemble.ExtraTreesClassifier"
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimator_package(self) -> str:
        """The distribution (and version) the estimator comes from: part of the cache key and the run's params."""
        return distribution_of(self.estimator_class)

    @property
    def estimator_params(self) -> dict[str, Any]:
        """The chosen estimator's constructor arguments, --param included."""
        spec = self.estimators.get(self.estimator)
        return {**(spec.params if spec else {}), **self.set_params}

    @model_validator(mode="after")
    def _estimator_is_valid(self) -> TrainModelParams:
        self.build_estimator()  # raises ConfigError on a bad name, path or value, before any run starts
        return self

    def resolved_matrix_dtype(self, estimator: Any = None) -> Literal["float32", "float64"]:
        """``matrix_dtype`` with auto decided for the configured estimator (``estimator``, when already built):
        float32 only for a classifier."""
        from sklearn.base import is_classifier

        if self.matrix_dtype != "auto":
            return self.matrix_dtype
        try:
            classifier = is_classifier(self.build_estimator() if estimator is None else estimator)
        except (AttributeError, TypeError):  # no scikit-learn tags (not a BaseEstimator): keep full precision
            classifier = False
        return "float32" if classifier else "float64"

    def build_estimator(self) -> Any:
        where = (
            f"train_model.estimators.{self.estimator}" if self.estimator in self.estimators else "train_model.estimator"
        )
        return build_estimator(self.estimator_class, self.estimator_params, self.seed, where)


def model_features(df: pd.DataFrame, schema: SchemaConfig) -> list[str]:
    """The model's inputs: every column of the split but the id and the target, in order."""
    return [c for c in df.columns if c not in (schema.target, schema.id_column)]


def feature_frame(df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Only the feature columns: what the model is fitted on and served with.

    Numeric columns become float64 (an int column with a missing value would break MLflow's input schema at
    serving time) and the others plain object columns, which every serving path (JSON, CSV) reproduces.
    """
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    X = df.loc[:, features]  # shares the columns it keeps as they are: only converted ones take new memory
    numeric = [c for c in features if is_numeric_dtype(X[c]) or is_bool_dtype(X[c])]
    converted = {c: X[c].to_numpy(dtype="float64", na_value=np.nan) for c in numeric if X[c].dtype != "float64"}
    converted |= {c: X[c].astype("object").where(X[c].notna(), None) for c in features if c not in numeric}
    return X.assign(**converted)


def build_model(params: TrainModelParams, numeric: list[str], categorical: list[str]) -> Pipeline:
    """An unfitted Pipeline: imputation, scaling and one-hot encoding into a ``params.matrix_dtype`` matrix, then
    the configured estimator."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.utils import check_array

    estimator = params.build_estimator()
    dtype = params.resolved_matrix_dtype(estimator)
    transformers = []
    if numeric:
        # float32: cast first, and the imputer and the scaler work in place on that one copy of the columns
        # (check_array reads pandas' nullable columns, pd.NA, as NaN, as the float64 imputer does).
        steps: list[Any] = []
        if dtype == "float32":
            kw_args = {"dtype": dtype, "ensure_all_finite": False}
            steps.append(FunctionTransformer(check_array, kw_args=kw_args, feature_names_out="one-to-one"))
        in_place = bool(steps)
        steps += [SimpleImputer(strategy="median", copy=not in_place), StandardScaler(copy=not in_place)]
        transformers.append(("numeric", make_pipeline(*steps), numeric))
    if categorical:
        encode = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", min_frequency=5, dtype=getattr(np, dtype)),
        )
        transformers.append(("categorical", encode, categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def train_model(train: pd.DataFrame, params: TrainModelParams, features: list[str], target: str) -> Pipeline:
    """Fit the model on the training split's feature columns and target (class labels as they are written)."""
    missing = [c for c in [*features, target] if c not in train.columns]
    if missing:
        raise DataValidationError(f"the training data lacks columns {missing}: re-run feat_data with this config")
    X = feature_frame(train, features)
    numeric = [c for c in features if X[c].dtype == "float64"]
    model = build_model(params, numeric, [c for c in features if c not in numeric])
    try:
        model.fit(X, target_values(train[target]))
    except ValueError as exc:
        raise DataValidationError(f"the model cannot be fitted on this training data: {exc}") from exc
    return model


def sample_training_rows(
    train: Any, max_rows: int | None, seed: int, target: str, stratify: bool, keys: list[str] | None = None
) -> tuple[pd.DataFrame, str]:
    """``choose_training_rows`` without the count of rows there were."""
    sample, how, _ = choose_training_rows(train, max_rows, seed, target, stratify, keys)
    return sample, how


def choose_training_rows(
    train: Any, max_rows: int | None, seed: int, target: str, stratify: bool, keys: list[str] | None = None
) -> tuple[pd.DataFrame, str, int]:
    """At most ``max_rows`` rows of ``train`` (all of them when None or when there are no more), chosen by each row's
    stable key (``keys``' hash, seeded: ``mlsteps.row_keys``): stratified on ``target`` when asked (each class keeps
    its share, and at least one row), else the rows of the smallest keys. The same rows on either engine; a Dask
    frame's sample is gathered here.

    Returns the rows (a pandas frame), how they were chosen (``all``, ``stratified`` or ``random``) and how many
    rows there were.
    """
    dask_frame = is_dask(train)
    if max_rows is None:
        whole = train.compute() if dask_frame else train
        return whole, "all", len(whole)
    chooser = Chooser(train, keys or list(train.columns), target if stratify else None, seed)
    available = sum(chooser.counts.values())
    if available <= max_rows:
        return (train.compute() if dask_frame else train), "all", available
    limits, _ = chooser.thresholds(allocate(chooser.counts, max_rows))
    sample = chooser.choose(limits)
    return (sample.compute() if dask_frame else sample), "stratified" if stratify else "random", available


def target_values(target: pd.Series) -> Any:
    """What the model learns: class labels as plain strings (object), or the numbers of a regression target."""
    from pandas.api.types import is_numeric_dtype

    if is_numeric_dtype(target):
        return target.to_numpy(dtype="float64")
    return target.astype("object").to_numpy()


def run_train_model(ctx: StepContext[TrainModelParams], inputs: Mapping[str, Any]) -> StepOutput:
    train, test = inputs["train"], inputs["test"]
    p, schema = ctx.params, ctx.settings.dataset_schema
    features = model_features(train, schema)
    keys = [schema.id_column] if schema.id_column and schema.id_column in train.columns else None
    with ctx.phase("choosing the training rows"):
        fit_on, sampling, available = choose_training_rows(
            train, p.max_train_rows, p.seed, schema.target, schema.is_classification, keys
        )
    with ctx.phase(f"fitting {p.estimator} on {len(fit_on):,} rows"):
        model = train_model(fit_on, p, features, schema.target)
    example = feature_frame(train.head(5), features)
    if is_dask(train):  # the holdout is scored on the workers: only the truth and the predictions come back
        with ctx.phase("scoring the test split on the cluster"):
            scored = score_holdout(test, model, partial(feature_frame, features=features), schema.target)
        output = ModelOutput(
            model,
            example,
            None,
            schema.target,
            "test",
            train_target=target_values(fit_on[schema.target]),
            predictions=scored,
            holdout=test,
            prepare=partial(feature_frame, features=features),
        )
        test_rows = len(scored)
    else:
        evaluation_data = feature_frame(test, features).assign(**{schema.target: target_values(test[schema.target])})
        output = ModelOutput(
            model, example, evaluation_data, schema.target, "test", train_target=target_values(train[schema.target])
        )
        test_rows = len(test)
    del fit_on
    return StepOutput(
        outputs={"model": output},
        params={
            "estimator": p.estimator,
            "estimator_class": p.estimator_class,
            "seed": p.seed,
            "matrix_dtype": p.resolved_matrix_dtype(),
            **{f"hp.{k}": v for k, v in p.estimator_params.items()},
            # The rows the model was fitted on, and how they were chosen (all, or a stratified or random sample).
            "train_rows": min(available, p.max_train_rows or available),
            "train_rows_available": available,
            "train_sample": sampling,
            "test_rows": test_rows,
        },
    )


STEP = Step(
    name="train_model",
    reads=("train", "test"),
    writes=("model",),
    params=TrainModelParams,
    run=run_train_model,
    snapshot=("train", "test"),
    headline=("roc_auc", "f1_score", "accuracy_score", "root_mean_squared_error", "r2_score"),
    resources={"cpu": "4", "memory": "16Gi"},
    options={
        "--estimator": {
            "key": "estimator",
            "help": "a name under train_model.estimators in the config (logistic_regression, random_forest, "
            "gradient_boosting, ...) or an import path (sklearn.ensemble.ExtraTreesClassifier).",
        },
        "--param": {
            "key": "set_params",
            "short": "-p",
            "multiple": True,
            "help": "estimator hyperparameter (repeatable), e.g. -p C=0.5.",
        },
        "--seed": {"key": "seed", "type": "int", "help": "seed of the estimator."},
    },
    policy="mlsteps.promotion",
)

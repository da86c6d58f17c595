"""The rows of a request body: what the server scores, and what the inference log's process reads again from the
spool. One function, so that the log holds exactly the rows that were scored."""

from __future__ import annotations

import json

import pandas as pd

from mlsteps.csv_input import frame_from_csv
from mlsteps.input_checks import InputError, Schema, frame_from_json, kept_columns


def rows_of(body: bytes, mime: str, schema: Schema) -> pd.DataFrame:
    """The checked rows of a ``text/csv`` or ``application/json`` body, in the model's column order (then the
    columns kept with them, when the body has them: ``ModelInputs.keep``); InputError when they do not fit
    ``schema``."""
    if not body.strip():
        raise InputError(["the body is empty: there are no rows to score"], "Send at least one row.")
    if mime == "text/csv":
        frame = frame_from_csv(body, schema)
    else:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InputError([f"the body is not valid JSON ({exc})"], "Send a JSON object.") from exc
        except RecursionError as exc:
            raise InputError(["the body's JSON is nested too deeply"], "Send rows as a flat JSON object.") from exc
        frame = frame_from_json(payload, schema)
    names = list(schema) + [k for k in kept_columns(schema) if k in frame.columns]
    return frame if list(frame.columns) == names else frame[names]

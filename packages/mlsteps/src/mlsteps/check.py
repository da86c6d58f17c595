"""`python src/main.py check`: is an environment usable? Each check says what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlsteps.errors import PipelineError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    exit_code: int = 1  # of `check` when this one fails: 2 for an invalid config, as for every command


def run_checks(environment: str, env: Any = None) -> list[Check]:
    """Config, credentials, storage and tracking server of one environment, in that order."""
    from mlsteps.config import load_config

    try:
        settings = load_config(environment, env=env)
    except PipelineError as exc:
        return [Check("config", False, str(exc), "fix the file and key named above", exc.exit_code)]
    checks = [Check("config", True, f"config/{environment}.yaml over base.yaml is valid")]
    checks.append(_check_credentials(settings))
    checks.extend(_check_storage(settings))
    checks.append(_check_tracking(settings))
    return checks


def _check_credentials(settings: Any) -> Check:
    if not settings.data.root.startswith("s3://"):
        return Check("credentials", True, "not needed: data is on the local filesystem")
    import boto3
    import botocore.exceptions

    try:
        session = boto3.Session(profile_name=settings.aws.profile, region_name=settings.aws.region)
        credentials = session.get_credentials()
    except botocore.exceptions.ProfileNotFound as exc:
        return Check("credentials", False, str(exc), "create the profile (aws configure --profile ...) or unset it")
    except botocore.exceptions.BotoCoreError as exc:
        return Check(
            "credentials",
            False,
            f"{type(exc).__name__}: {exc}",
            "set AWS_PROFILE, or both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with a role",
        )
    if credentials is None:
        return Check(
            "credentials",
            False,
            "no AWS credentials found in the environment, profile or role",
            "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with a role",
        )
    return Check("credentials", True, f"found ({credentials.method})")


def _check_storage(settings: Any) -> list[Check]:
    from mlsteps.errors import StorageUnreachable
    from mlsteps.storage import Storage

    storage = Storage.for_settings(settings)
    results = []
    raw = settings.location("raw")
    try:
        found = storage.exists(raw)
        results.append(
            Check(
                "raw data",
                found,
                raw if found else f"{raw} does not exist",
                "" if found else "upload the raw dataset there, or fix catalog.raw.path / data.root",
            )
        )
    except StorageUnreachable as exc:
        # The endpoint or the credentials failed: a write probe would wait out the same retries to say the same.
        results.append(Check("raw data", False, str(exc)))
        results.append(
            Check("storage", False, f"{settings.data.root} not tried: the storage cannot be reached (above)")
        )
        return results
    except PipelineError as exc:
        results.append(Check("raw data", False, str(exc)))
    root = settings.data.root
    try:
        if "://" in root:
            storage.ensure_writable(root)  # writes a probe object and deletes it: nothing is left behind
        else:
            _check_local_folder(root)  # a local folder is checked without creating anything
        results.append(Check("storage", True, f"{root} is reachable and writable"))
    except PipelineError as exc:
        results.append(Check("storage", False, str(exc)))
    return results


def _check_local_folder(root: str) -> None:
    import os

    from mlsteps.errors import StorageError

    existing = root
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "/"
    if not os.path.isdir(existing):
        raise StorageError(f"cannot write under '{root}': '{existing}' is a file, not a folder -> fix data.root")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(
            f"cannot write under '{root}': '{existing}' is not writable by this user -> fix its "
            "permissions or point data.root elsewhere"
        )


def _check_tracking(settings: Any) -> Check:
    from mlsteps.store import connect

    try:
        experiment_id = connect(settings, create=False)  # creates nothing: check leaves no trace
    except PipelineError as exc:
        return Check("tracking", False, str(exc))
    state = "exists" if experiment_id else "does not exist yet (the first run creates it)"
    return Check("tracking", True, f"{settings.tracking.uri}, experiment '{settings.tracking.experiment}' {state}")

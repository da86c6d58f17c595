"""What a storage failure means, in one place: a message naming the location, what went wrong and what to do, and
the kind of failure (the storage unreachable, a failure that may pass, or one that will not)."""

from __future__ import annotations

import errno
import re

from mlsteps.errors import StorageError, StorageTransient, StorageUnreachable

# What S3 (and the HTTP stack under s3fs) says when a request failed for a reason that may pass.
_TRANSIENT = (
    "(500)",
    "(502)",
    "(503)",
    "(504)",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttl",
    "RequestTimeout",
    "timed out",
    "TimeoutError",
    "ReadTimeout",
    "ConnectTimeout",
    "ServerDisconnected",
    "ConnectionReset",
    "ConnectionClosed",
    "IncompleteRead",
    "Service Unavailable",
)


# s3fs turns S3's answers into OSErrors: SlowDown, ServiceUnavailable and 503 are EBUSY, InternalError and 500 are
# EREMOTEIO; timeouts and dropped connections come as their own errnos.
_TRANSIENT_ERRNOS = {errno.EBUSY, errno.EREMOTEIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNABORTED}


def is_transient(exc: BaseException) -> bool:
    """A failure that may pass: a 5xx, throttling, a timeout, a dropped connection."""
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    text = f"{type(exc).__name__} {exc}"
    return any(s in text for s in _TRANSIENT)


def is_auth_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return any(
        s in text
        for s in (
            "NoCredentialsError",
            "Unable to locate credentials",
            "InvalidAccessKeyId",
            "PartialCredentialsError",
            "Partial credentials",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "AccessDenied",
        )
    )


def storage_error(uri: str, verb: str, exc: BaseException) -> StorageError:
    """The StorageError (or the subclass saying its kind) for ``exc``, raised when ``verb``-ing ``uri``."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        hint = (
            "the disk is full: free space there, or point data.root (or the catalog entry's path) at a disk with room"
        )
    elif isinstance(exc, IsADirectoryError):
        hint = "it is a folder, not a file: point the catalog entry at a file"
    elif isinstance(exc, PermissionError) and not ("://" in uri and not uri.startswith("file://")):
        hint = "the location is not writable/readable by this user: fix its permissions or point data.root elsewhere"
    elif is_auth_error(exc):
        hint = "no valid AWS credentials were found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    elif "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        hint = "the bucket does not exist: create it or set PIPELINE_DATA_ROOT to an existing bucket"
    elif "Could not connect" in text or "ConnectionError" in text or "EndpointConnectionError" in text:
        hint = "the S3 endpoint cannot be reached: check AWS_ENDPOINT_URL and the network"
    elif "ConnectionClosedError" in text:  # botocore: the endpoint dropped every attempt's connection
        hint = "the S3 endpoint cannot be reached (it closed the connection, every retry): check AWS_ENDPOINT_URL and the network"
    elif is_transient(exc):
        hint = "the storage failed for now (after its retries): the same request may succeed later"
        return StorageTransient(f"cannot {verb} '{uri}': {text} -> {hint}")
    else:
        hint = "check the location in the config and your access to it"
    unreachable = is_auth_error(exc) or "cannot be reached" in hint
    return (StorageUnreachable if unreachable else StorageError)(f"cannot {verb} '{uri}': {text} -> {hint}")


# MLflow's client, when a server with proxied artifacts (`mlflow server --artifacts-destination s3://...`) cannot
# store or read an artifact: "API request to http://HOST/api/2.0/mlflow-artifacts/artifacts/... failed with
# exception ... too many 500 error responses".
_PROXIED_ARTIFACT = re.compile(r"(https?://[^/\s]+)/api/2\.0/mlflow-artifacts/")
# The server's own answer was a 5xx (a server that cannot be reached at all is the tracking server's failure).
_SERVER_FAILED = re.compile(r"too many 5\d\d error responses|status code:? 5\d\d|\b5\d\d Server Error")


def artifact_store_error(exc: BaseException) -> StorageUnreachable | None:
    """The clear error for an artifact the tracking server failed to store or read because its artifact store (S3
    for ``dev`` and ``prd``) failed, or for an artifact this process failed to send to S3 itself; None otherwise."""
    text = f"{type(exc).__name__}: {exc}"
    server = _PROXIED_ARTIFACT.search(text)
    if server and _SERVER_FAILED.search(text):
        return StorageUnreachable(
            f"the tracking server at {server[1]} could not store an artifact of the run: the artifact store behind "
            "it (S3 for dev and prd: the server's --artifacts-destination) is failing or cannot be reached -> check "
            "that the server reaches its S3 bucket (endpoint, network, credentials: the server's log names the "
            "error), then run again; the runs are marked FAILED"
        )
    if type(exc).__module__.startswith(("botocore", "s3transfer", "boto3")):
        failure = storage_error("the run's artifact store (S3)", "write to", exc)
        if isinstance(failure, StorageUnreachable):
            return failure
    return None

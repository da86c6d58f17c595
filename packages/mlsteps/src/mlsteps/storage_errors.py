"""What a storage failure means, in one place: a message naming the location, what went wrong and what to do, and
the kind of failure (the storage unreachable, a failure that may pass, or one that will not)."""

from __future__ import annotations

import errno

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
    elif is_transient(exc):
        hint = "the storage failed for now (after its retries): the same request may succeed later"
        return StorageTransient(f"cannot {verb} '{uri}': {text} -> {hint}")
    else:
        hint = "check the location in the config and your access to it"
    unreachable = is_auth_error(exc) or "cannot be reached" in hint
    return (StorageUnreachable if unreachable else StorageError)(f"cannot {verb} '{uri}': {text} -> {hint}")

"""API errors that may pass are retried by kopf (TemporaryError); the others surface."""

from __future__ import annotations

import kopf
import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from operators._kube import transient_errors


@pytest.mark.parametrize("status", [409, 429, 500, 503, 504])
def test_passing_api_errors_are_retried_with_backoff(status: int) -> None:
    with (
        pytest.raises(kopf.TemporaryError, match=f"apply Deployment ns/x: HTTP {status}") as err,
        transient_errors("apply Deployment ns/x"),
    ):
        raise ApiException(status=status)
    assert err.value.delay and err.value.delay > 0


@pytest.mark.parametrize(
    "error",
    [
        MaxRetryError(None, "/api", reason="connection refused"),  # type: ignore[arg-type]
        NewConnectionError(None, "connection refused"),  # type: ignore[arg-type]
        ConnectionResetError("reset by peer"),
    ],
    ids=["max-retries", "new-connection", "reset"],
)
def test_a_lost_connection_is_retried(error: Exception) -> None:
    with pytest.raises(kopf.TemporaryError, match="get Secret"), transient_errors("get Secret"):
        raise error


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_other_api_errors_surface(status: int) -> None:
    with pytest.raises(ApiException), transient_errors("apply"):
        raise ApiException(status=status)

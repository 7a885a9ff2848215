"""JSON answers for the pages' APIs: every error is `{"error": "<what and why>"}` with
the status that says whose fault it is (400 the request, 401 no or a bad token, 403 not
allowed, 404 not there, 409 not now), so the pages can show the message as it is."""
from typing import Any, Dict

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse


class HttpError(Exception):
    """Raised by helpers, answered by `error` (see `handle`)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error(status: int, message: str, **extra: Any) -> HTTPResponse:
    return response.json({"error": message, **extra}, status=status)


def from_exception(problem: HttpError) -> HTTPResponse:
    return error(problem.status, problem.message, **problem.extra)


def body(request: Request) -> Dict[str, Any]:
    """The JSON object a POST carries; 400 for anything else (not JSON, not an object)."""
    try:
        data = request.json if request.body else {}
    except Exception:  # Sanic raises its own InvalidUsage for broken JSON
        raise HttpError(400, "the body must be JSON") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HttpError(400, "the body must be a JSON object")
    return data


def no_store(payload: Any, status: int = 200) -> HTTPResponse:
    """JSON that changes from one poll to the next: never cached."""
    return response.json(payload, status=status, headers={"Cache-Control": "no-store"})

"""llmnet's Python client: the whole public API, sync (`Client`) and async (`AsyncClient`).

    from llmnet_client import Client

    with Client("http://127.0.0.1:8000", api_key="llm_...") as client:
        model = client.models.create("Tiny Poet", visibility="public")
        version = client.upload(model["id"], "./tiny-poet/", progress=print)
        chat = client.openai_client()          # chat completions: the official SDK

Errors are `llmnet_client.errors.APIError` subclasses carrying `code`, `detail` and
`request_id`. It imports nothing of the platform's own code, so it installs alone.
"""

from llmnet_client._async import AsyncClient
from llmnet_client._core import Call, Event, TokenPair
from llmnet_client._sync import Client
from llmnet_client._upload import LocalFile, ProgressCallback
from llmnet_client._version import __version__
from llmnet_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    LLMNetError,
    NotFound,
    PartCorrupted,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "Call",
    "Client",
    "Conflict",
    "Event",
    "LLMNetError",
    "LocalFile",
    "NotFound",
    "PartCorrupted",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProgressCallback",
    "RateLimited",
    "ServerError",
    "TokenPair",
    "ValidationError",
    "__version__",
]

"""promptgate's runtime client for Python: prompts by label, from memory.

>>> from promptgate import Client
>>> client = Client("http://127.0.0.1:7070", cache_dir=".promptgate/client")  # doctest: +SKIP
>>> p = client.get("support_agent", label="production", routing_key="user-42")  # doctest: +SKIP
>>> p.version_id, p.span_attributes()  # doctest: +SKIP
"""

from ._aio import AsyncClient
from ._canonical import canonical_json, content_hash
from ._client import Client, NotFound, PromptgateError, Prompt, Unavailable
from ._outcome import record_outcome
from ._render import RenderError
from ._routing import assign, bucket

__all__ = [
    "AsyncClient",
    "Client",
    "NotFound",
    "Prompt",
    "PromptgateError",
    "RenderError",
    "Unavailable",
    "assign",
    "bucket",
    "canonical_json",
    "content_hash",
    "record_outcome",
]
__version__ = "0.1.0"

"""Token counts with tiktoken's ``cl100k_base`` (OpenAI's encoding), read from the cache that
ships inside llama-index-core, so nothing is downloaded: one encoding for the knowledge bases'
chunk sizes and the embeddings API's input limits."""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

ENCODING = "cl100k_base"
_lock = threading.Lock()


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The shared encoding, loaded once per process.

    Our own rather than LlamaIndex's global tokenizer, which any library may replace. tiktoken
    finds its cache only through an environment variable, so the variable is set for the load
    under a lock and then restored. llama-index-core is found without importing it."""
    import tiktoken

    package = importlib.util.find_spec("llama_index.core")
    folder = Path(package.submodule_search_locations[0]) / "_static" / "tiktoken_cache"
    with _lock:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        try:
            return tiktoken.get_encoding(ENCODING)
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous

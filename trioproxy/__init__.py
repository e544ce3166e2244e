"""trioproxy: a fast, dependable reverse proxy for LLM APIs, on Trio.

Embed it in a Trio program::

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trioproxy.serve, trioproxy.load_config("config.toml"))
        print(server.url)
        ...
        nursery.cancel_scope.cancel()  # graceful shutdown
"""

from __future__ import annotations

from .config import Config, ConfigError, default_config, load_config
from .server import Server, serve

__all__ = ["Config", "ConfigError", "Server", "default_config", "load_config", "serve"]
__version__ = "0.1.0"

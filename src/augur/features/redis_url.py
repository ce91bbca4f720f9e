"""``AUGUR_REDIS_URL`` as redis-py takes it: a Feast-style connection string
(``host:port[,db=N][,password=…][,ssl=true]``) → ``redis.Redis`` keyword arguments."""

from __future__ import annotations

from typing import Any


def redis_options(url: str) -> dict[str, Any]:
    """Host, port and the options the string names (db, password, ssl); others ignored."""
    head, *options = url.split(",")
    host, _, port = head.rpartition(":")
    kwargs: dict[str, Any] = {"host": host or "localhost", "port": int(port or 6379)}
    for option in options:
        key, _, value = option.partition("=")
        key = key.strip()
        if key == "db":
            kwargs["db"] = int(value)
        elif key == "password":
            kwargs["password"] = value
        elif key == "ssl":
            kwargs["ssl"] = value.strip().lower() == "true"
    return kwargs


__all__ = ["redis_options"]

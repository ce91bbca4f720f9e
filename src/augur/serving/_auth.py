"""Bearer-token access: constant-time comparison, tokens from the env or a secret file.

Tokens are never logged; a caller is identified in audit lines by the name given in the
token file (``caller=token`` lines) or, for a bare token, by a short SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from augur.config import Settings

# Paths that never need a token: Kubernetes probes must work without the Secret.
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token (safe to log)."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class BearerAuth:
    """The accepted tokens: (caller name, token bytes) pairs."""

    tokens: tuple[tuple[str, bytes], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def __repr__(self) -> str:  # never show the tokens, even in a debugger or a log line
        return f"BearerAuth(callers={[name for name, _ in self.tokens]})"

    def caller(self, authorization: bytes | str | None) -> str | None:
        """The caller's name when the ``Authorization`` header carries a valid token.

        Every configured token is compared (``hmac.compare_digest``), so the time taken does
        not reveal which one — or how much of one — matched.
        """
        if not authorization:
            return None
        if isinstance(authorization, str):
            authorization = authorization.encode("latin-1", "replace")
        scheme, _, presented = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not presented:
            return None
        presented = presented.strip()
        found = None
        for name, token in self.tokens:
            if hmac.compare_digest(presented, token) and found is None:
                found = name
        return found


def parse_token_file(text: str) -> tuple[tuple[str, bytes], ...]:
    """One bare token, or ``caller=token`` lines (blank lines and ``#`` comments ignored)."""
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    if len(lines) == 1 and "=" not in lines[0]:
        return ((fingerprint(lines[0]), lines[0].encode()),)
    out = []
    for i, ln in enumerate(lines, 1):
        name, sep, token = ln.partition("=")
        if not sep or not name.strip() or not token.strip():
            raise ValueError(
                f"token file line {i}: expected 'caller=token' (the token itself is not shown)"
            )
        out.append((name.strip(), token.strip().encode()))
    return tuple(out)


def load_auth(settings: Settings) -> BearerAuth:
    """Tokens from ``AUGUR_SERVING_TOKEN`` and/or ``AUGUR_SERVING_TOKEN_FILE``."""
    tokens: list[tuple[str, bytes]] = []
    if settings.serving_token:
        tokens.append((fingerprint(settings.serving_token), settings.serving_token.encode()))
    if settings.serving_token_file is not None:
        path = Path(settings.serving_token_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(
                f"AUGUR_SERVING_TOKEN_FILE={path}: cannot read it ({exc.strerror})"
            ) from None
        tokens.extend(parse_token_file(text))
        if not tokens:
            raise ValueError(f"AUGUR_SERVING_TOKEN_FILE={path} holds no token")
    return BearerAuth(tuple(tokens))


__all__ = ["OPEN_PATHS", "BearerAuth", "fingerprint", "load_auth", "parse_token_file"]

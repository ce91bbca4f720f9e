"""Bearer auth: tokens from env/file, constant-time check, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from augur.config import Settings
from augur.serving._auth import BearerAuth, fingerprint, load_auth, parse_token_file


def test_env_token(tmp_path: Path) -> None:
    auth = load_auth(Settings(home=tmp_path, serving_token="s3cret"))
    assert auth.enabled
    assert auth.caller(b"Bearer s3cret") == fingerprint("s3cret")
    assert auth.caller("bearer s3cret") == fingerprint("s3cret")
    for bad in (None, b"", b"Bearer", b"Bearer s3cre", b"Basic s3cret", b"Bearer s3cretX"):
        assert auth.caller(bad) is None
    assert "s3cret" not in repr(auth) and "s3cret" not in fingerprint("s3cret")


def test_token_file_with_named_callers(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# callers\ntrading-desk=abc123\n\nrisk-bot = def456\n")
    auth = load_auth(Settings(home=tmp_path, serving_token_file=f))
    assert auth.caller(b"Bearer abc123") == "trading-desk"
    assert auth.caller(b"Bearer def456") == "risk-bot"
    assert auth.caller(b"Bearer abc") is None


def test_single_bare_token_file_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("only-one\n")
    assert load_auth(Settings(home=tmp_path, serving_token_file=f)).caller(b"Bearer only-one")
    with pytest.raises(ValueError, match="line 2"):
        parse_token_file("a=b\nnot a pair\n")
    with pytest.raises(ValueError, match="cannot read"):
        load_auth(Settings(home=tmp_path, serving_token_file=tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no token"):
        load_auth(Settings(home=tmp_path, serving_token_file=empty))


def test_no_token_means_open() -> None:
    auth = BearerAuth()
    assert not auth.enabled and auth.caller(b"Bearer x") is None

"""Secrets and terminal escapes out of what is shown or stored: the one redaction module."""

from __future__ import annotations

import pytest

from fourhosts_jupyter.redact import neutralise, redact, safe_url


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://alice:secret@127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("https://alice@host.example/v1", "https://host.example/v1"),
        ("https://h/v1?api-key=secret&api-version=2024-10-21", "https://h/v1?api-key=***&api-version=2024-10-21"),
        ("https://h/p?sig=secret&token=secret&x=1", "https://h/p?sig=***&token=***&x=1"),
        ("https://h/p?Password=secret&client_secret=secret", "https://h/p?Password=***&client_secret=***"),
        ("https://h/p?key=secret", "https://h/p?key=***"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
        ("http://u:p@[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("", ""),
    ],
)
def test_safe_url(url, shown):
    assert safe_url(url) == shown


def test_safe_url_on_an_unparsable_port_still_drops_the_user_info():
    assert "secret" not in safe_url("http://alice:secret@host:notaport/v1")


def test_redact_finds_urls_and_keys_inside_text(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "envkey-secret-value")
    text = (
        'the server at http://alice:secret@127.0.0.1:9/v1 failed; {"url": "https://h/?token=secret"} '
        "key envkey-secret-value, sk-abcdefghijk"
    )
    out = redact(text)
    assert "secret" not in out and "sk-abcdefghijk" not in out
    assert "http://127.0.0.1:9/v1 failed" in out and '"https://h/?token=***"}' in out


def test_neutralise_shows_escapes_instead_of_obeying_them():
    text = "a\x1b[2J\x1b]0;title\x07b\u202ec\r\n\td"
    out = neutralise(text)
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in out)
    assert "\u202e" not in out and "\\x1b[2J" in out and "\\u202e" in out
    kept = neutralise(text, keep_lines=True)
    assert "\n\t" in kept and "\x1b" not in kept and "\r" not in kept


def test_neutralise_cuts_to_the_limit():
    out = neutralise("x" * 50_000, limit=80)
    assert len(out) == 80 and out.endswith("…")
    assert len(neutralise("\x1b" * 100, limit=20)) == 20


def test_terminal_json_escapes_what_json_leaves_raw():
    import json

    from fourhosts_jupyter.redact import terminal_json

    value = {"q": "a\x9b31m\u202eb\x1bc é"}
    text = terminal_json(value)
    assert json.loads(text) == value
    assert not any(ch in text for ch in "\x9b\u202e\x1b") and "é" in text

"""What the chat UI needs to know, as plain values: it reads no settings and imports no service
code. ``docqa serve`` and ``docqa ui`` build this from the settings (``wiring.ui_setup``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UiConfig:
    """``api_url`` is the docqa server the UI calls; ``api_key`` the bearer key it sends.

    ``login_keys``, when not empty, puts a login page in front of the UI: the password must be
    one of them (the API's keys), so the UI opens no back door to a protected API.
    """

    api_url: str
    api_key: str | None = None
    collection: str = "docs"
    top_k: int = 5
    timeout_s: float = 300.0
    max_file_mb: float = 50.0
    login_keys: tuple[str, ...] = ()

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return (
            f"UiConfig(api_url={self.api_url!r}, api_key={'***' if self.api_key else None}, "
            f"collection={self.collection!r}, login={'on' if self.login_keys else 'off'})"
        )

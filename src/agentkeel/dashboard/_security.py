"""Who may talk to the dashboard, and how it protects the browser that does.

* Bind: loopback by default; any other address needs a token (``check_bind``).
* Token: with one set, every request carries it, as ``Authorization: Bearer``, or as
  the HttpOnly, SameSite=Strict cookie that a first visit with ``?token=`` sets
  (that visit is redirected to the same URL without the token, so it does not stay
  in the address bar or the history).
* Without a token the dashboard answers only requests addressed to a loopback name:
  a web page cannot reach it through DNS rebinding (its Host would be the page's).
* CSRF: every POST carries a token derived from a per-process secret in a hidden
  form field, and, when the browser names where the request came from (Origin, else
  Referer), that must be this dashboard. GET never changes anything.
* Headers: a Content-Security-Policy that allows only our own scripts and styles and
  no framing, ``nosniff``, ``X-Frame-Options: DENY``, and no caching of pages.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from agentkeel._errors import ConfigurationError

TOKEN_COOKIE = "keel_dashboard_token"  # noqa: S105 - the cookie's name, not a secret
CSRF_FIELD = "csrf_token"
_LOOPBACK_NAMES = frozenset({"localhost", "testserver"})  # testserver: Starlette's TestClient
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    name = host.strip().strip("[]").lower()
    if name in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not host or not host.strip():
        raise ConfigurationError("the dashboard needs an address to listen on, e.g. 127.0.0.1")
    if not is_loopback(host) and not (token and token.strip()):
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host} without a token: anyone who can "
            "reach it would see every run; pass --token or set KEEL_DASHBOARD_TOKEN "
            "(or listen on 127.0.0.1)"
        )


def csrf_token(secret: bytes) -> str:
    """The CSRF token for this process: a keyed hash, so it cannot be guessed."""
    return hmac.new(secret, b"keel-dashboard-csrf", hashlib.sha256).hexdigest()


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _host_name(host_header: str) -> str:
    """The name part of a Host header (``[::1]:8765`` → ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def origin_ok(request: Request) -> bool:
    """A POST's Origin (else Referer), when the browser sent one, is this dashboard."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin != "null" and _same(origin.rstrip("/"), own)
    referer = request.headers.get("referer")
    if referer is not None:
        parts = urlsplit(referer)
        return _same(f"{parts.scheme}://{parts.netloc}", own)
    # Neither: not a browser's cross-site form post (browsers send Origin on those);
    # the CSRF token in the form still has to be right.
    return True


class SecurityMiddleware(BaseHTTPMiddleware):
    """Token check, Host check and the security headers on every response."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        super().__init__(app)
        self.token = token or None

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = self._refusal(request)
        if response is None:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            name = _host_name(request.headers.get("host", "")).lower()
            if name not in _LOOPBACK_NAMES and not is_loopback(name):
                return PlainTextResponse(
                    "403: this dashboard answers only on localhost; to reach it over the "
                    "network, start it with --token",
                    status_code=403,
                )
            return None
        given = request.query_params.get("token")
        if given is not None and _same(given, self.token):
            # First visit with ?token=: remember it in a cookie, drop it from the URL.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(
                TOKEN_COOKIE,
                self.token,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
            return redirect
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.token):
            return None
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie is not None and _same(cookie, self.token):
            return None
        return PlainTextResponse(
            "401: this dashboard needs its token: open it once with ?token=<token>, or send "
            "an Authorization: Bearer header",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

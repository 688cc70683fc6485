"""A local OpenID Connect provider for the login tests: discovery, authorize, token, JWKS.

It signs RS256 ID tokens with a key made at start, logs in whoever `next_email` names
without asking (there is no password page to drive), and can be told to misbehave:
`mode = "wrong_issuer"` signs tokens for another issuer, `"expired"` signs tokens that
expired an hour ago. It listens on 127.0.0.1 only; nothing here reaches the internet.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID, CLIENT_SECRET = "autotag-test", "autotag-test-secret"


class MockProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.next_email = "someone@example.org"
        self.mode = "ok"
        self.codes: dict[str, dict[str, Any]] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif url.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {"nonce": query.get("nonce"), "email": provider.next_email}
                    target = (
                        query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})
                    )
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                if urllib.parse.urlsplit(self.path).path != "/token":
                    self.send_error(404)
                    return
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                grant = provider.codes.pop(form.get("code", ""), None)
                if grant is None:
                    self._json({"error": "invalid_grant"}, 400)
                    return
                self._json(
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "id_token": provider.id_token(grant["email"], grant["nonce"]),
                    }
                )

            def _json(self, data: dict, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def id_token(self, email: str, nonce: str | None) -> str:
        now = int(time.time()) - (7200 if self.mode == "expired" else 0)
        claims = {
            "iss": "http://evil.example.org" if self.mode == "wrong_issuer" else self.issuer,
            "sub": email,
            "aud": CLIENT_ID,
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
        }
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A small OpenID Connect provider on loopback for tests: discovery, an authorization endpoint that
signs in whoever the test names at once, the token endpoint (RS256 ID tokens, PKCE checked),
userinfo and JWKS. Faults: a token for another audience or issuer, a wrong nonce, a provider that
answers 500 at the token endpoint, an access denied."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .loopback import LoopbackServer


class FakeOidc(LoopbackServer):
    client_id = "docent-test"
    client_secret = "s3cret"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key"
        self.claims: dict = {}  # who the next sign-in is (sub, email, groups ...)
        self.userinfo_extra: dict = {}  # claims the userinfo endpoint adds
        # "audience", "issuer", "nonce", "token-500", "denied", "discovery-issuer", "garbage"
        self.fault: str | None = None
        self.issuer_ends_with_slash = False  # as Auth0 writes its issuer
        self.codes: dict[str, dict] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self._listen(self._handler())

    @property
    def issuer(self) -> str:
        return f"{self.origin}/realm"

    def reset(self) -> None:
        with self.lock:
            self.claims, self.userinfo_extra, self.fault = {}, {}, None
            self.issuer_ends_with_slash = False
            self.codes.clear()
            self.requests.clear()

    def env(self, **more) -> dict:
        """The app's environment for signing in with this provider."""
        return {
            "DOCENT_OIDC_ISSUER": self.issuer,
            "DOCENT_OIDC_CLIENT_ID": self.client_id,
            "DOCENT_OIDC_CLIENT_SECRET": self.client_secret,
            **more,
        }

    def _jwks(self) -> dict:
        numbers = self.key.public_key().public_numbers()

        def b64(n: int) -> str:
            return (
                base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
            )

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "use": "sig",
                    "n": b64(numbers.n),
                    "e": b64(numbers.e),
                }
            ]
        }

    @property
    def issuer_written(self) -> str:
        return self.issuer + ("/" if self.issuer_ends_with_slash else "")

    def _id_token(self, grant: dict) -> str:
        now = int(time.time())
        payload = {
            "iss": "http://elsewhere.example/realm" if self.fault == "issuer" else self.issuer_written,
            "aud": "another-client" if self.fault == "audience" else self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": "not-yours" if self.fault == "nonce" else grant["nonce"],
            **grant["claims"],
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})

    def logout_token(self, *, sub=None, sid=None, key=None, event=True, **more) -> str:
        """A back-channel logout token as this provider signs it (with `key`, another's)."""
        now = int(time.time())
        payload = {
            "iss": self.issuer_written,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_hex(8),
        }
        if event:
            payload["events"] = {"http://schemas.openid.net/event/backchannel-logout": {}}
        payload.update({k: v for k, v in (("sub", sub), ("sid", sid)) if v}, **more)
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                provider.requests.append(url.path)
                base = provider.issuer
                if url.path == "/realm/.well-known/openid-configuration":
                    return self._json(
                        200,
                        {
                            "issuer": "http://elsewhere.example/realm"
                            if provider.fault == "discovery-issuer"
                            else provider.issuer_written,
                            "authorization_endpoint": f"{base}/authorize",
                            "token_endpoint": f"{base}/token",
                            "userinfo_endpoint": f"{base}/userinfo",
                            "jwks_uri": f"{base}/jwks",
                            "end_session_endpoint": f"{base}/logout",
                            "backchannel_logout_supported": True,
                            "id_token_signing_alg_values_supported": ["RS256"],
                        },
                    )
                if url.path == "/realm/jwks":
                    return self._json(200, provider._jwks())
                if url.path == "/realm/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    if provider.fault == "denied":
                        answer = {"error": "access_denied", "state": query["state"]}
                    else:
                        code = secrets.token_urlsafe(16)
                        with provider.lock:
                            provider.codes[code] = {
                                "claims": dict(provider.claims),
                                "nonce": query.get("nonce"),
                                "client_id": query["client_id"],
                                "redirect_uri": query["redirect_uri"],
                                "challenge": query.get("code_challenge"),
                            }
                        answer = {"code": code, "state": query["state"]}
                    self.send_response(302)
                    self.send_header("Location", f"{query['redirect_uri']}?{urlencode(answer)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if url.path == "/realm/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    with provider.lock:
                        grant = next(
                            (g for g in provider.codes.values() if g.get("access_token") == token), None
                        )
                    if grant is None:
                        return self._json(401, {"error": "invalid_token"})
                    return self._json(200, {"sub": grant["claims"].get("sub"), **provider.userinfo_extra})
                return self._json(404, {"error": "not_found"})

            def do_POST(self):
                url = urlparse(self.path)
                provider.requests.append(url.path)
                if url.path != "/realm/token":
                    return self._json(404, {"error": "not_found"})
                if provider.fault == "token-500":
                    return self._json(500, {"error": "server_error"})
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with provider.lock:
                    grant = provider.codes.get(form.get("code", ""))
                    if grant is not None and "access_token" in grant:
                        grant = None  # a code is good once
                if (
                    grant is None
                    or form.get("client_id") != provider.client_id
                    or form.get("client_secret") != provider.client_secret
                    or form.get("redirect_uri") != grant["redirect_uri"]
                ):
                    return self._json(400, {"error": "invalid_grant"})
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                )
                if grant["challenge"] != challenge:
                    return self._json(400, {"error": "invalid_grant", "error_description": "PKCE"})
                grant["access_token"] = secrets.token_urlsafe(16)
                return self._json(
                    200,
                    {
                        "access_token": grant["access_token"],
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": "not-a-token"
                        if provider.fault == "garbage"
                        else provider._id_token(grant),
                    },
                )

        return Handler

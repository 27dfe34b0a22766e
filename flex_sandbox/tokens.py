"""Bearer tokens as Flex issues them: HS256 JWTs with the claims seen in real traffic,
signed with a per-process key (tokens die with the process, like a rotated key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid


class Tokens:
    def __init__(self, app_key: str, mid: str, ttl: float):
        self.app_key, self.mid, self.ttl = app_key, mid, ttl
        self._key = secrets.token_bytes(32)
        self._generation = 0  # bumped to revoke every token issued so far
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, float]:
        """A new token and its expiry (epoch seconds)."""
        now = time.time()
        claims = {
            "sub": self.app_key, "unique_name": self.app_key, "jti": str(uuid.uuid4()),
            "iat": str(int(now * 1000)), "aud": ["Api-Client-Service"],
            "custom:mid": self.mid, "nbf": int(now), "exp": now + self.ttl,
            "iss": "Api-Client-Service", "generation": self._generation,
        }
        parts = [_b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
                 _b64(json.dumps(claims).encode())]
        return ".".join([*parts, self._sign(".".join(parts))]), claims["exp"]

    def claims(self, token: str) -> dict | None:
        """The claims of a token this sandbox issued and has not expired or revoked."""
        try:
            head, payload, signature = token.split(".")
            if not hmac.compare_digest(self._sign(f"{head}.{payload}"), signature):
                return None
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        if claims["exp"] <= time.time() or claims["generation"] != self._generation:
            return None
        return claims

    def revoke_all(self) -> None:
        with self._lock:
            self._generation += 1

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

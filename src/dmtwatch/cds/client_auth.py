"""Which EHRs may call the service: CDS Hooks client authentication (2.0, "Trusting CDS
Clients").

An EHR signs a short-lived JWT with its private key for every call and sends it as
`Authorization: Bearer <JWT>`. The service accepts a call when the token's issuer is one
it was told to trust, the signature verifies with that issuer's public key (by `kid`),
the audience is the endpoint called (under the service's configured public URL, never
the Host header a caller sends), the token has not expired, it lives at most
`max_lifetime` seconds (`exp - iat`, 5 minutes by default: a stolen long-lived token is
refused), and its `jti` has not been seen before. Keys come from the JWK Set files the service is configured with, never
from the token's `jku`: a token must not choose where its own trust comes from, and
checking one must not make the service call out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import orjson
from pydantic import ValidationError

from dmtwatch.cds.models import JwkSet, JwtClaims, JwtHeader
from dmtwatch.errors import DmtwatchError

# The signing algorithms the specification requires every service to accept.
ALGORITHMS = ("ES384", "RS384")
LEEWAY_SECONDS = 60  # clock difference tolerated between the EHR and the service
MAX_LIFETIME = 300  # seconds from iat to exp


class Unauthorized(DmtwatchError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TrustError(DmtwatchError):
    """A trusted issuer's key file cannot be used (raised at start-up, not per call)."""


def read_key_set(path: Path) -> dict[str, jwt.PyJWK]:
    """The public keys of a JWK Set file, by `kid` (every key needs one: a JWT names its
    key by `kid`). Private key material is refused: the service needs public keys only."""
    try:
        data = orjson.loads(Path(path).read_bytes())
        key_set = JwkSet.model_validate(data)
    except OSError as e:
        raise TrustError(f"{path}: cannot be read ({e.strerror})") from None
    except (orjson.JSONDecodeError, ValidationError) as e:
        raise TrustError(f"{path}: is not a JWK Set ({str(e).splitlines()[0]})") from None
    keys: dict[str, jwt.PyJWK] = {}
    for i, key in enumerate(key_set.keys):
        where = f"{path}: keys[{i}]"
        raw = key.model_dump(exclude_none=True)
        if key.kid is None:
            raise TrustError(f"{where} has no kid")
        if "d" in raw:
            raise TrustError(f"{where} holds a private key; give the EHR's public keys only")
        alg = key.alg or {"EC": "ES384", "RSA": "RS384"}[key.kty]
        if alg not in ALGORITHMS:
            raise TrustError(f"{where} is for {alg}; CDS Hooks signs with ES384 or RS384")
        try:
            keys[key.kid] = jwt.PyJWK(raw, algorithm=alg)
        except jwt.PyJWKError as e:
            raise TrustError(f"{where} is not a usable key ({e})") from None
    if not keys:
        raise TrustError(f"{path}: holds no keys")
    return keys


@dataclass
class ClientAuth:
    """Trusted issuers and their keys; remembers `jti`s until their tokens expire."""

    keys: dict[str, dict[str, jwt.PyJWK]]  # issuer -> kid -> public key
    max_lifetime: int = MAX_LIFETIME
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_files(cls, trusted: dict[str, Path], max_lifetime: int = MAX_LIFETIME) -> ClientAuth:
        keys = {issuer: read_key_set(path) for issuer, path in trusted.items()}
        return cls(keys, max_lifetime=max_lifetime)

    def check(self, authorization: str | None, endpoint: str) -> JwtClaims:
        """The verified claims of a call to `endpoint`; raises Unauthorized with the reason."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the call carries no JWT (Authorization: Bearer <JWT>)")
        token = token.strip()
        try:
            header = JwtHeader.model_validate(jwt.get_unverified_header(token))
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except (jwt.InvalidTokenError, ValidationError) as e:
            raise Unauthorized(f"the JWT is malformed ({str(e).splitlines()[0]})") from None
        if not isinstance(issuer, str):
            raise Unauthorized("the JWT lacks the required claim 'iss'")
        if header.alg not in ALGORITHMS:
            raise Unauthorized(f"the JWT is signed with {header.alg}; accepted: ES384, RS384")
        if issuer not in self.keys:
            raise Unauthorized(f"issuer {issuer} is not trusted by this service")
        key = self.keys[issuer].get(header.kid)
        if key is None:
            raise Unauthorized(f"issuer {issuer} has no key '{header.kid}' here")
        if key.algorithm_name != header.alg:
            raise Unauthorized(f"key '{header.kid}' is for {key.algorithm_name}, not {header.alg}")
        claims = self._verified(token, key, header.alg, issuer, endpoint)
        if claims.exp - claims.iat > self.max_lifetime:
            raise Unauthorized(
                f"the JWT lives {claims.exp - claims.iat} s (exp - iat); at most "
                f"{self.max_lifetime} s are accepted"
            )
        self._first_use(claims)
        return claims

    @staticmethod
    def _verified(token: str, key: jwt.PyJWK, alg: str, issuer: str, endpoint: str) -> JwtClaims:
        try:
            return JwtClaims.model_validate(
                jwt.decode(
                    token,
                    key=key.key,
                    algorithms=[alg],
                    audience=endpoint,
                    issuer=issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                )
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"the JWT is for another endpoint (aud), not {endpoint}") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(
                "the JWT's signature does not verify with the issuer's key"
            ) from None
        except jwt.MissingRequiredClaimError as e:
            raise Unauthorized(f"the JWT lacks the required claim '{e.claim}'") from None
        except jwt.InvalidTokenError as e:
            raise Unauthorized(f"the JWT is not valid ({e})") from None
        except ValidationError as e:
            raise Unauthorized(
                f"the JWT's claims are malformed ({str(e).splitlines()[0]})"
            ) from None

    def _first_use(self, claims: JwtClaims) -> None:
        """A `jti` is good once (replay protection); kept until its token expires."""
        now = int(time.time())
        with self._lock:
            for seen in [k for k, exp in self._seen.items() if exp + LEEWAY_SECONDS < now]:
                del self._seen[seen]
            key = (claims.iss, claims.jti)
            if key in self._seen:
                raise Unauthorized("the JWT has been used before (same jti)")
            self._seen[key] = claims.exp

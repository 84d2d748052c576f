"""CDS Hooks client authentication: only EHRs the service trusts get answers.

Keys are made here with `cryptography` (the specification's own example key pair is
used too where ../shared is present). The end-to-end tests start `dmtwatch serve
--trust ISSUER=JWKS` as a process and call it over HTTP with signed JWTs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dmtwatch.cds.client_auth import ClientAuth, TrustError, Unauthorized, read_key_set
from tests import cds_patients as P
from tests.fhir_server import free_port, running

SPEC = Path(__file__).resolve().parents[2] / "shared" / "data" / "cds-hooks" / "v2.0.1"
ISSUER = "https://ehr.example.org/"
ENDPOINT = "http://127.0.0.1:8000/cds-services/dmtwatch-monitoring"
SERVICE = "/cds-services/dmtwatch-monitoring"


class Ehr:
    """An EHR's signing key and its public JWK Set."""

    def __init__(self, alg: str = "ES384", kid: str = "ehr-key-1"):
        self.alg, self.kid = alg, kid
        if alg == "ES384":
            self.private = ec.generate_private_key(ec.SECP384R1())
            algorithm = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA384)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algorithm = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA384)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        self.jwks = {"keys": [{**public, "kid": kid, "use": "sig", "alg": alg}]}

    def token(self, aud: str = ENDPOINT, **claims) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": aud,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": self.kid})

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.kid}.jwks.json"
        path.write_text(json.dumps(self.jwks))
        return path


@pytest.fixture(scope="module")
def ehr() -> Ehr:
    return Ehr()


@pytest.fixture
def auth(ehr, tmp_path) -> ClientAuth:
    return ClientAuth.from_files({ISSUER: ehr.write(tmp_path)})


def _refused(auth: ClientAuth, header: str | None, endpoint: str = ENDPOINT) -> str:
    with pytest.raises(Unauthorized) as refused:
        auth.check(header, endpoint)
    return refused.value.reason


# --- the checks, one by one ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_token_signed_by_a_trusted_ehr_is_accepted(alg, tmp_path) -> None:
    """The specification requires services to accept both algorithms."""
    signer = Ehr(alg)
    auth = ClientAuth.from_files({ISSUER: signer.write(tmp_path)})
    claims = auth.check(f"Bearer {signer.token(tenant='clinic-7')}", ENDPOINT)
    assert claims.iss == ISSUER and claims.tenant == "clinic-7"


def test_an_audience_list_naming_the_endpoint_is_accepted(auth, ehr) -> None:
    token = ehr.token(aud=["https://other.example.org/cds-services/x", ENDPOINT])
    assert auth.check(f"Bearer {token}", ENDPOINT).iss == ISSUER


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "carries no JWT"),
        ("", "carries no JWT"),
        ("Basic dXNlcjpwYXNz", "carries no JWT"),
        ("Bearer ", "carries no JWT"),
        ("Bearer not.a.jwt", "malformed"),
    ],
)
def test_a_call_without_a_usable_token_is_refused(auth, header, reason) -> None:
    assert reason in _refused(auth, header)


def test_the_same_token_twice_is_refused(auth, ehr) -> None:
    token = ehr.token()
    auth.check(f"Bearer {token}", ENDPOINT)
    assert "used before" in _refused(auth, f"Bearer {token}")


def test_a_token_for_another_endpoint_is_refused(auth, ehr) -> None:
    token = ehr.token(aud="https://cds.example.org/cds-services/other")
    assert "another endpoint" in _refused(auth, f"Bearer {token}")


def test_expiry_is_checked_with_a_minute_of_leeway(auth, ehr) -> None:
    now = int(time.time())
    # lifetimes (exp - iat) under the 5-minute maximum, so only expiry is tested here
    just_inside = ehr.token(iat=now - 290, exp=now - 50)  # within the 60 s leeway
    assert auth.check(f"Bearer {just_inside}", ENDPOINT).exp == now - 50
    expired = ehr.token(iat=now - 290, exp=now - 70)
    assert "expired" in _refused(auth, f"Bearer {expired}")


def test_a_long_lived_token_is_refused(auth, ehr, tmp_path) -> None:
    """exp - iat at most 5 minutes by default (a stolen 10-year token is worth nothing)."""
    now = int(time.time())
    ten_years = ehr.token(iat=now, exp=now + 10 * 365 * 86400)
    assert "at most 300 s" in _refused(auth, f"Bearer {ten_years}")
    assert auth.check(f"Bearer {ehr.token(iat=now, exp=now + 300)}", ENDPOINT)
    stricter = ClientAuth.from_files({ISSUER: ehr.write(tmp_path)}, max_lifetime=60)
    assert "at most 60 s" in _refused(stricter, f"Bearer {ehr.token(iat=now, exp=now + 120)}")
    future = ehr.token(iat=now + 3600, exp=now + 3700)
    assert "not yet valid (iat)" in _refused(auth, f"Bearer {future}")


@pytest.mark.parametrize("claim", ["iss", "jti", "iat", "exp", "aud"])
def test_a_token_without_a_required_claim_is_refused(auth, ehr, claim) -> None:
    reason = _refused(auth, f"Bearer {ehr.token(**{claim: None})}")
    assert f"lacks the required claim '{claim}'" in reason


def test_a_token_from_an_unknown_issuer_is_refused(auth, ehr) -> None:
    token = ehr.token(iss="https://intruder.example.org/")
    assert "not trusted" in _refused(auth, f"Bearer {token}")


def test_a_token_signed_by_another_key_is_refused(auth) -> None:
    impostor = Ehr(kid="ehr-key-1")  # same kid, different private key
    assert "does not verify" in _refused(auth, f"Bearer {impostor.token()}")


def test_a_token_naming_an_unknown_key_is_refused(auth) -> None:
    assert "no key 'other-kid'" in _refused(auth, f"Bearer {Ehr(kid='other-kid').token()}")


def test_unsigned_and_shared_secret_tokens_are_refused(auth, ehr) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ENDPOINT, "iat": now, "exp": now + 60, "jti": "x"}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": ehr.kid})
    assert "signed with none" in _refused(auth, f"Bearer {unsigned}")
    # the public key used as an HMAC secret (algorithm confusion), made by hand since
    # PyJWT itself refuses to sign so
    secret = json.dumps(ehr.jwks["keys"][0]).encode()
    confused = _hmac_token({"alg": "HS384", "typ": "JWT", "kid": ehr.kid}, claims, secret)
    assert "signed with HS384" in _refused(auth, f"Bearer {confused}")


def _hmac_token(header: dict, claims: dict, secret: bytes) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signed.encode(), hashlib.sha384).digest()
    return f"{signed}.{part(signature)}"


def test_an_rsa_key_does_not_verify_an_ec_token_under_its_kid(tmp_path) -> None:
    rsa_ehr = Ehr("RS384", kid="k")
    auth = ClientAuth.from_files({ISSUER: rsa_ehr.write(tmp_path)})
    ec_token = Ehr("ES384", kid="k").token()
    assert "is for RS384, not ES384" in _refused(auth, f"Bearer {ec_token}")


# --- key files ----------------------------------------------------------------------------


def test_key_files_that_cannot_be_trusted_are_refused_at_start(ehr, tmp_path) -> None:
    def refused(content) -> str:
        path = tmp_path / "keys.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(TrustError) as e:
            read_key_set(path)
        return str(e.value)

    key = ehr.jwks["keys"][0]
    assert "is not a JWK Set" in refused("{not json")
    assert "is not a JWK Set" in refused({"kty": "EC"})
    assert "holds no keys" in refused({"keys": []})
    assert "has no kid" in refused({"keys": [{k: v for k, v in key.items() if k != "kid"}]})
    assert "private key" in refused({"keys": [{**key, "d": "secret"}]})
    assert "is for RS256" in refused({"keys": [{**key, "alg": "RS256"}]})
    with pytest.raises(TrustError, match="cannot be read"):
        read_key_set(tmp_path / "absent.json")


@pytest.mark.skipif(not SPEC.is_dir(), reason=f"{SPEC} is absent (../shared beside the repo)")
def test_the_specifications_example_keys_sign_and_verify(tmp_path) -> None:
    """The specification's example: its private key signs, its public JWK Set verifies."""
    private = json.loads((SPEC / "index__24_example.json").read_text())
    header = json.loads((SPEC / "index__21_example.json").read_text())
    payload = json.loads((SPEC / "index__22_example.json").read_text())
    now = int(time.time())
    payload.update(aud=ENDPOINT, iat=now, exp=now + 300)  # the example's date is 2015
    signing = jwt.PyJWK(private, algorithm="ES384")
    extra = {k: v for k, v in header.items() if k not in ("alg", "typ")}
    token = jwt.encode(payload, signing.key, algorithm=header["alg"], headers=extra)
    auth = ClientAuth.from_files({payload["iss"]: SPEC / "index__23_example.json"})
    claims = auth.check(f"Bearer {token}", ENDPOINT)
    assert claims.tenant == payload["tenant"] and claims.jti == payload["jti"]
    # the example private key is not accepted as a trusted key file
    (tmp_path / "private.json").write_text(json.dumps({"keys": [private]}))
    with pytest.raises(TrustError, match="private key"):
        read_key_set(tmp_path / "private.json")


# --- the service, over HTTP ---------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(ehr, tmp_path_factory):
    """`dmtwatch serve --trust` on a free loopback port: its base URL."""
    keys = ehr.write(tmp_path_factory.mktemp("trust"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(port)]
    command += ["--trust", f"{ISSUER}={keys}", "--allow-origin", "https://sandbox.cds-hooks.org"]
    with running(command, f"{base}/findings/"):
        yield base


def _signed(ehr: Ehr, base: str, path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ehr.token(aud=base + path)}"}


def test_the_service_refuses_callers_without_a_trusted_token(guarded, ehr) -> None:
    for answer in (
        httpx.get(f"{guarded}/cds-services", timeout=10),
        httpx.post(f"{guarded}{SERVICE}", json={}, timeout=10),
        httpx.get(
            f"{guarded}/cds-services",
            headers={"Authorization": f"Bearer {Ehr().token(aud=guarded + '/cds-services')}"},
            timeout=10,
        ),
    ):
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    # a browser-based EHR can read why: the refusal carries the CORS headers
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    refused = httpx.get(f"{guarded}/cds-services", headers=origin, timeout=10)
    assert "carries no JWT" in refused.text
    assert refused.headers["Access-Control-Allow-Origin"] == origin["Origin"]


def test_the_service_answers_a_trusted_ehr(guarded, ehr) -> None:
    discovery = httpx.get(
        f"{guarded}/cds-services", headers=_signed(ehr, guarded, "/cds-services"), timeout=10
    )
    assert discovery.status_code == 200
    assert discovery.json()["services"][0]["id"] == "dmtwatch-monitoring"
    pid = "auth-relapse"
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": pid},
        "prefetch": P.prefetch(P.relapse_without_mri(pid, dt.date.today())),
    }
    headers = _signed(ehr, guarded, SERVICE)
    answer = httpx.post(f"{guarded}{SERVICE}", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    assert [c["summary"].split(":")[0] for c in answer.json()["cards"]] == ["CNS-MRI"]
    again = httpx.post(f"{guarded}{SERVICE}", json=body, headers=headers, timeout=60)
    assert again.status_code == 401 and "used before" in again.text


def test_the_audience_is_the_configured_url_not_the_host_header(guarded, ehr) -> None:
    """A token minted for another service, sent with that service's name as Host, is
    refused: the audience is checked against the service's own URL (--public-url, by
    default http://HOST:PORT as served), never against what the caller says."""
    other = "https://other-service.example"
    token = ehr.token(aud=other + SERVICE)
    body = {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}}
    answer = httpx.post(
        f"{guarded}{SERVICE}",
        json=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Host": "other-service.example",
            "X-Forwarded-Host": "other-service.example",
            "X-Forwarded-Proto": "https",
        },
        timeout=30,
    )
    assert answer.status_code == 401 and "another endpoint" in answer.text


def test_the_maximum_token_lifetime_is_an_option(ehr, tmp_path) -> None:
    keys = ehr.write(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(port)]
    command += ["--trust", f"{ISSUER}={keys}", "--max-token-age", "60"]
    now = int(time.time())
    with running(command, f"{base}/findings/"):
        long = ehr.token(aud=base + "/cds-services", iat=now, exp=now + 120)
        answer = httpx.get(
            f"{base}/cds-services", headers={"Authorization": f"Bearer {long}"}, timeout=10
        )
        assert answer.status_code == 401 and "at most 60 s" in answer.text
        short = ehr.token(aud=base + "/cds-services", iat=now, exp=now + 60)
        answer = httpx.get(
            f"{base}/cds-services", headers={"Authorization": f"Bearer {short}"}, timeout=10
        )
        assert answer.status_code == 200


def test_preflight_and_finding_pages_need_no_token(guarded) -> None:
    preflight = httpx.options(
        f"{guarded}{SERVICE}",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert httpx.get(f"{guarded}/findings/CNS-MRI", timeout=10).status_code == 200


def test_a_malformed_trust_option_stops_the_service_at_start(tmp_path) -> None:
    # a path longer than any terminal, wherever the checkout lives: the message stays whole
    absent = tmp_path.joinpath(*["a-folder-of-trusted-ehr-key-sets"] * 5, "absent.json")
    for value, line, code in (  # a malformed option is a usage error; a bad key file, 1
        ("no-equals-sign", "error: --trust 'no-equals-sign': expected ISSUER=JWKS_FILE", 64),
        (f"{ISSUER}={absent}", f"error: --trust: {absent}: cannot be read", 1),
    ):
        command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(free_port())]
        done = subprocess.run(
            [*command, "--trust", value],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == code
        assert any(s.startswith(line) for s in done.stderr.splitlines()), done.stderr

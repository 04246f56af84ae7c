"""Google's identity, as the local Cloud Run needs it: a service account key, Google's OAuth 2.0 token endpoint,
and the Google-signed ID tokens a private Cloud Run service demands.

- ``service_account_info(home, token_uri)``: the deploy account's JSON key (``deploy@<project>.iam
  .gserviceaccount.com``, an RSA key made once per sandbox home, 0600), its ``token_uri`` this stand-in, so
  google-auth's own ``service_account`` credentials sign their JWT assertions with it and trade them here;
- ``exchange(home, form)``: the JWT-bearer grant as Google's ``oauth2.googleapis.com/token`` answers it: the
  assertion's signature (the account's public key), issuer, audience (the token endpoint) and expiry checked;
  with a ``target_audience`` claim an ID token for it (RS256, signed by this sandbox's "Google" key, issuer
  ``https://accounts.google.com``, the account's email), else an access token;
- ``verify_id_token(home, token, audiences)``: what Cloud Run checks before a private service sees a request.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.cloudrun_fake import PROJECT, state_dir

ACCOUNT = f"deploy@{PROJECT}.iam.gserviceaccount.com"
ISSUER = "https://accounts.google.com"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"  # noqa: S105 (an address)
LIFETIME_SECONDS = 3600


class GrantError(Exception):
    """An assertion Google would refuse: ``error`` and ``description`` as its token endpoint answers them."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def _key_file(home: Path, name: str) -> Path:
    return state_dir(home) / "identity" / f"{name}.pem"


def _private_key(home: Path, name: str) -> str:
    """The PEM of RSA key ``name``, made once (0600): concurrent first calls agree on one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = _key_file(home, name)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        scratch = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        scratch.write_bytes(pem)
        scratch.chmod(0o600)
        try:
            os.link(scratch, path)  # the first one wins; a loser reads the winner's
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
    return path.read_text()


def _public_cert(home: Path, name: str) -> str:
    """The public key of ``name`` as PEM (google.auth.jwt.decode takes it as a cert)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(_private_key(home, name).encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def service_account_info(home: Path, token_uri: str) -> dict[str, str]:
    """The deploy account's JSON key, as ``gcloud iam service-accounts keys create`` gives it."""
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "sandbox-deploy",
        "private_key": _private_key(home, "deploy"),
        "client_email": ACCOUNT,
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


def exchange(home: Path, form: dict[str, str], token_uri: str) -> dict[str, Any]:
    """The token endpoint's answer to a JWT-bearer grant; GrantError when Google would refuse it."""
    from google.auth import crypt, jwt

    if form.get("grant_type") != JWT_BEARER:
        raise GrantError("unsupported_grant_type", f"grant_type must be {JWT_BEARER}")
    try:
        # google-auth addresses an ID-token assertion to Google's endpoint whatever the key's token_uri says.
        audience = [token_uri, GOOGLE_TOKEN_ENDPOINT]
        claims = jwt.decode(form.get("assertion") or "", certs=_public_cert(home, "deploy"), audience=audience)
    except (ValueError, KeyError) as exc:
        raise GrantError("invalid_grant", f"Invalid JWT: {exc}") from None
    if claims.get("iss") != ACCOUNT:
        raise GrantError("invalid_grant", f"Invalid JWT: no such service account {claims.get('iss')!r}")
    now = int(time.time())
    audience = claims.get("target_audience")
    if audience:
        signer = crypt.RSASigner.from_string(_private_key(home, "google"), key_id="sandbox-google")
        payload = {
            "iss": ISSUER,
            "aud": audience,
            "azp": ACCOUNT,
            "sub": "100000000000000000001",
            "email": ACCOUNT,
            "email_verified": True,
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
        }
        return {"id_token": jwt.encode(signer, payload).decode()}
    return {
        "access_token": f"ya29.sandbox-{secrets.token_urlsafe(24)}",
        "expires_in": LIFETIME_SECONDS,
        "token_type": "Bearer",
    }


def verify_id_token(home: Path, token: str, audiences: set[str]) -> str:
    """The caller's email when ``token`` is a valid Google ID token for one of ``audiences``; ValueError why not."""
    from google.auth import jwt

    claims = jwt.decode(token, certs=_public_cert(home, "google"))
    if claims.get("iss") != ISSUER:
        raise ValueError(f"issuer {claims.get('iss')!r} is not Google")
    if claims.get("aud") not in audiences:
        raise ValueError(f"audience {claims.get('aud')!r} is not this service's")
    return str(claims.get("email") or claims.get("sub"))

"""The self-signed certificates of checks that need TLS for a while (varai_deploy.self_signed)."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from varai_deploy.self_signed import certificate


def test_it_names_its_host_and_its_pin_is_its_public_keys_sha256():
    made = certificate("storefront.example.test")
    cert = x509.load_pem_x509_certificate(made.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["storefront.example.test"]
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert made.spki_sha256 == base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= 3900
    key = serialization.load_pem_private_key(made.key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_only_a_ca_certificate_can_be_a_clients_own_root():
    plain = x509.load_pem_x509_certificate(certificate("localhost").cert_pem)
    assert x509.BasicConstraints not in {type(e.value) for e in plain.extensions}
    root = x509.load_pem_x509_certificate(certificate("localhost", ca=True).cert_pem)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_every_certificate_has_a_key_of_its_own():
    assert certificate("a.test").spki_sha256 != certificate("a.test").spki_sha256

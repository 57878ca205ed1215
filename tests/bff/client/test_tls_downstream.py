"""A service behind `https://` and a name: the BFF resolves the name to an address (DNS
discovery), connects to that address, and still speaks TLS *as the name*: the name goes in SNI
and the certificate is checked against it. A certificate for any other name is refused, so the
part degrades; it is never accepted unchecked.

The BFF runs as users run it (`python -m bff`), trusting a test CA through `SSL_CERT_FILE`,
OpenSSL's standard variable (the process's default trust store is read when it starts). The
service is a TLS server on 127.0.0.1 with a certificate for `localhost` only, no IP address in
it: a check made against the address would fail.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from bff_support import Mocks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from process_support import running, url_in
from pytest_aiohttp import AiohttpServer

from mock_services.catalogue import reviews_for

pytestmark = pytest.mark.slow


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A certificate authority of its own, and certificates it signs, as PEM files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._sign(
            _name("bff test CA"),
            self.key.public_key(),
            x509.BasicConstraints(ca=True, path_length=None),
            None,
        )
        self.file = directory / "ca.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _sign(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        constraints: x509.BasicConstraints,
        names: x509.SubjectAlternativeName | None,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(_name("bff test CA"))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(constraints, critical=True)
        )
        if names is not None:
            builder = builder.add_extension(names, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def server_context(self, dns_name: str) -> ssl.SSLContext:
        """A server context with a certificate for `dns_name` alone (no IP address)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(
            _name(dns_name),
            key.public_key(),
            x509.BasicConstraints(ca=False, path_length=None),
            x509.SubjectAlternativeName([x509.DNSName(dns_name)]),
        )
        cert_file, key_file = self.directory / f"{dns_name}.pem", self.directory / "key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


class TlsReviews:
    """A reviews service over TLS on 127.0.0.1; records the SNI name and Host of each call."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str | None] = []
        context.sni_callback = self._sni
        self.context = context

    def _sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def handler(self, request: web.Request) -> web.Response:
        self.hosts.append(request.headers.get("Host"))
        response = web.json_response(reviews_for(request.match_info["id"]))
        response.headers["Cache-Control"] = "no-store"
        return response

    async def start(self, aiohttp_server: AiohttpServer) -> int:
        app = web.Application()
        app.router.add_get("/reviews/{id}", self.handler)
        server = await aiohttp_server(app, host="127.0.0.1", ssl=self.context)
        assert ipaddress.ip_address(server.host).is_loopback
        return int(server.port)


async def details_from_a_bff(mocks: Mocks, ca: Authority, port: int) -> tuple[int, dict[str, str]]:
    """One `/product-details/P001` from a `python -m bff` calling reviews at
    https://localhost:port (found by name) and trusting `ca`: (status, degraded)."""
    env = {
        **mocks.env(),
        "BFF_REVIEWS_URL": f"https://localhost:{port}",
        "SSL_CERT_FILE": str(ca.file),
    }
    async with running(["-m", "bff", "--port=0", "--workers=1"], env) as (_, lines):
        url = url_in(await lines.next_matching("bff listening on"))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/product-details/P001") as resp,
        ):
            body = await resp.json()
            return resp.status, body["degraded"]


async def test_a_service_found_by_name_is_called_over_tls_as_that_name(
    mocks: Mocks, ca: Authority, aiohttp_server: AiohttpServer
) -> None:
    reviews = TlsReviews(ca.server_context("localhost"))
    port = await reviews.start(aiohttp_server)
    assert await details_from_a_bff(mocks, ca, port) == (200, {})
    assert reviews.sni == ["localhost"]  # one handshake, one connection
    assert reviews.hosts == [f"localhost:{port}"]


async def test_a_certificate_for_another_name_is_refused(
    mocks: Mocks, ca: Authority, aiohttp_server: AiohttpServer
) -> None:
    reviews = TlsReviews(ca.server_context("reviews.other.internal"))
    port = await reviews.start(aiohttp_server)
    status, degraded = await details_from_a_bff(mocks, ca, port)
    assert (status, degraded) == (200, {"reviews": "unavailable"})
    assert reviews.hosts == []  # no request ever went over an unchecked connection
    assert set(reviews.sni) == {"localhost"}

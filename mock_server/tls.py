"""HTTPS for the server: a local CA and a certificate for 127.0.0.1/localhost made at start
(trustme), or the user's own certificate and key. The official clients wrap only `https:` (and
`data:`) outputs as file objects, so an HTTPS listener makes their `FileOutput` work."""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mock_server.config import Settings

CA_FILE_NAME = "mock-server-ca.pem"
_ALWAYS = ("localhost", "127.0.0.1", "::1")


class TlsError(ValueError):
    """The user's certificate or key cannot be served; the message says which and why."""


@dataclass(frozen=True)
class Certificates:
    """What uvicorn serves and what clients trust."""

    certfile: Path  # the server's certificate chain (with its key when `keyfile` is None)
    keyfile: Path | None
    ca_file: Path | None  # the generated CA to trust; None for the user's own certificate


def default_ca_file() -> Path:
    return Path(tempfile.gettempdir()) / CA_FILE_NAME


def identities(settings: Settings) -> list[str]:
    """Names the certificate is valid for: the loopback names, the bound host unless it is a
    wildcard, and the host of --public-url."""
    names = list(_ALWAYS)
    extra = [settings.host]
    if settings.public_url:
        extra.append(urlsplit(settings.public_url).hostname or "")
    for name in extra:
        try:
            if ipaddress.ip_address(name).is_unspecified:
                continue  # 0.0.0.0 / :: is not a name a client connects to
        except ValueError:
            pass
        if name and name not in names:
            names.append(name)
    return names


def certificates(settings: Settings, workdir: Path, ca_file: Path | None = None) -> Certificates:
    """The user's certificate, or a new CA (written to `ca_file`, else `settings.tls_ca_file`,
    else <tempdir>/mock-server-ca.pem) and a server certificate with its key in `workdir`
    (a private folder the caller removes when the server has loaded it)."""
    if settings.tls_cert is not None:
        _check_pair(settings.tls_cert, settings.tls_key)
        return Certificates(settings.tls_cert, settings.tls_key, None)
    import trustme  # only --tls needs it (and cryptography beneath it)

    ca = trustme.CA(organization_name="mock-server local CA")
    leaf = ca.issue_cert(*identities(settings), organization_name="mock-server")
    server = workdir / "server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server))
    server.chmod(0o600)
    target = ca_file or settings.tls_ca_file or default_ca_file()
    _write_atomically(target, ca.cert_pem.bytes())
    return Certificates(server, None, target)


def _write_atomically(path: Path, data: bytes) -> None:
    """A client reading the CA file never sees half of it, nor a mix of two servers' CAs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temp, 0o644)  # a certificate, not a secret: any local client may read it
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _check_pair(cert: Path, key: Path | None) -> None:
    """Load the pair as uvicorn will, so a bad one stops the start with a message, not a
    traceback from inside the server."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        named = f"{cert}" + (f" with key {key}" if key is not None else "")
        raise TlsError(f"cannot serve HTTPS with certificate {named}: {exc}") from None


def listening(where: str, certs: Certificates | None) -> str:
    """The start message: the URL, and with a generated CA the file to trust and how."""
    if certs is None:
        return f"mock-server listening on http://{where}\n"
    if certs.ca_file is None:
        return f"mock-server listening on https://{where}\n"
    ca = certs.ca_file
    return (
        f"mock-server listening on https://{where} (CA certificate: {ca})\n"
        f"mock-server: trust it with SSL_CERT_FILE={ca} (Python, httpx) or "
        f"NODE_EXTRA_CA_CERTS={ca} (node)\n"
    )

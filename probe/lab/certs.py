"""Certificate authorities for the lab: one the probe is told to trust, others it is not.

Why real certificates: the TLS step must see what it sees on the Internet, a chain
that validates for the right name or fails for a reason (unknown issuer, wrong name),
and the archival record keeps the certificates themselves.  trustme makes a CA and
leaf certificates in memory; :class:`LabCA` also writes the CA certificate to a PEM
file, because the probe adds extra trust anchors only through ``--ca-bundle PATH``.

A lab trusts one :class:`LabCA` (its sites' certificates come from it) and gives a
blockpage server a certificate from a *second* ``LabCA`` that nobody trusts, as an ISP
blockpage server presents a certificate no browser accepts.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

import trustme


class LabCA:
    """A certificate authority for lab servers, its certificate on disk as ``ca_pem_path``.

    The files live in a temporary directory removed by :meth:`close` (or when the
    object is garbage-collected, or on leaving a ``with`` block).
    """

    def __init__(self, organization: str = "Kuzot Lab CA") -> None:
        self.organization = organization
        self._ca = trustme.CA(organization_name=organization)
        self._directory = tempfile.TemporaryDirectory(prefix="kuzot-lab-ca-")
        self.directory = Path(self._directory.name)
        self.ca_pem_path = self.directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self._issued = 0

    def __enter__(self) -> LabCA:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._directory.cleanup()

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate in PEM, as written to ``ca_pem_path``."""
        return self._ca.cert_pem.bytes()

    def issue(self, hostnames: Iterable[str]) -> tuple[Path, Path]:
        """Issue one leaf certificate for all ``hostnames`` (names or IP literals,
        ``"*.example.kg"`` wildcards allowed); return the chain's and key's PEM paths."""
        names = list(hostnames)
        if not names:
            raise ValueError("a certificate needs at least one hostname")
        leaf = self._ca.issue_cert(*names)
        self._issued += 1
        cert_path = self.directory / f"leaf-{self._issued}.pem"
        key_path = self.directory / f"leaf-{self._issued}.key"
        with cert_path.open("wb") as out:
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(key_path))
        return cert_path, key_path

    def server_context(self, hostnames: Iterable[str]) -> ssl.SSLContext:
        """A server-side context presenting a certificate for ``hostnames``."""
        cert_path, key_path = self.issue(hostnames)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA: for a plain client in tests."""
        # With a cafile, create_default_context loads that file and not the system store.
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

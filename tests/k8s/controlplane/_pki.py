"""Certificates for a throwaway control plane, made with the openssl command line.

A CA, the API server's serving certificate, one client certificate per component (the
API server maps CN to user and O to group, so RBAC applies to each as on a real cluster)
and the service-account signing key. EC P-256 keys: made in milliseconds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# Client identities: file stem → (CN = user, O = group or "").
CLIENTS = {
    "admin": ("augur-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
}
SERVER_SANS = (
    "IP:127.0.0.1",
    "IP:10.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def _key(name: str, cwd: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)


def _signed(name: str, subject: str, extensions: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.crt",
        cwd=cwd,
    )  # fmt: skip


def make_pki(directory: Path) -> Path:
    """Write every key and certificate into ``directory`` (made if absent); return it."""
    directory.mkdir(parents=True, exist_ok=True)
    _key("ca", directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=augur-test-ca", "-days", "30",
        "-sha256", "-out", "ca.crt",
        cwd=directory,
    )  # fmt: skip
    _signed(
        "apiserver",
        "/CN=kube-apiserver",
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(SERVER_SANS)}\n",
        directory,
    )
    for stem, (user, group) in CLIENTS.items():
        subject = f"/CN={user}" + (f"/O={group}" if group else "")
        _signed(
            stem,
            subject,
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
            directory,
        )
    _key("sa", directory)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    return directory

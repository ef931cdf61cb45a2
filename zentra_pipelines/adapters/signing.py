"""Ed25519 signing key for audit packets.

The key comes from a PEM file named by ``ZENTRA_SIGNING_KEY`` (the caller reads the
environment and passes the path in). Without one, a *development* key is generated once
at ``<home>/keys/dev_signing_key.pem`` (mode 0600) and every load logs a loud warning:
packets signed with it say ``key_kind: "development"``. Key material is never logged
and never put into an exception message.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zentra_pipelines.domain.evidence import key_id_for_raw_public_key

log = logging.getLogger("zentra.signing")

DEV_KEY_RELATIVE = Path("keys") / "dev_signing_key.pem"
#: A PEM private key is a few hundred bytes; refuse to slurp something enormous.
_MAX_KEY_FILE_BYTES = 64 * 1024


class SigningKeyError(Exception):
    """The signing key cannot be used. The message names the path, never the contents."""


@dataclass(frozen=True)
class Signer:
    key_id: str  # "ed25519:" + sha256 hex of the raw 32-byte public key
    key_kind: str  # "configured" | "development"
    public_pem: bytes  # SubjectPublicKeyInfo PEM
    path: Path | None = None
    _private: Ed25519PrivateKey = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    @classmethod
    def from_private_key(
        cls, key: Ed25519PrivateKey, key_kind: str, path: Path | None = None
    ) -> Signer:
        pub = key.public_key()
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        pem = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(
            key_id=key_id_for_raw_public_key(raw),
            key_kind=key_kind,
            public_pem=pem,
            path=path,
            _private=key,
        )

    def sign(self, data: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature (pure Ed25519, no pre-hash) of ``data``."""
        return self._private.sign(bytes(data))


def _read_key_file(path: Path) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SigningKeyError(f"signing key file {path} does not exist") from None
    except OSError as exc:
        raise SigningKeyError(f"signing key file {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SigningKeyError(f"signing key path {path} is not a regular file")
    if st.st_size > _MAX_KEY_FILE_BYTES:
        raise SigningKeyError(f"signing key file {path} is too large to be a PEM key")
    if st.st_mode & 0o077:
        log.warning(
            "signing key file %s is readable by group/others (mode %o); chmod 600 it",
            path,
            stat.S_IMODE(st.st_mode),
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"signing key file {path} cannot be read ({exc.strerror})") from None


def _parse_private_pem(data: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(
            f"signing key file {path} is password-protected; provide an unencrypted "
            "PEM Ed25519 private key (protect it with file permissions or a secret store)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(
            f"signing key file {path} is not a PEM private key (want PKCS#8 Ed25519, "
            "e.g. `openssl genpkey -algorithm ed25519`)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"signing key file {path} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_dev_key(path: Path) -> None:
    """Write a new key to ``path`` unless one is already there (never overwrites)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev_signing_key.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and never overwrites: a concurrent creator wins
        except FileExistsError:
            return
        log.warning("created a new DEVELOPMENT signing key at %s", path)
        _fsync_dir(path.parent)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def load_signer(home: Path, key_path: str | None) -> Signer:
    """The packet signer.

    ``key_path`` is the value of ``ZENTRA_SIGNING_KEY`` (``None`` or empty when unset):
    a PEM Ed25519 private key, ``key_kind="configured"``. Otherwise the development key
    under ``<home>/keys/`` is used (created on first use), ``key_kind="development"``.
    Raises :class:`SigningKeyError` for a missing or unusable key file.
    """
    if key_path:
        path = Path(key_path).expanduser()
        key = _parse_private_pem(_read_key_file(path), path)
        signer = Signer.from_private_key(key, "configured", path)
        log.info("packet signing key %s (configured, %s)", signer.key_id, path)
        return signer

    path = Path(home) / DEV_KEY_RELATIVE
    if not path.exists():
        _create_dev_key(path)
    key = _parse_private_pem(_read_key_file(path), path)
    signer = Signer.from_private_key(key, "development", path)
    log.warning(
        "!!! ZENTRA_SIGNING_KEY is not set: audit packets are signed with the DEVELOPMENT "
        "key %s (%s). Such packets are marked key_kind=development and are not production "
        "evidence; set ZENTRA_SIGNING_KEY to a PEM Ed25519 private key. !!!",
        path,
        signer.key_id,
    )
    return signer

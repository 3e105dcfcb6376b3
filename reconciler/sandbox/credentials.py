"""The sandbox's credentials folder, laid out like the one a Eucalyptus cloud hands its admin.

``write_credentials`` makes fresh keys and certificates every time it is called:

* ``cloud-cert.pem`` / ``cloud-pk.pem`` -- the cloud's self-signed certificate and, because this
  is a test cloud, its private key too (so tools can check what was bundled for it);
* ``euca2-admin-cert.pem`` / ``euca2-admin-pk.pem`` -- the admin user's certificate (issued by
  the cloud) and private key;
* ``eucarc`` -- a shell file that exports the endpoints and keys, sourceable from anywhere.

``read_eucarc`` parses such a file back into a dict of absolute values.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

#: The admin account's number unless told another (moto's default account).
ACCOUNT_ID = "123456789012"
ACCOUNT_RE = re.compile(r"[0-9]{12}")
REGION = "eucalyptus"

CLOUD_CERT = "cloud-cert.pem"
CLOUD_KEY = "cloud-pk.pem"
USER_CERT = "euca2-admin-cert.pem"
USER_KEY = "euca2-admin-pk.pem"
EUCARC = "eucarc"

# Service paths of a Eucalyptus front end (DESIGN §6).
COMPUTE_PATH = "/services/compute"
OBJECTSTORAGE_PATH = "/services/objectstorage"
LOADBALANCING_PATH = "/services/LoadBalancing"
AUTOSCALING_PATH = "/services/AutoScaling"
PROPERTIES_PATH = "/services/Properties"
EMPYREAN_PATH = "/services/Empyrean"
CONFIGURATION_PATH = "/services/Configuration"


def new_access_key() -> str:
    """A random access key id shaped like Eucalyptus's: 20 upper-case letters and digits."""
    return "AKI" + secrets.token_hex(9).upper()[:17]


def new_secret_key() -> str:
    return secrets.token_hex(20)


@dataclass(frozen=True)
class SigningKeys:
    cloud_key: rsa.RSAPrivateKey
    user_key: rsa.RSAPrivateKey
    user_cert: x509.Certificate


@dataclass(frozen=True)
class Credentials:
    """What ``write_credentials`` wrote: the folder, the keys, and the eucarc's variables."""

    directory: Path
    access_key: str
    secret_key: str
    account_id: str
    env: dict[str, str] = field(default_factory=dict)
    #: The key and certificate objects written (the sandbox signs and decrypts with them, without
    #: reading back and re-validating what it has just made).
    keys: SigningKeys | None = field(default=None, repr=False, compare=False)

    @property
    def eucarc(self) -> Path:
        return self.directory / EUCARC

    @property
    def cloud_cert(self) -> Path:
        return self.directory / CLOUD_CERT

    @property
    def cloud_key(self) -> Path:
        return self.directory / CLOUD_KEY

    @property
    def user_cert(self) -> Path:
        return self.directory / USER_CERT

    @property
    def user_key(self) -> Path:
        return self.directory / USER_KEY


def _name(common_name: str, *, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Barbara"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Eucalyptus"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key, signing_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=5 * 365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256())
    )


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes | str, mode: int) -> None:
    """Write a file with ``mode`` from its first byte (no window where a key is world-readable)."""
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def make_directory(directory: Path) -> Path:
    """Create ``directory`` (and parents) and make it private to its owner."""
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def eucarc_text(base_url: str, *, access_key: str, secret_key: str, account_id: str) -> str:
    """The eucarc a Eucalyptus 4.x cloud would hand its admin, for a front end at ``base_url``."""
    def q(value: str) -> str:  # single-quoted like a real eucarc; keys are [A-Za-z0-9]
        return shlex.quote(value) if not value.isalnum() else f"'{value}'"

    return f"""\
# Eucalyptus credentials for the recon sandbox cloud at {base_url}
# Usage: source eucarc   (works from any directory)
EUCA_KEY_DIR=$(cd $(dirname ${{BASH_SOURCE:-$0}}); pwd -P)
export EC2_URL={base_url}{COMPUTE_PATH}
export S3_URL={base_url}{OBJECTSTORAGE_PATH}
export AWS_ELB_URL={base_url}{LOADBALANCING_PATH}
export AWS_AUTO_SCALING_URL={base_url}{AUTOSCALING_PATH}
export EUCA_PROPERTIES_URL={base_url}{PROPERTIES_PATH}
export EUCALYPTUS_CERT=${{EUCA_KEY_DIR}}/{CLOUD_CERT}
export EC2_CERT=${{EUCA_KEY_DIR}}/{USER_CERT}
export EC2_PRIVATE_KEY=${{EUCA_KEY_DIR}}/{USER_KEY}
export EC2_ACCOUNT_NUMBER={q(account_id)}
export EC2_USER_ID={q(account_id)}
export EC2_ACCESS_KEY={q(access_key)}
export EC2_SECRET_KEY={q(secret_key)}
export AWS_ACCESS_KEY={q(access_key)}
export AWS_SECRET_KEY={q(secret_key)}
export AWS_ACCESS_KEY_ID={q(access_key)}
export AWS_SECRET_ACCESS_KEY={q(secret_key)}
export AWS_DEFAULT_REGION={REGION}
alias ec2-bundle-image="ec2-bundle-image --cert ${{EC2_CERT}} --privatekey ${{EC2_PRIVATE_KEY}} --user ${{EC2_ACCOUNT_NUMBER}} --ec2cert ${{EUCALYPTUS_CERT}}"
alias ec2-upload-bundle="ec2-upload-bundle -a ${{EC2_ACCESS_KEY}} -s ${{EC2_SECRET_KEY}} --url ${{S3_URL}}"
"""


_EXPORT = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_eucarc(text: str, key_dir: Path) -> dict[str, str]:
    """The exported variables of a eucarc, with ``${EUCA_KEY_DIR}`` replaced by ``key_dir``.

    Handles the forms eucarc files use: bare values, single or double quotes, and
    ``${EUCA_KEY_DIR}`` / ``$EUCA_KEY_DIR`` references. No other shell expansion is done.
    """
    env: dict[str, str] = {}
    key_dir_text = str(Path(key_dir).resolve())
    for line in text.splitlines():
        match = _EXPORT.match(line)
        if not match:
            continue
        name, raw = match.groups()
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            words = [raw.strip()]
        value = words[0] if words else ""
        value = value.replace("${EUCA_KEY_DIR}", key_dir_text).replace("$EUCA_KEY_DIR", key_dir_text)
        env[name] = value
    return env


def read_eucarc(path: Path) -> dict[str, str]:
    """Parse the eucarc at ``path``; key file paths come back absolute."""
    path = Path(path)
    return parse_eucarc(path.read_text(), path.parent)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


#: The cloud's and the user's keys, made ahead (``make_keys_ahead``); none unless so made.
_keys_ahead: list[rsa.RSAPrivateKey] = []


def make_keys_ahead() -> None:
    """Make the two RSA keys every sandbox needs now, for the sandboxes this process starts later.

    Making two 2048-bit keys costs 50-300 ms, most of a sandbox's start. A process that starts many
    sandboxes by forking (the test suite's fork server) calls this once before it forks: each forked
    sandbox then uses the same two keys instead of making its own. Its access keys stay its own."""
    _keys_ahead[:] = [_new_key(), _new_key()]


def write_credentials(directory: Path, base_url: str, *, account_id: str = ACCOUNT_ID) -> Credentials:
    """Write a fresh credentials folder for the cloud at ``base_url`` and return what was written."""
    directory = make_directory(directory)

    cloud_key, user_key = _keys_ahead or (_new_key(), _new_key())
    cloud_name = _name("cloud", org="Eucalyptus")
    cloud_cert = _certificate(cloud_name, cloud_name, cloud_key.public_key(), cloud_key, ca=True)

    user_name = _name("www.eucalyptus.com", org=account_id)
    user_cert = _certificate(user_name, cloud_name, user_key.public_key(), cloud_key, ca=False)

    _write(directory / CLOUD_CERT, cloud_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(directory / CLOUD_KEY, _key_pem(cloud_key), 0o600)
    _write(directory / USER_CERT, user_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(directory / USER_KEY, _key_pem(user_key), 0o600)

    access_key, secret_key = new_access_key(), new_secret_key()
    text = eucarc_text(base_url, access_key=access_key, secret_key=secret_key, account_id=account_id)
    _write(directory / EUCARC, text, 0o600)

    return Credentials(
        directory=directory,
        access_key=access_key,
        secret_key=secret_key,
        account_id=account_id,
        env=parse_eucarc(text, directory),
        keys=SigningKeys(cloud_key=cloud_key, user_key=user_key, user_cert=user_cert),
    )

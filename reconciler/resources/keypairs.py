"""Key pairs, imported from a public key the file names (``euca-import-keypair``).

The cloud keeps only a fingerprint, and clouds differ in how they compute it (AWS
and moto: MD5 of the DER public key; OpenSSH-style MD5 of the key blob; SHA-256), so
recon accepts any of them as the fingerprint of the desired key. A different key
under the same name is a replacement: delete, then import.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Mapping

from ..errors import ConfigError, ReconError
from ..schema import Field
from .abilities import Importable
from .base import ImportOption, Kind, LoadContext, Traits

MAX_KEY_BYTES = 16 << 10


def _colons(hex_digest: str) -> str:
    return ":".join(hex_digest[i:i + 2] for i in range(0, len(hex_digest), 2))


def parse_public_key(text: str, where: str) -> str:
    """The OpenSSH public key line without its comment; ConfigError if it is not exactly one."""
    lines = [number for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) > 1:
        raise ConfigError(f"holds {len(lines)} keys (lines {', '.join(map(str, lines[:5]))}"
                          f"{', …' if len(lines) > 5 else ''}); a key pair takes one", where=where,
                          hint="keep one key per file")
    parts = text.strip().split()
    if len(parts) < 2:
        raise ConfigError("not an OpenSSH public key (expected 'ssh-rsa AAAA… [comment]')", where=where)
    line = f"{parts[0]} {parts[1]}"
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_public_key(line.encode())
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ConfigError(f"not a valid OpenSSH public key: {exc}", where=where)
    except UnsupportedAlgorithm:
        raise ConfigError(f"not an OpenSSH public key: unsupported key type {parts[0][:40]!r}", where=where) from None
    return line


def fingerprints(public_key: str) -> list[str]:
    """Every fingerprint a cloud may show for this key, the AWS form first."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_public_key(public_key.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    blob = base64.b64decode(public_key.split()[1])
    return [
        _colons(hashlib.md5(der).hexdigest()),
        _colons(hashlib.md5(blob).hexdigest()),
        _colons(hashlib.sha1(der).hexdigest()),
        _colons(hashlib.sha256(der).hexdigest()),
        hashlib.sha256(der).hexdigest(),
        "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    ]


class KeyPairs(Kind, Importable):
    name = "keypairs"
    noun = "key pair"
    fields = {
        "public_key_file": Field("string", "OpenSSH public key file, relative to this file.", references=False),
        "public_key": Field("string", "OpenSSH public key, inline (instead of public_key_file).",
                            references=False),
    }
    outputs = {"name": "the key pair's name", "fingerprint": "the fingerprint the cloud shows"}
    traits = Traits(
        computed=frozenset({"fingerprint"}),
        replace_on=frozenset({"fingerprint"}),
    )

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        where = f"keypairs.{name}"
        if ("public_key_file" in block) == ("public_key" in block):
            raise ConfigError("give exactly one of public_key_file or public_key", where=where)
        if "public_key_file" in block:
            key_where = f"{where}.public_key_file"
            data = ctx.read_companion(block["public_key_file"], key_where, limit=MAX_KEY_BYTES)
            if b"PRIVATE KEY" in data:
                raise ConfigError("this is a private key; give the public key (.pub) file", where=key_where)
            try:
                text = data.decode("ascii")
            except UnicodeDecodeError:
                raise ConfigError("not an OpenSSH public key (non-ASCII bytes)", where=key_where)
        else:
            key_where, text = f"{where}.public_key", block["public_key"]
        public_key = parse_public_key(text, key_where)
        return {"public_key": public_key, "fingerprint": fingerprints(public_key)[0]}

    def compare_view(self, name, desired, live, prior):
        candidates = fingerprints(desired["public_key"])
        live_fp = live.get("fingerprint")
        return {"fingerprint": live_fp if live_fp in candidates else candidates[0]}, {"fingerprint": live_fp}

    def display_view(self, name, attrs):
        return {"fingerprint": attrs["fingerprint"], "public_key": attrs["public_key"]}

    def output(self, name, attrs, attr):
        return name if attr == "name" else attrs.get(attr)

    import_options = {"public_key_file": ImportOption("--public-key-file",
                                                      "the public key (the cloud keeps only its fingerprint).")}

    def import_block(self, ctx, name, cloud_id, options):
        """The cloud keeps only a fingerprint: the public key must come with --public-key-file."""
        where = f"keypairs.{name}"
        live = self.read(ctx, {}).get(cloud_id)
        if live is None:
            raise ReconError(f"no key pair {cloud_id!r} in the cloud", where=where)
        if cloud_id != name:
            raise ReconError("a key pair's block name is its name in the cloud", where=where,
                             hint=f"import it as keypairs.{cloud_id}")
        relative = options.get("public_key_file")
        if not relative:
            raise ReconError("the cloud keeps only the key's fingerprint", where=where,
                             hint="give the public key with --public-key-file PATH (relative to the file)")
        ctx_load = LoadContext(ctx.base_dir, "import", ctx.stack)
        key = parse_public_key(ctx_load.read_companion(relative, where, limit=MAX_KEY_BYTES).decode("ascii", "replace"),
                               where)
        if live["fingerprint"] not in fingerprints(key):
            raise ReconError(f"{relative} is not the key the cloud holds (fingerprint {live['fingerprint']})",
                             where=where)
        return {"public_key_file": relative}, cloud_id

    def read(self, ctx, wanted):
        reply = ctx.cloud.call("ec2", "describe_key_pairs", where="keypairs")
        return {kp["KeyName"]: {"fingerprint": kp.get("KeyFingerprint")} for kp in reply.get("KeyPairs", [])}

    def create(self, ctx, name, attrs):
        where = f"keypairs.{name}"
        reply = ctx.cloud.call("ec2", "import_key_pair", where=where, done_if_retried=("InvalidKeyPair.Duplicate",),
                           KeyName=name, PublicKeyMaterial=attrs["public_key"].encode())
        if reply is None:  # an earlier attempt of this very call went through
            reply = ctx.cloud.call("ec2", "describe_key_pairs", where=where, KeyNames=[name])["KeyPairs"][0]
        return {"public_key": attrs["public_key"], "fingerprint": reply.get("KeyFingerprint")}

    def update(self, ctx, name, before, after, changed):  # every change replaces
        self.delete(ctx, name, before, None)
        return self.create(ctx, name, after)

    def delete(self, ctx, name, before, prior):
        ctx.cloud.call("ec2", "delete_key_pair", where=f"keypairs.{name}", KeyName=name)


KIND = KeyPairs()

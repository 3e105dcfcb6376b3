"""Cloud properties (``euca-describe-properties`` / ``euca-modify-property``).

A property is identified by its name and has one attribute, ``value``. Properties
always exist; recon only changes their values. Removing one from the file leaves it
alone unless it is listed in ``[properties] reset = [...]``, which resets it once.
Hidden properties read back as ``********``: recon keeps a slow salted digest of the
value it wrote, never the value.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Collection, Mapping

from ..errors import ReconError
from ..schema import Field, Problems
from ..text import text_check
from ..toml_edits import insert_key
from .abilities import Importable, NamesOthers, Preexisting, Removal, TableSettings
from .base import Kind, LoadContext, NameUse, Traits

HIDDEN = "********"
#: Eucalyptus stores a value unbounded (a CLOB) and returns it in every DescribeProperties reply;
#: recon's bound is far above any real property's value.
VALUE_CHARS = 32 << 10
DIGEST_PREFIX = "scrypt:"
#: The load-balancer image and key pair properties (4.0 and 4.2+ names). Eucalyptus refuses a value
#: naming no machine image or key pair (DESIGN §11), so theirs must name one; any other value that
#: happens to be a key pair's name or an image's of the file only orders the change after it.
EMI_PROPERTIES = ("loadbalancing.loadbalancer_emi", "services.loadbalancing.worker.image")
KEYNAME_PROPERTIES = ("loadbalancing.loadbalancer_vm_keyname", "services.loadbalancing.worker.keyname")


def property_text(value: Any) -> str:
    """A TOML value as Eucalyptus prints it: integers plainly, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.lru_cache(maxsize=256)
def value_digest(name: str, value: str) -> str:
    """A salted, deliberately slow digest of a hidden property's value (60 ms: a plan and an apply ask
    for the same one several times, so each is worked out once a run)."""
    digest = hashlib.scrypt(value.encode(), salt=f"recon-property:{name}".encode(), n=2**14, r=8, p=1)
    return DIGEST_PREFIX + digest.hex()


class Properties(Kind, TableSettings, NamesOthers, Preexisting, Importable):
    name = "properties"
    fields = {"value": Field("scalar", "The property's value (strings, integers, booleans).",
                             check=text_check(VALUE_CHARS, newlines=True))}
    outputs = {"value": "the property's value"}
    traits = Traits(needs_live=frozenset({"keypairs", "images"}))

    def split_table(self, table: Mapping[str, Any], problems: Problems) -> tuple[dict[str, Any], dict[str, Any]]:
        blocks: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        for key, value in table.items():
            if key == "reset":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    problems.add("properties.reset", "expected an array of property names")
                else:
                    settings["reset"] = tuple(value)
            elif isinstance(value, (dict, list)):
                problems.add(f'properties."{key}"',
                             "expected a string, integer or boolean value "
                             f"(write \"{key}\" = VALUE under [properties])")
            else:
                blocks[key] = {"value": value}
        for name in settings.get("reset", ()):
            if name in blocks:
                problems.add("properties.reset", f"{name!r} is both set and listed in reset; keep one")
        return blocks, settings

    def json_schema(self, block_schema):
        return {"type": "object", "description": "Cloud properties: NAME = VALUE.",
                "properties": {"reset": {"type": "array", "items": {"type": "string"},
                                         "description": "Properties reset to their default when they leave the file."}},
                "additionalProperties": {"type": ["string", "integer", "boolean"]}}

    def normalize(self, name: str, block: Mapping[str, Any], ctx: LoadContext) -> dict[str, Any]:
        return {"value": property_text(block["value"])}

    def finalize(self, name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"value": property_text(attrs["value"])}

    def named(self, name, attrs):
        value = attrs["value"]
        if name in EMI_PROPERTIES or name in KEYNAME_PROPERTIES:  # empty: no key pair (or image) at all
            kind = "images" if name in EMI_PROPERTIES else "keypairs"
            return [NameUse("value", (kind,), value, required=True)] if value else []
        return [NameUse("value", ("keypairs", "images"), value)]

    def compare_view(self, name, desired, live, prior):
        if live.get("value") != HIDDEN:
            return {"value": desired["value"]}, {"value": live.get("value")}
        # Hidden: compare the digest of what the file wants with the digest recon wrote.
        written = (prior or {}).get("value")
        return {"value": value_digest(name, desired["value"])}, {"value": written if written and written.startswith(DIGEST_PREFIX) else HIDDEN}

    def sensitive_paths(self, name, desired, live):
        """A hidden property's value: the cloud shows it hidden, or recon kept only its digest."""
        kept = str((desired or {}).get("value", ""))
        return frozenset({"value"}) if (live or {}).get("value") == HIDDEN or kept.startswith(DIGEST_PREFIX) \
            else frozenset()

    def creatable(self, name, attrs) -> bool:
        return False

    def missing_message(self, cloud_name) -> str:
        return f"no property {cloud_name!r} on this cloud (recon sets properties, it cannot add them)"

    def removal(self, name: str, settings: Mapping[str, Any]) -> Removal:
        return Removal.DELETE if name in settings.get("reset", ()) else Removal.FORGET

    def import_block(self, ctx, name, cloud_id, options):
        live = self.read(ctx, {})
        if cloud_id not in live:
            raise ReconError(f"no property {cloud_id!r} on this cloud", where=f"properties.{name}")
        if live[cloud_id]["value"] == HIDDEN:
            raise ReconError("a hidden property's value cannot be read back; write it in the file instead",
                             where=f"properties.{name}")
        return {"value": live[cloud_id]["value"]}, cloud_id

    def add_to_file(self, text, name, block):
        """A property is one ``name = value`` line of ``[properties]``."""
        return insert_key(text, self.name, name, block["value"])

    def file_entry(self, block):
        return block["value"]

    def read(self, ctx, wanted):
        return {item["name"]: {"value": item.get("value") or ""} for item in ctx.cloud.properties_describe()}

    def state_attrs(self, name, attrs, live, prior):
        if live.get("value") == HIDDEN and not attrs["value"].startswith(DIGEST_PREFIX):
            return {"value": value_digest(name, attrs["value"])}
        return {"value": attrs["value"]}

    def create(self, ctx, name, attrs):  # properties exist already: "create" is never planned
        return self.update(ctx, name, {}, attrs, ["value"])

    def update(self, ctx, name, before, after, changed):
        """The value written, in clear: what references to it resolve to (state_attrs keeps a hidden one's digest)."""
        ctx.cloud.modify_property(name, after["value"], where=f"properties.{name}")
        return {"value": after["value"]}

    def delete(self, ctx, name, before, prior):
        ctx.cloud.modify_property(name, reset=True, where=f"properties.{name}")


KIND = Properties()

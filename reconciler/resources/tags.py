"""Ownership tags: what recon creates carries its stack and address, so a lost state
file can be rebuilt from the cloud and recon never touches what it does not own."""

from __future__ import annotations

STACK_TAG = "recon:stack"
ADDRESS_TAG = "recon:address"


def ownership_tags(stack: str, address: str) -> list[dict[str, str]]:
    return [{"Key": STACK_TAG, "Value": stack}, {"Key": ADDRESS_TAG, "Value": address}]


#: Key of the live attribute holding a resource's ownership tags, where the cloud has tags.
OWNER = "_owner"


def owner_from_tags(tags: list[dict[str, str]] | None) -> dict[str, str] | None:
    """{"stack": …, "address": …} from a resource's tags, or None if recon did not tag it."""
    values = {tag.get("Key"): tag.get("Value") for tag in tags or []}
    if STACK_TAG in values and ADDRESS_TAG in values:
        return {"stack": values[STACK_TAG], "address": values[ADDRESS_TAG]}
    return None

"""Ownership tags: what recon creates carries its stack and address, so a lost state
file can be rebuilt from the cloud and recon never touches what it does not own."""

from __future__ import annotations

STACK_TAG = "recon:stack"
ADDRESS_TAG = "recon:address"


def ownership_tags(stack: str, address: str) -> list[dict[str, str]]:
    return [{"Key": STACK_TAG, "Value": stack}, {"Key": ADDRESS_TAG, "Value": address}]

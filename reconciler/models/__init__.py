"""botocore service models that recon ships for APIs botocore does not know.

The layout is botocore's own data layout (``<service>/<api-version>/service-2.json``),
so the folder is simply added to a botocore session's loader search paths; nothing
is ever written into the user's ``~/.aws/models``.

- ``properties/eucalyptus``: the Eucalyptus cloud properties service
  (``DescribeProperties``, ``ModifyPropertyValue``), query protocol, ``Version=eucalyptus``.
  Its ``endpoint-rule-set-1.json`` only passes an explicit endpoint URL through: the
  service has no default endpoint.
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR: Path = Path(__file__).resolve().parent
"""The folder to add to a botocore loader's search paths."""

SERVICES: tuple[str, ...] = ("properties",)
"""The service names modelled here."""


def add_to_session(botocore_session) -> None:
    """Make the models here loadable by ``botocore_session`` (idempotent).

    They go first in the search path, so a stray ``~/.aws/models/properties`` cannot
    shadow the model recon was tested with.
    """
    loader = botocore_session.get_component("data_loader")
    path = str(MODELS_DIR)
    if path not in loader.search_paths:
        loader.search_paths.insert(0, path)

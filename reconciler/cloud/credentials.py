"""The botocore session and the credential chain: which keys a run signs with, and how that is named.

Order: ``[cloud].profile`` (when it is not just ``AWS_PROFILE`` again), the AWS key variables,
the eucarc key variables (``EC2_ACCESS_KEY`` / ``EC2_SECRET_KEY``), ``AWS_PROFILE``, then
botocore's default chain. The source is described (``credential_source``); keys are never printed,
and a secret read from the environment is remembered for masking (:mod:`reconciler.redact`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, DataNotFoundError
from botocore.hooks import HierarchicalEmitter
from botocore.loaders import Loader, instance_cache

from reconciler import models
from reconciler.errors import ConfigError
from reconciler.redact import remember

from .endpoints import SERVICES
from .hints import CREDENTIALS_HINT
from .settings import CloudSettings, env_string
from .trimmed import OPERATIONS, cache_file, cut, keep_cut, read_cut

DEFAULT_CHAIN = "botocore's default credential chain"

_LOADER_LOCK = threading.Lock()
_LOADERS: dict[bool, Any] = {}     # by cut_models
_BUILTIN_HANDLERS: Any = None


class ServicesLoader(Loader):
    """botocore's data loader, with the same search paths, asked which services exist only about the ones
    recon calls (:data:`~reconciler.cloud.endpoints.SERVICES`): botocore's own answer lists every service
    folder it has, hundreds of them, once for each kind of file (service, paginators, endpoint rules).

    With ``cut_models``, a service model of :data:`~reconciler.cloud.trimmed.OPERATIONS` is the cut
    one (:mod:`reconciler.cloud.trimmed`), read from the cache or cut and kept there.
    """

    def __init__(self, *args: Any, cut_models: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cut_models = cut_models
        self._cuts: dict[tuple[str, str | None], dict] = {}

    def load_service_model(self, service_name, type_name, api_version=None):
        methods = OPERATIONS.get(service_name) if self.cut_models and type_name == "service-2" else None
        if methods is None:
            return super().load_service_model(service_name, type_name, api_version)
        model = self._cuts.get((service_name, api_version))
        if model is None:
            version = api_version or self.determine_latest_version(service_name, type_name)
            path = cache_file(self.search_paths, service_name, version, methods)
            model = read_cut(path, methods)
            if model is None:
                model = cut(super().load_service_model(service_name, type_name, version), methods)
                keep_cut(path, model)
            self._cuts[(service_name, api_version)] = model
        return model

    @instance_cache
    def list_available_services(self, type_name):
        return sorted(service for service in SERVICES if self._has(service, type_name))

    def _has(self, service: str, type_name: str) -> bool:
        try:
            return bool(self.list_api_versions(service, type_name))
        except DataNotFoundError:
            return False


def new_session(*, cut_models: bool = True):
    """A fresh botocore session whose data loader (shared, with recon's models) is already warm;
    ``cut_models=False``: with botocore's whole models (for clients that are not :class:`Cloud`'s).

    Loading and parsing a service model (EC2's is megabytes of JSON) is most of the cost of
    making a client; sharing the loader makes every Cloud after the first cheap to set up. So
    does starting each session from a copy of botocore's built-in event handlers, registered once
    (registering them inspects each handler's signature: 15 ms a session), as botocore itself
    gives each client a copy of its session's.
    """
    global _BUILTIN_HANDLERS
    with _LOADER_LOCK:
        if _BUILTIN_HANDLERS is None:
            _BUILTIN_HANDLERS = HierarchicalEmitter()
            botocore.session.Session(event_hooks=_BUILTIN_HANDLERS)   # registers them in it
        session = botocore.session.Session(event_hooks=copy.copy(_BUILTIN_HANDLERS), include_builtin_handlers=False)
        loader = _LOADERS.get(cut_models)
        if loader is None:
            default = session.get_component("data_loader")   # its search paths honour AWS_DATA_PATH
            loader = _LOADERS[cut_models] = ServicesLoader(extra_search_paths=default.search_paths,
                                                           include_default_search_paths=False, cut_models=cut_models)
            session.register_component("data_loader", loader)
            models.add_to_session(session)
        else:
            session.register_component("data_loader", loader)
    return session


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env_string(env, name)
        if value is not None:
            return name, value
    return None


def make_session(settings: CloudSettings, env: Mapping[str, str]) -> tuple[Any, str]:
    """A private botocore session with recon's models and the chosen credentials.

    Returns it with a description of where the credentials come from (never the keys).
    """
    session = new_session()

    def use_profile(profile: str, where: str) -> None:
        # An explicitly set profile also switches off botocore's environment-key provider.
        session.set_config_variable("profile", profile)
        if profile not in session.available_profiles:
            known = ", ".join(sorted(session.available_profiles)) or "none"
            raise ConfigError(f"no profile named {profile!r} in the AWS config files (known: {known})",
                              where=where)

    env_profile = env_string(env, "AWS_PROFILE")
    if settings.profile and settings.profile != env_profile:  # [cloud].profile wins over env keys
        use_profile(settings.profile, "[cloud].profile")
        return session, f"profile {settings.profile!r} ([cloud].profile)"

    for kind, key_name, secret_name, token_names in (
        ("AWS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")),
        ("eucarc", "EC2_ACCESS_KEY", "EC2_SECRET_KEY", ()),
    ):
        key, secret = env_string(env, key_name), env_string(env, secret_name)
        if key and secret:
            token = _first(env, *token_names)
            remember(secret)
            session.set_credentials(key, secret, token[1] if token else None)
            return session, f"the {kind} variables {key_name} / {secret_name} in the environment"
        if key or secret:
            present, missing = (key_name, secret_name) if key else (secret_name, key_name)
            raise ConfigError(f"{present} is set but {missing} is not", where="environment",
                              hint=CREDENTIALS_HINT)

    if settings.profile:
        use_profile(settings.profile, "environment variable AWS_PROFILE")
        return session, f"profile {settings.profile!r} (AWS_PROFILE)"
    return session, DEFAULT_CHAIN


def refused(session, source: str, endpoint_url: str) -> str:
    """Who refused which credentials, from where: never the secret."""
    try:
        credentials = session.get_credentials()
    except BotoCoreError:
        credentials = None
    if source == DEFAULT_CHAIN and credentials is not None:
        source += f" ({credentials.method})"
    key = f"access key {credentials.access_key} from " if credentials is not None else ""
    return f"{endpoint_url} refused the credentials ({key}{source})"


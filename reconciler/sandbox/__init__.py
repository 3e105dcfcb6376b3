"""The embedded sandbox cloud: a loopback Eucalyptus front end built on moto (DESIGN §7).

``Sandbox`` runs it in this process, ``serve`` runs it in the foreground until a signal,
``start_child`` runs it as a child process (a fresh process is a fresh cloud). Importing this
package does not import moto; starting a sandbox does.
"""

from .child import SandboxProcess, start_child
from .credentials import Credentials, read_eucarc
from .server import Sandbox, serve

__all__ = ["Sandbox", "SandboxProcess", "Credentials", "read_eucarc", "serve", "start_child"]

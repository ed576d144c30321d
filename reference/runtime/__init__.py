"""The runtime handle: every operation decided by the lifecycle table's machine.

- handle.py: the public Runtime API (one handle)
- lifecycle.py: the machine's model, where the state lives; the one path every command takes
- guards.py: one function per guard of the table
- commands.py: one class per command: its arguments, its work, what it changes
- resident.py: what a handle holds, and how entering a state drops what it does not allow
- request.py: the open request and the token loop
- loading.py: a load off to the side
- config.py, diagnostics.py: the configuration; the diagnostics snapshot
"""

from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.runtime.handle import Runtime
from ggufsm.reference.runtime.request import Generation, TokenEvent

__all__ = ["Generation", "Runtime", "RuntimeConfig", "TokenEvent"]

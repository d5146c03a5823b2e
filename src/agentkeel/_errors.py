"""The exceptions agentkeel raises itself.

The agent's own exceptions always pass through unchanged; these are only for
agentkeel's own failures and for bad configuration::

    KeelError
    ├── ConfigurationError  (also ValueError)  bad settings, caught at construction
    ├── StoreError                              the store cannot be opened, read or written
    │   ├── StoreUnavailableError               the server or file cannot be reached
    │   ├── StoreCorruptError                   the file is not a usable database
    │   └── SchemaVersionError                  the schema is older or newer than this code
    ├── UnknownRunError     (also LookupError)  no run has that ID (or prefix)
    ├── PipelineError                           a sink or producer failed (strict mode only)
    └── ChaosError                              base of the faults injected by chaos mode
"""

from __future__ import annotations


class KeelError(Exception):
    """Root of every exception agentkeel raises on its own account."""


class ConfigurationError(KeelError, ValueError):
    """A setting is malformed. The message says which one and what is allowed."""


class StoreError(KeelError):
    """The event store could not do what was asked."""


class StoreUnavailableError(StoreError):
    """The store's server or file cannot be reached right now."""


class StoreCorruptError(StoreError):
    """The store's file exists but is not a usable agentkeel database."""


class SchemaVersionError(StoreError):
    """The database schema does not match this version of agentkeel."""


class UnknownRunError(KeelError, LookupError):
    """No run matches the given ID or ID prefix."""


class PipelineError(KeelError):
    """A sink failed. Raised into the caller only in strict mode."""


class ChaosError(KeelError):
    """Base class of the faults that chaos mode injects on purpose."""

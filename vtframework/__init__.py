"""vtframework: one pluggable VirusTotal integration for OpenCTI.

Plugins implement the hooks of :mod:`vtframework.hookspecs` with the
:data:`hookimpl` marker and return the records of :mod:`vtframework.records`.
"""

import pluggy

from vtframework.hookspecs import PROJECT
from vtframework.records import CliCommand, ConfigKey, Observable, VTQuery

#: Marks a function as the implementation of a vtframework hook.
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["hookimpl", "CliCommand", "ConfigKey", "Observable", "VTQuery"]

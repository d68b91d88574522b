"""What every command shares: exit codes and the usage error."""

from __future__ import annotations

#: 0 success, 1 some work failed (each failure says why), 2 a usage or configuration error.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A wrong command line: reported in one line, exit code 2."""

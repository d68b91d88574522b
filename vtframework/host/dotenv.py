"""A ``.env`` file in the working directory, read as upstream OpenCTI connectors read theirs.

Its variables count as environment variables that are not set: a variable set
in the environment always wins. They go into the process environment, so
everything that reads it (our settings, the choice of connector, pycti's own
keys such as ``CONNECTOR_QUEUE_THRESHOLD``) sees the same values.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import MutableMapping

from vtframework.errors import ConfigError

DOTENV_NAME = ".env"
#: A .env holds a few dozen lines; a larger file is not one.
MAX_SIZE = 1 << 20

log = logging.getLogger("vtframework.config")


def load_dotenv_file(directory: Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put the variables of ``directory/.env`` that ``environ`` lacks into it; their names are returned."""
    environ = os.environ if environ is None else environ
    path = directory / DOTENV_NAME
    if not path.is_file():
        return []
    from dotenv import dotenv_values  # only when there is a file: every command starts here
    try:
        if path.stat().st_size > MAX_SIZE:
            raise ConfigError(f"{path} is larger than {MAX_SIZE // 1024} KB: not a .env file", key=None)
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", key=None) from None
    added = []
    for name, value in values.items():
        if value is None or name in environ:
            continue
        environ[name] = value
        added.append(name)
    log.debug("read %d variable(s) from %s (the environment wins over it)", len(added), path)
    return added

"""The platform's version against the installed pycti's: OpenCTI requires them to be equal.

A pycti of another line fails in ways that name neither version: a 7.x pycti
asks a 6.x platform for fields it does not have when it registers, and reads
entities with fields (``customFieldValues``) that older 7.x platforms lack.
At start the connector reads the platform's version and says, in one line,
what to install or build when they differ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import requests

from vtframework.errors import ConfigError

_QUERY = "query vtframeworkPlatformVersion { about { version } }"
_VERSION = re.compile(r"\d+(\.\d+){1,3}")
#: The answer is a few dozen bytes; anything much larger is not OpenCTI.
_MAX_ANSWER = 64 << 10


class VersionUnknown(Exception):
    """The platform's version could not be read; the message says why."""


def installed_pycti() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pycti")
    except PackageNotFoundError:
        return "not installed"


def platform_version(url: str, token: str, *, verify: bool = False, timeout: float = 10.0) -> str:
    """``about.version`` of the OpenCTI at ``url`` (the connector's token authenticates the read)."""
    try:
        response = requests.post(
            f"{url.rstrip('/')}/graphql", json={"query": _QUERY}, timeout=timeout, verify=verify, stream=True,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"vtframework (pycti {installed_pycti()})"},
        )
        with response:
            body = response.raw.read(_MAX_ANSWER + 1, decode_content=True)
    except requests.RequestException as exc:
        raise VersionUnknown(f"unreachable: {type(exc).__name__}") from None
    if len(body) > _MAX_ANSWER:
        raise VersionUnknown("the answer is too large to be OpenCTI's")
    try:
        answer = json.loads(body)
    except ValueError:
        raise VersionUnknown(f"HTTP {response.status_code}, not a GraphQL answer") from None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        message = str(first.get("message") if isinstance(first, dict) else first)[:200]
        raise VersionUnknown(f"HTTP {response.status_code}: {message}")
    about = ((answer.get("data") or {}).get("about") or {}) if isinstance(answer, dict) else {}
    version = about.get("version") if isinstance(about, dict) else None
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise VersionUnknown(f"HTTP {response.status_code}: no platform version in the answer")
    return version


@dataclass(frozen=True)
class VersionCheck:
    """The comparison, and the line that says it."""

    url: str
    pycti: str
    platform: str | None = None
    problem: str | None = None

    @property
    def matches(self) -> bool:
        return self.platform is not None and self.platform == self.pycti

    def line(self) -> str:
        if self.platform is None:
            return (f"OpenCTI at {self.url}: cannot read its version ({self.problem}); pycti {self.pycti} "
                    "is installed and must equal it")
        if self.matches:
            return f"OpenCTI {self.platform}, pycti {self.pycti}: they match"
        line = (f"OpenCTI is {self.platform} but pycti {self.pycti} is installed; they must be equal: "
                f"pip install 'pycti=={self.platform}', or build the image with "
                f"--build-arg PYCTI_VERSION={self.platform}")
        if self.platform.split(".")[0] != self.pycti.split(".")[0]:
            line += f" (a {self.pycti.split('.')[0]}.x pycti cannot register on a {self.platform.split('.')[0]}.x platform)"
        return line


def check(url: str, token: str, *, verify: bool = False) -> VersionCheck:
    """Read the platform's version and compare it with the installed pycti's."""
    pycti = installed_pycti()
    try:
        return VersionCheck(url, pycti, platform=platform_version(url, token, verify=verify))
    except VersionUnknown as exc:
        return VersionCheck(url, pycti, problem=str(exc))


def enforce(result: VersionCheck, strict: bool) -> None:
    """Refuse to go on (``VTF_STRICT_VERSION``) unless the versions are known to be equal."""
    if strict and not result.matches:
        raise ConfigError(f"{result.line()}; refused (VTF_STRICT_VERSION)", key="vtf.strict_version")

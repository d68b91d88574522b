"""Lets the loopback address through pytest-recording's ``--block-network``.

Registered by :mod:`vtframework.testing.pytest_plugin` only when
pytest-recording is installed. The fake VirusTotal and fake OpenCTI listen on
127.0.0.1; without this a plugin's tests fail with "Network is disabled for
host '127.0.0.1'" unless the project writes its own ``vcr_config``.
"""

from __future__ import annotations

import pytest

#: Hosts ``--block-network`` lets through: the loopback address, where the fakes listen.
LOOPBACK_HOSTS = (r"127\.0\.0\.1$", r"localhost$", r"::1$")


@pytest.fixture
def allowed_hosts(request: pytest.FixtureRequest) -> list[str]:
    """The hosts pytest-recording would allow (mark, then ``--allowed-hosts``, then ``vcr_config``) plus loopback."""
    mark = request.node.get_closest_marker("block_network")
    hosts = (
        (mark.kwargs.get("allowed_hosts") if mark is not None else None)
        or request.config.getoption("--allowed-hosts")
        or request.getfixturevalue("vcr_config").get("allowed_hosts")
        or []
    )
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    return [*hosts, *LOOPBACK_HOSTS]

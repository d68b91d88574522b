"""The fake OpenCTI's GraphQL schema for one platform version, and the rules a query is checked by.

``fakeopencti.graphql`` holds the modelled part of OpenCTI's schema. A query is
validated against it with GraphQL's own rules, so a field, argument, input
field or variable type the schema has not is refused with the message the
platform gives. Fragments may name real OpenCTI types the fake never returns
(pycti asks for ``... on X509Certificate`` in every observable read); those
names are listed here with the version that introduced them, and an unknown
name is refused as the platform refuses it.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from graphql import GraphQLSchema, build_schema
from graphql.language import FragmentDefinitionNode, InlineFragmentNode, NamedTypeNode, Node
from graphql.validation import ASTValidationRule, KnownTypeNamesRule, specified_rules

_SINCE = re.compile(r"#\s*since\s+(\d+(?:\.\d+)*)\s*$")

#: Real OpenCTI types the fake never returns, by the first version that has them (None: every
#: version modelled). Only fragment conditions may name them.
FRAGMENT_ONLY_TYPES: dict[str, str | None] = {
    **dict.fromkeys((
        # observables
        "AutonomousSystem", "Directory", "EmailAddr", "EmailMessage", "X509Certificate", "SSHKey", "MacAddr",
        "Mutex", "NetworkTraffic", "Process", "Software", "UserAccount", "WindowsRegistryKey",
        "WindowsRegistryValueType", "CryptographicKey", "CryptocurrencyWallet", "Text", "UserAgent",
        "BankAccount", "PhoneNumber", "TrackingNumber", "Credential", "PaymentCard", "Persona", "MediaContent",
        # domain objects and relationships
        "AttackPattern", "Campaign", "Note", "ObservedData", "Opinion", "Report", "Grouping", "CourseOfAction",
        "DataComponent", "DataSource", "Individual", "Sector", "System", "Infrastructure", "IntrusionSet",
        "City", "Country", "Region", "Position", "Malware", "MalwareAnalysis", "ThreatActor", "Tool",
        "Vulnerability", "Incident", "Event", "Channel", "Narrative", "Case", "Feedback", "Container",
        "StixCoreRelationship", "StixSightingRelationship", "BasicRelationship",
    ), None),
    # New observable types of the 7.x line (pycti 6.9 does not ask for them, pycti 7 does).
    "AIPrompt": "7.0.0",
    "IMEI": "7.260326.0",
    "ICCID": "7.260326.0",
    "IMSI": "7.260326.0",
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"7.261026.0"`` -> ``(7, 261026, 0)``; ``ValueError`` for anything that is not dotted numbers."""
    if not re.fullmatch(r"\d+(\.\d+){1,3}", version or ""):
        raise ValueError(f"not an OpenCTI version: {version!r}")
    return tuple(int(part) for part in version.split("."))


def _present(since: str | None, version: tuple[int, ...]) -> bool:
    return since is None or version >= version_tuple(since)


def schema_text(version: str) -> str:
    """The modelled schema as the platform ``version`` has it (lines newer than it dropped)."""
    wanted = version_tuple(version)
    text = resources.files("vtframework.testing").joinpath("fakeopencti.graphql").read_text(encoding="utf-8")
    kept = []
    for line in text.splitlines():
        since = _SINCE.search(line)
        if since is None or _present(since.group(1), wanted):
            kept.append(line)
    return "\n".join(kept) + "\n"


@functools.lru_cache(maxsize=8)
def schema_for(version: str) -> GraphQLSchema:
    return build_schema(schema_text(version))


def fragment_only_types(version: str) -> frozenset[str]:
    wanted = version_tuple(version)
    return frozenset(name for name, since in FRAGMENT_ONLY_TYPES.items() if _present(since, wanted))


def validation_rules(version: str) -> list[type[ASTValidationRule]]:
    """GraphQL's rules, with fragment conditions allowed to name the real types the fake never returns."""
    allowed = fragment_only_types(version)

    class KnownTypeNames(KnownTypeNamesRule):
        def enter_named_type(self, node: NamedTypeNode, key: Any, parent: Node, path: Any, ancestors: Any) -> None:
            if isinstance(parent, (InlineFragmentNode, FragmentDefinitionNode)) and node.name.value in allowed:
                return
            super().enter_named_type(node, key, parent, path, ancestors)

    return [KnownTypeNames if rule is KnownTypeNamesRule else rule for rule in specified_rules]

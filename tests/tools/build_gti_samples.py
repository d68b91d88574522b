"""Build the CONSTRUCTED Google Threat Intelligence answers the gti plugin's tests replay.

No permissively licensed real GTI answer has been published. Each answer here
is a real VirusTotal object answer from tests/samples/ (a file, a domain, an
IP address, a URL: attributes byte-for-byte VirusTotal's) to which we add what
a GTI key's lookup ``?relationships=…&relationship_attributes[…]=…`` adds,
in the documented shapes (../shared/vt-samples/FIELDS.md):

- ``gti_assessment``: ``verdict``, ``severity`` and ``threat_score`` each
  wrapped in ``{"value": …}``, ``contributing_factors``, ``description``;
- ``relationships.<name>``: ``{data: [{type, id, attributes}], links: {self,
  related}}`` (``meta.cursor`` only with more pages), the attributes those the
  plugin asks for; ``related_threat_actors`` (not ``threat_actors``, the
  collections' name); a to-one relationship with no object as ``data: null``;
- collection attributes with GTI's names (``name``, ``collection_type``,
  ``origin``, ``creation_date``, ``first_seen_details``…); the element shape of
  the ``*_details`` / ``*_hierarchy`` / ``*_tree`` lists is the documented one
  (gtidocs, as Google's and OpenCTI's GTI integrations model it), since every
  real answer seen had them empty.

The collections are fictional (ExampleLoader, Example Actor…): associating
real indicators with real actors would be a claim we cannot back. ATT&CK ids
and names are MITRE's. Files are named ``*_CONSTRUCTED.json`` and listed in
tests/samples/SOURCES.md.

Run from the repository root: ``python tests/tools/build_gti_samples.py``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import urlencode

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "samples"
TARGET = ROOT / "plugins" / "gti" / "tests" / "samples"
CASSETTE = ROOT / "plugins" / "gti" / "tests" / "cassettes" / "test_gti_plugin" / "test_replayed_one_request_each.yaml"
API = "https://www.virustotal.com/api/v3"
NAMESPACE = uuid.UUID("5b8cbb8e-1b9a-4c2f-9d4e-6f2a7a0c3e11")  # ours: stable fictional ids


def collection_id(prefix: str, name: str) -> str:
    return f"{prefix}--{uuid.uuid5(NAMESPACE, name)}"


def seen(value: str) -> list[dict]:
    return [{"confidence": "confirmed", "description": None, "first_seen": None, "last_seen": None, "value": value}]


ASIA_VN = {"confidence": "confirmed", "country": "Viet Nam", "country_iso2": "VN", "description": None,
           "first_seen": 1680307200, "last_seen": 1717200000, "region": "Asia", "source": None,
           "sub_region": "South-eastern Asia"}
EUROPE_DE = {"confidence": "possible", "country": "Germany", "country_iso2": "DE", "description": None,
             "first_seen": 1696118400, "last_seen": 1714521600, "region": "Europe", "source": None,
             "sub_region": "Western Europe"}
GOVERNMENTS = {"confidence": "confirmed", "description": None, "first_seen": 1680307200, "industry": "Government",
               "industry_group": "Governments", "last_seen": 1717200000, "source": None}
FROM_KP = {"confidence": "possible", "country": "Korea, Democratic People's Republic of", "country_iso2": "KP",
           "description": None, "first_seen": 1680307200, "last_seen": 1717200000, "region": "Asia", "source": None,
           "sub_region": "Eastern Asia"}

LOADER = {
    "type": "collection", "id": collection_id("malware", "ExampleLoader"),
    "attributes": {
        "name": "ExampleLoader", "collection_type": "malware-family", "origin": "Google Threat Intelligence",
        "description": "ExampleLoader is a downloader delivered as a side-loaded DLL; it fetches a second stage "
                       "over HTTPS.",
        "first_seen_details": seen("2023-04-01T00:00:00Z"), "last_seen_details": seen("2024-06-01T00:00:00Z"),
        "targeted_regions_hierarchy": [ASIA_VN], "source_regions_hierarchy": [],
        "targeted_industries_tree": [GOVERNMENTS],
    },
}
ACTOR = {
    "type": "collection", "id": collection_id("threat-actor", "Example Actor"),
    "attributes": {
        "name": "Example Actor", "collection_type": "threat-actor", "origin": "Google Threat Intelligence",
        "description": "Example Actor is an espionage group that targets government networks in South-east Asia.",
        "first_seen_details": seen("2021-09-15T00:00:00Z"), "last_seen_details": seen("2024-06-20T00:00:00Z"),
        "targeted_regions_hierarchy": [ASIA_VN, EUROPE_DE], "source_regions_hierarchy": [FROM_KP],
        "targeted_industries_tree": [GOVERNMENTS],
    },
}
CAMPAIGN = {
    "type": "collection", "id": collection_id("campaign", "Example Campaign"),
    "attributes": {
        "name": "Example Campaign", "collection_type": "campaign", "origin": "Google Threat Intelligence",
        "description": "Phishing e-mails with invoice lures deliver ExampleLoader.",
        "first_seen_details": seen("2024-02-01T00:00:00Z"), "last_seen_details": seen("2024-05-30T00:00:00Z"),
        "targeted_regions_hierarchy": [ASIA_VN], "source_regions_hierarchy": [], "targeted_industries_tree": [],
    },
}
REPORT = {
    "type": "collection", "id": "report--24-10004312",
    "attributes": {
        "name": "ExampleLoader Delivered Through Invoice Lures", "collection_type": "report",
        "origin": "Google Threat Intelligence", "creation_date": 1714780800,
        "description": "Example Actor sends invoice-themed e-mails whose attachment side-loads ExampleLoader.",
    },
}
PARTNER_REPORT = {
    "type": "collection", "id": "report--24-10005120",
    "attributes": {
        "name": "Example Actor Infrastructure, Second Quarter", "collection_type": "report", "origin": "Partner",
        "creation_date": 1719792000,
        "description": "Servers and domains Example Actor used from April to June.",
    },
}
# MITRE ATT&CK ids and names (attack_technique objects: the id is the technique's).
TECHNIQUES = [
    {"type": "attack_technique", "id": "T1574.002", "attributes": {"name": "DLL Side-Loading"}},
    {"type": "attack_technique", "id": "T1105", "attributes": {"name": "Ingress Tool Transfer"}},
    {"type": "attack_technique", "id": "T1071.001", "attributes": {"name": "Web Protocols"}},
]

MALICIOUS = {
    "verdict": {"value": "VERDICT_MALICIOUS"}, "severity": {"value": "SEVERITY_HIGH"}, "threat_score": {"value": 90},
    "contributing_factors": {
        "mandiant_association_actor": True, "mandiant_association_malware": True,
        "mandiant_association_report": True, "normalised_categories": ["trojan", "downloader", "trojan"],
        "gti_confidence_score": 85, "malicious_sandbox_verdict": True, "pervasive_indicator": False,
    },
    "description": "This indicator is malicious (high severity) with high impact. It was detected by Mandiant "
                   "analysts and is associated with a known threat actor.",
}
NETWORK = {
    "verdict": {"value": "VERDICT_MALICIOUS"}, "severity": {"value": "SEVERITY_MEDIUM"},
    "threat_score": {"value": 80},
    "contributing_factors": {
        "mandiant_association_actor": True, "mandiant_association_malware": True,
        "normalised_categories": ["control-server", "malware"], "gti_confidence_score": 70,
        "safebrowsing_verdict": "harmless",
    },
    "description": "This indicator is malicious (medium severity). It is associated with a known threat actor.",
}

#: What the plugin asks for, per relationship (its relations.py, repeated so these files stand alone).
COLLECTION_ATTRIBUTES = ["name", "collection_type", "description", "origin", "first_seen_details",
                         "last_seen_details", "targeted_regions_hierarchy", "source_regions_hierarchy",
                         "targeted_industries_tree"]
REPORT_ATTRIBUTES = ["name", "collection_type", "description", "origin", "creation_date"]
ASKED = {"malware_families": COLLECTION_ATTRIBUTES, "related_threat_actors": COLLECTION_ATTRIBUTES,
         "campaigns": COLLECTION_ATTRIBUTES, "reports": REPORT_ATTRIBUTES, "attack_techniques": ["name"]}


def block(collection: str, ident: str, name: str, items: list[dict] | None) -> dict:
    links = {"self": f"{API}/{collection}/{ident}/relationships/{name}?limit=20",
             "related": f"{API}/{collection}/{ident}/{name}"}
    if items is None:
        return {"data": None, "links": links}
    wanted = ASKED.get(name)
    shown = [dict(item, attributes={k: v for k, v in item["attributes"].items() if k in wanted}) for item in items]
    return {"data": shown, "links": links}


def build(sample: str, collection: str, assessment: dict, relations: dict[str, list[dict] | None]) -> dict:
    doc = json.loads((SAMPLES / sample).read_text(encoding="utf-8"))
    data = doc["data"]
    data["attributes"]["gti_assessment"] = assessment
    data["relationships"] = {name: block(collection, data["id"], name, items) for name, items in relations.items()}
    return doc


ANSWERS = {
    "file_4bc00f7d_gti_CONSTRUCTED.json": build(
        "file_malicious_4bc00f7d.json", "files", MALICIOUS,
        {"malware_families": [LOADER], "related_threat_actors": [ACTOR], "campaigns": [CAMPAIGN],
         "reports": [REPORT], "attack_techniques": TECHNIQUES},
    ),
    "domain_tawuhoju.com_gti_CONSTRUCTED.json": build(
        "domain_malicious_tawuhoju.com.json", "domains", NETWORK,
        {"malware_families": [LOADER], "related_threat_actors": [ACTOR], "campaigns": [CAMPAIGN],
         "reports": [REPORT, PARTNER_REPORT]},
    ),
    "ip_address_138.128.150.133_gti_CONSTRUCTED.json": build(
        "ip_address_138.128.150.133.json", "ip_addresses", NETWORK,
        {"malware_families": [LOADER], "related_threat_actors": [ACTOR], "campaigns": [CAMPAIGN],
         "reports": [PARTNER_REPORT]},
    ),
    # The URL plugin's own relationship rides along: to one object, none known, so data: null.
    "url_7d83e9f6_gti_CONSTRUCTED.json": build(
        "url_malicious_7d83e9f6.json", "urls", MALICIOUS,
        {"last_serving_ip_address": None, "malware_families": [LOADER], "related_threat_actors": [ACTOR],
         "campaigns": [CAMPAIGN], "reports": [REPORT]},
    ),
}


def lookup(path: str, sample: str, relations: list[str], own: list[str] = ()) -> dict:
    """One cassette interaction: the lookup exactly as the owner plus the gti plugin make it, and its answer."""
    params = {"relationships": ",".join([*own, *relations])}
    params.update({f"relationship_attributes[{name}]": ",".join(ASKED[name]) for name in relations})
    return {
        "request": {"body": None, "headers": {"Accept": ["application/json"], "x-apikey": ["<VIRUSTOTAL_API_KEY>"]},
                    "method": "GET", "uri": f"{API}{path}?{urlencode(params)}"},
        "response": {"body": {"string": (TARGET / sample).read_text(encoding="utf-8")},
                     "headers": {"Content-Type": ["application/json; charset=utf-8"]},
                     "status": {"code": 200, "message": "OK"}},
    }


NETWORK_RELATIONS = ["malware_families", "related_threat_actors", "campaigns", "reports"]


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, answer in ANSWERS.items():
        (TARGET / name).write_text(json.dumps(answer, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print((TARGET / name).relative_to(ROOT))
    interactions = [
        lookup("/files/4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b",
               "file_4bc00f7d_gti_CONSTRUCTED.json", [*NETWORK_RELATIONS, "attack_techniques"]),
        lookup("/domains/tawuhoju.com", "domain_tawuhoju.com_gti_CONSTRUCTED.json", NETWORK_RELATIONS),
        lookup("/ip_addresses/138.128.150.133", "ip_address_138.128.150.133_gti_CONSTRUCTED.json", NETWORK_RELATIONS),
        lookup("/urls/aHR0cDovL3NvY2xvc2VidXR5ZXRxcS5jb20vNjkuZXhl", "url_7d83e9f6_gti_CONSTRUCTED.json",
               NETWORK_RELATIONS, own=["last_serving_ip_address"]),
    ]
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    header = "# CONSTRUCTED by tests/tools/build_gti_samples.py: real VirusTotal objects with GTI parts added.\n"
    CASSETTE.write_text(header + yaml.safe_dump({"interactions": interactions, "version": 1}, sort_keys=False))
    print(CASSETTE.relative_to(ROOT))


if __name__ == "__main__":
    main()

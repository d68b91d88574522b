"""Build the plugin-test cassettes from the real VirusTotal responses in tests/samples/.

The response bodies are byte-for-byte the recorded VirusTotal answers; the
request line and the headers around them are ours (CONSTRUCTED, see
tests/samples/SOURCES.md), because the upstream recordings kept only bodies.
Run from the repository root: ``python tests/tools/build_cassettes.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "samples"


def cassette_path(name: str) -> Path:
    """``test_ip_plugin/x`` -> ``plugins/ip/tests/cassettes/test_ip_plugin/x.yaml``, beside the plugin's tests."""
    module, _, test = name.partition("/")
    plugin = module.removeprefix("test_").removesuffix("_plugin")
    return ROOT / "plugins" / plugin / "tests" / "cassettes" / module / f"{test}.yaml"
API = "https://www.virustotal.com/api/v3"

STATUS_TEXT = {200: "OK", 404: "Not Found", 401: "Unauthorized"}


def interaction(
    method: str, path: str, sample: str, status: int = 200, edit: Callable[[dict], Any] | None = None
) -> dict:
    """One recorded exchange; ``edit`` (CONSTRUCTED) changes the real body where a test pairs it
    with another request, so the answer is about what was asked (the client refuses anything else)."""
    body = (SAMPLES / sample).read_text(encoding="utf-8")
    if edit is not None:
        doc = json.loads(body)
        edit(doc)
        body = json.dumps(doc, indent=4, ensure_ascii=False)
    return {
        "request": {
            "body": None,
            "headers": {"Accept": ["application/json"], "x-apikey": ["<VIRUSTOTAL_API_KEY>"]},
            "method": method,
            "uri": API + path,
        },
        "response": {
            "body": {"string": body},
            "headers": {"Content-Type": ["application/json; charset=utf-8"], "Server": ["Google Frontend"]},
            "status": {"code": status, "message": STATUS_TEXT[status]},
        },
    }


MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
WORD_DOC = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"
CLEAN_MACHO = "b8e7a581d85807ea6659ea2f681bd16d5baa7017ff144aa3030aefba9cbcdfd3"
CLEAN_EXE = "ddecc35aa198f401948c73a0d53fd93c4ecb770198ad7db308de026745c56b71"
UNKNOWN = "fffdddd2c3dc06d147c5ddddddd5c7e6acda4d1f1369fbc994cddd3c19a2de88"

IP_CLOUD_SOUTH = "138.128.150.133"
IP_CLOUDFLARE = "1.1.1.1"
# URL ids are vtframework.url_id(url): unpadded URL-safe base64 of the URL.
MALICIOUS_URL_ID = "aHR0cDovL3NvY2xvc2VidXR5ZXRxcS5jb20vNjkuZXhl"  # http://soclosebutyetqq.com/69.exe
EXAMPLE_URL_ID = "aHR0cDovL2V4YW1wbGUuY29tLw"  # http://example.com/
# URLs with quotes, a backslash and unicode, answered with the malicious URL's real body: the
# request path is ours, the answer VirusTotal's.
QUOTES_URL_ID = "aHR0cDovL2V4YW1wbGUuY29tL2l0J3M_cT0neCc"  # http://example.com/it's?q='x'
TRICKY_URL_ID = "aHR0cDovL2V4YW1wbGUuY29tL2l0J3MvYVxwYXRoL2NhZsOpP3E9J3gn"  # http://example.com/it's/a\path/café?q='x'


def about_url(url: str) -> Callable[[dict], None]:
    """CONSTRUCTED: the real report of another URL, made the report of ``url`` (its url and its id,
    the SHA-256 of the URL as VirusTotal gives it)."""

    def edit(doc: dict) -> None:
        doc["data"]["attributes"]["url"] = url
        doc["data"]["id"] = hashlib.sha256(url.encode()).hexdigest()

    return edit


def with_id(ident: str) -> Callable[[dict], None]:
    """CONSTRUCTED: the real object under the id the request asked for."""

    def edit(doc: dict) -> None:
        doc["data"]["id"] = ident

    return edit

WITH_SERVING_IP = "?relationships=last_serving_ip_address"
# VirusTotal answers POST /urls with an analysis descriptor; the real one we hold is the same
# shape from POST /urls/{id}/analyse. The form body takes part in matching.
SUBMIT_EXAMPLE_URL = interaction("POST", "/urls", "analysis_descriptor_url_analyse_2019.json")
SUBMIT_EXAMPLE_URL["request"]["body"] = "url=http%3A%2F%2Fexample.com%2F"
EXAMPLE_ANALYSIS_ID = "u-2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067-1571525812"

ORCUS = "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb"
POWERSHELL = "020876e69dac4b2cb5b75a616dbdac8b913f3cc06fbabd8f8dd3277691ba48b6"
CLEAN_NOISY = "29bd5781eb25da10c05b9e4074c08b5c0d5127abd4e278066973a725463884c3"
DISAGREEING = "52d3df0ed60c46f336c131bf2ca454f73bafdc4b04dfa2aea80746f5ba9e6d1c"
EXAMPLE_URL_SHA256 = "2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067"
ORCUS_REPORT = interaction("GET", f"/files/{ORCUS}", "file_malicious_sigma_ids_sandbox_6b60666d.json")
POWERSHELL_REPORT = interaction("GET", f"/files/{POWERSHELL}", "file_powershell_ai_sigma_020876e6.json")
CLEAN_NOISY_REPORT = interaction("GET", f"/files/{CLEAN_NOISY}", "file_clean_sigma_ids_29bd5781.json")
DISAGREEING_REPORT = interaction("GET", f"/files/{DISAGREEING}", "file_malicious_52d3df0e.json")


def sigma_rules(sample: str, levels: tuple[str, ...] = ("critical", "high", "medium", "low")) -> list[dict]:
    """The (CONSTRUCTED) /sigma_rules answers of a file sample's rules, highest level first."""
    import json

    results = json.loads((SAMPLES / sample).read_text(encoding="utf-8"))["data"]["attributes"]["sigma_analysis_results"]
    order = ("critical", "high", "medium", "low")
    ranked = sorted(results, key=lambda r: order.index(r["rule_level"]))
    return [
        interaction("GET", f"/sigma_rules/{r['rule_id']}", f"sigma_rule_{r['rule_id'][:10]}_CONSTRUCTED.json")
        for r in ranked if r["rule_level"] in levels
    ]


COMMENTS = "?limit=10&relationships=author"
VOTES = "?limit=40"

CASSETTES_BY_TEST = {
    "test_file_plugin/test_malicious_file_with_yara": [
        interaction("GET", f"/files/{MALICIOUS}", "file_malicious_4bc00f7d.json"),
        interaction("GET", "/yara_rulesets/00888403c4", "yara_ruleset_00888403c4.json"),
    ],
    "test_file_plugin/test_malicious_document_without_yara": [
        interaction("GET", f"/files/{WORD_DOC}", "file_malicious_001015aa.json"),
    ],
    "test_file_plugin/test_clean_files": [
        interaction("GET", f"/files/{CLEAN_MACHO}", "file_clean_b8e7a581.json"),
        interaction("GET", f"/files/{CLEAN_EXE}", "file_clean_ddecc35a.json"),
    ],
    "test_file_plugin/test_unknown_file_is_a_clear_failure": [
        interaction("GET", f"/files/{UNKNOWN}", "error_404_NotFoundError_file.json", 404),
    ],
    "test_file_plugin/test_ruleset_that_cannot_be_fetched_costs_only_its_rule": [
        interaction("GET", f"/files/{MALICIOUS}", "file_malicious_4bc00f7d.json"),
        interaction("GET", "/yara_rulesets/00888403c4", "error_401_WrongCredentialsError.json", 401),
    ],
    "test_ip_plugin/test_ipv4_with_as_and_country": [
        interaction("GET", f"/ip_addresses/{IP_CLOUD_SOUTH}", "ip_address_138.128.150.133.json"),
    ],
    "test_ip_plugin/test_old_ip_report_without_statistics": [
        interaction("GET", f"/ip_addresses/{IP_CLOUDFLARE}", "ip_address_1.1.1.1_2019.json"),
    ],
    "test_domain_plugin/test_malicious_domain_with_an_invalid_a_record": [
        interaction("GET", "/domains/tawuhoju.com", "domain_malicious_tawuhoju.com.json"),
    ],
    "test_domain_plugin/test_clean_domain_resolves_to_its_addresses": [
        interaction("GET", "/domains/haiku-os.org", "domain_clean_haiku-os.org.json"),
    ],
    "test_domain_plugin/test_old_domain_report_without_statistics": [
        interaction("GET", "/domains/github.com", "domain_clean_github.com_2019.json"),
    ],
    "test_url_plugin/test_malicious_url": [
        interaction("GET", f"/urls/{MALICIOUS_URL_ID}{WITH_SERVING_IP}", "url_malicious_7d83e9f6.json"),
    ],
    "test_url_plugin/test_clean_url": [
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "url_clean_example.com_2a1b4024.json"),
    ],
    "test_url_plugin/test_urls_with_quotes_backslash_and_unicode": [
        interaction("GET", f"/urls/{QUOTES_URL_ID}{WITH_SERVING_IP}", "url_malicious_7d83e9f6.json",
                    edit=about_url("http://example.com/it's?q='x'")),
        interaction("GET", f"/urls/{TRICKY_URL_ID}{WITH_SERVING_IP}", "url_malicious_7d83e9f6.json",
                    edit=about_url("http://example.com/it's/a\\path/café?q='x'")),
    ],
    "test_url_plugin/test_unseen_url_is_submitted_and_analysed": [
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "error_404_NotFoundError_file.json", 404),
        SUBMIT_EXAMPLE_URL,
        interaction("GET", f"/analyses/{EXAMPLE_ANALYSIS_ID}", "analysis_url_completed_u-2a1b4024.json",
                    edit=with_id(EXAMPLE_ANALYSIS_ID)),
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "url_clean_example.com_2a1b4024.json"),
    ],
    "test_url_plugin/test_unseen_amber_url_is_not_submitted": [
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "error_404_NotFoundError_file.json", 404),
    ],
    "test_url_plugin/test_unseen_url_with_submission_off_is_not_found": [
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "error_404_NotFoundError_file.json", 404),
    ],
    # Threat context beyond detection counts (the feature plugins).
    "test_sigma_plugin/test_matched_rules_become_indicators_of_attack_patterns": [
        ORCUS_REPORT, *sigma_rules("file_malicious_sigma_ids_sandbox_6b60666d.json"),
    ],
    "test_sigma_plugin/test_off_by_default_the_note_costs_no_request": [ORCUS_REPORT],
    "test_sigma_plugin/test_lowest_level_limits_the_requests": [
        POWERSHELL_REPORT, *sigma_rules("file_powershell_ai_sigma_020876e6.json", ("critical", "high")),
    ],
    "test_sigma_plugin/test_clean_file_keeps_its_rules": [
        CLEAN_NOISY_REPORT, *sigma_rules("file_clean_sigma_ids_29bd5781.json"),
    ],
    "test_ids_plugin/test_rules_and_the_traffic_they_saw": [ORCUS_REPORT],
    "test_ids_plugin/test_alert_hostname_and_url": [CLEAN_NOISY_REPORT],
    "test_ids_plugin/test_cap_on_rules_is_said": [ORCUS_REPORT],
    "test_malware_config_plugin/test_orcusrat_configuration": [ORCUS_REPORT],
    "test_malware_config_plugin/test_through_an_indicator": [ORCUS_REPORT],
    "test_malware_config_plugin/test_cap_on_c2_is_said": [ORCUS_REPORT],
    "test_classification_plugin/test_family_sandboxes_and_labels": [ORCUS_REPORT],
    "test_classification_plugin/test_engines_and_the_sandbox_disagree": [DISAGREEING_REPORT],
    "test_classification_plugin/test_two_votes_make_no_family": [POWERSHELL_REPORT],
    "test_classification_plugin/test_clean_file_with_harmless_sandboxes": [CLEAN_NOISY_REPORT],
    "test_crowdsourced_context_plugin/test_ip_context_in_a_note_and_a_reason": [
        interaction("GET", "/ip_addresses/8.8.8.8", "ip_address_8.8.8.8_2026.json"),
    ],
    "test_community_plugin/test_url_comments_and_weighted_votes": [
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "url_clean_example.com_2a1b4024.json"),
        interaction("GET", f"/urls/{EXAMPLE_URL_SHA256}/comments{COMMENTS}", "url_comments_example.com_page1.json"),
        interaction("GET", f"/urls/{EXAMPLE_URL_SHA256}/votes{VOTES}", "url_votes_example.com_page1.json"),
    ],
    "test_community_plugin/test_domain_comments_without_votes": [
        interaction("GET", "/domains/github.com", "domain_clean_github.com_2019.json"),
        interaction("GET", f"/domains/github.com/comments{COMMENTS}", "domain_comments_github.com.json"),
        interaction("GET", f"/domains/github.com/votes{VOTES}", "domain_votes_github.com_empty_CONSTRUCTED.json"),
    ],
    "test_community_plugin/test_off_by_default": [
        interaction("GET", f"/urls/{EXAMPLE_URL_ID}{WITH_SERVING_IP}", "url_clean_example.com_2a1b4024.json"),
    ],
    "test_explain_plugin/test_file_score_explained": [
        interaction("GET", f"/files/{MALICIOUS}", "file_malicious_4bc00f7d.json"),
        interaction("GET", "/yara_rulesets/00888403c4", "yara_ruleset_00888403c4.json"),
    ],
    "test_explain_plugin/test_disagreement_is_a_reason": [DISAGREEING_REPORT],
    "test_explain_plugin/test_reasons_of_other_plugins": [
        interaction("GET", "/ip_addresses/8.8.8.8", "ip_address_8.8.8.8_2026.json"),
    ],
}


def main() -> None:
    for name, interactions in CASSETTES_BY_TEST.items():
        path = cassette_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# CONSTRUCTED by tests/tools/build_cassettes.py: real VirusTotal bodies from tests/samples/.\n"
        path.write_text(header + yaml.safe_dump({"interactions": interactions, "version": 1}, sort_keys=False))
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()

"""Configuration keys of the gti plugin: off until a Google Threat Intelligence key turns it on."""

from vtframework import ConfigKey

from vtframework_plugins.gti.relations import DEFAULT_RELATIONSHIPS, PAGE_MAX, RELATIONS

KEYS = (
    ConfigKey(
        "virustotal.import_gti",
        "bool",
        False,
        "Ask Google Threat Intelligence (a GTI key) for the malware families, threat actors, campaigns, reports and, "
        "for files, ATT&CK techniques of each file, IP, domain and URL, inside the lookup itself (no extra request "
        "while every relationship fits in its first page); also labels from the GTI verdict.",
    ),
    ConfigKey(
        "virustotal.gti_relationships",
        "list",
        list(DEFAULT_RELATIONSHIPS),
        "GTI relationships asked for (attack_techniques only exists for files).",
        choices=tuple(RELATIONS),
    ),
    ConfigKey(
        "virustotal.gti_page_limit",
        "int",
        PAGE_MAX,
        f"Items per follow-up page of a relationship with more than its first page (1-{PAGE_MAX}).",
        minimum=1,
    ),
    ConfigKey(
        "virustotal.gti_max_requests",
        "int",
        5,
        "Most follow-up GTI requests per enrichment (further pages, a relationship the lookup did not bring, the "
        "techniques of collections); 0 keeps to what the lookup brings. Cached requests count too.",
        minimum=0,
    ),
    ConfigKey(
        "virustotal.gti_collection_techniques",
        "bool",
        False,
        "Also read the ATT&CK techniques of each malware family, threat actor and campaign found (GTI gives "
        "IPs, domains and URLs none of their own): one request per collection not cached, within "
        "VIRUSTOTAL_GTI_MAX_REQUESTS.",
        costs_requests=True,
    ),
)

"""Configuration keys of the community plugin: two requests per observable, so off by default."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal.import_community",
        "bool",
        False,
        "Add the VirusTotal community's newest comments and votes to files, IPs, domains and URLs "
        "(a note, comment authors as external references, comment tags as labels); costs two requests per "
        "observable not cached.",
        costs_requests=True,
    ),
    ConfigKey(
        "virustotal.community_max_comments",
        "int",
        10,
        "Newest comments read per observable (1-40).",
        minimum=1,
    ),
    ConfigKey(
        "virustotal.community_max_votes",
        "int",
        40,
        "Newest votes weighed per observable (1-40).",
        minimum=1,
    ),
    ConfigKey(
        "virustotal.community_max_labels",
        "int",
        10,
        "Most comment tags added as labels per observable (0 for none; the result says when it cuts).",
        minimum=0,
    ),
)

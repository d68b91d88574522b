"""What may leave for VirusTotal: the TLP scale, the markings we recognise, the egress checks."""

from vtframework.policy.egress import EgressRefused, check_lookup, most_restrictive_tlp, upload_allowed
from vtframework.policy.markings import TLP_MARKING_BY_ID, TLP_MARKINGS
from vtframework.policy.tlp import TLP_ORDER, normalize_tlp, tlp_rank

__all__ = [
    "EgressRefused", "TLP_MARKINGS", "TLP_MARKING_BY_ID", "TLP_ORDER", "check_lookup", "most_restrictive_tlp",
    "normalize_tlp", "tlp_rank", "upload_allowed",
]

"""A VirusTotal file object as STIX: the updated file, notes, indicators, YARA."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtframework import STIX_EXT_OCTI_SCO, blocks, pattern_for

from vtframework_plugins.file.yara import yara_objects

_HASH_FIELDS = (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256"))


def update_file(context: Any, attrs: Mapping[str, Any]) -> None:
    """Hashes, size, name and additional names of the enriched file."""
    target = context.target
    hashes = target.setdefault("hashes", {})
    for field, name in _HASH_FIELDS:
        if isinstance(attrs.get(field), str) and attrs[field]:
            hashes[name] = attrs[field]
    names = [n for n in attrs.get("names") or [] if isinstance(n, str) and n.strip()]
    if context.observable.entity_type == "StixFile":
        size = blocks.count(attrs.get("size"), maximum=1 << 53)
        if size is not None:
            target["size"] = size
        if not target.get("name"):
            main = attrs.get("meaningful_name") if isinstance(attrs.get("meaningful_name"), str) else None
            main = main or (names[0] if names else None)
            if main:
                target["name"] = main
    for name in names:
        if name != target.get("name"):
            blocks.put_extension(target, STIX_EXT_OCTI_SCO, "additional_names", name, multiple=True)


def report_note(context: Any, attrs: Mapping[str, Any]) -> list[Any]:
    """The "VirusTotal Report" note: detection statistics and every engine's verdict."""
    if not isinstance(attrs.get("last_analysis_results"), Mapping):
        return []
    # Missing statistics read 'N/A', not 0: nothing says the engines found nothing.
    counts = blocks.stats(attrs) if blocks.has_stats(attrs) else dict.fromkeys(blocks.stats({}), None)
    observable = context.observable
    parts = [
        f"**{observable.entity_type}** `{blocks.cell(attrs.get('sha256') or observable.value)}`, "
        f"last analysed {blocks.date_text(attrs.get('last_analysis_date'))}",
        blocks.table(
            ("Total Analyses", "Malicious", "Suspicious", "Undetected", "Harmless", "Timeout",
             "Confirmed timeout", "Failure", "Unsupported"),
            [(len(attrs["last_analysis_results"]), counts["malicious"], counts["suspicious"],
              counts["undetected"], counts["harmless"], counts["timeout"], counts["confirmed-timeout"],
              counts["failure"], counts["type-unsupported"])],
        ),
        "## Last Analysis Results",
        blocks.table(("Engine name", "Engine version", "Method", "Category", "Result"),
                     blocks.engine_rows(attrs, with_version=True)),
    ]
    section = blocks.attributes_section(context, file_attributes(attrs))
    if section:
        parts.append(section)
    return [context.factory.note("VirusTotal Report", "\n\n".join(parts), [context.target_id])]


def file_attributes(attrs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    threat = attrs.get("popular_threat_classification")
    signature = attrs.get("signature_info")
    return [
        ("File Type", attrs.get("type_description")),
        ("Type Tags", attrs.get("type_tags")),
        ("First Submission", blocks.date_text(attrs.get("first_submission_date"))),
        ("Last Submission", blocks.date_text(attrs.get("last_submission_date"))),
        ("Popular Threat Label", threat.get("suggested_threat_label") if isinstance(threat, Mapping) else None),
        ("Signature Verification", signature.get("verified") if isinstance(signature, Mapping) else None),
        ("Names", attrs.get("names")),
    ]


def file_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    settings = context.settings
    attrs = blocks.attributes(report)
    counts = blocks.stats(attrs)
    # Without (usable) statistics there is no count to show, not a zero.
    context.summary.update(blocks.detection_summary(attrs))
    if not context.via_indicator:
        update_file(context, attrs)
    blocks.add_labels(context, [t for t in attrs.get("tags") or [] if isinstance(t, str)])
    score = blocks.vt_score(attrs)
    objects = blocks.apply_score(context, score)
    reference = blocks.add_external_reference(context, report, attrs.get("magic") or "VirusTotal Report")
    if settings["virustotal.file_create_note_full_report"]:
        objects += report_note(context, attrs)
    sha256 = attrs.get("sha256") if isinstance(attrs.get("sha256"), str) else None
    if sha256:
        objects += blocks.indicator_based_on(
            context,
            kind="file",
            pattern=pattern_for("StixFile", sha256, "SHA-256"),
            name=context.observable.value,
            malicious=counts["malicious"],
            score=score,
            references=[reference] if reference else [],
        )
    if settings["virustotal.file_import_yara"]:
        objects += yara_objects(context, attrs, score)
    return objects

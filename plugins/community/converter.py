"""Comments and votes as STIX: a note with the authors as external references, #tags as labels."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from vtframework import ScoreReason, addons, blocks

from vtframework_plugins.community.query import fetch

#: Characters of one comment shown in the note.
COMMENT_CHARS = 1500
_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,49}$")


@dataclass(frozen=True)
class Comment:
    id: str
    date: Any
    text: str
    tags: tuple[str, ...]
    author: str | None
    positive: int
    negative: int


@dataclass(frozen=True)
class Votes:
    """The newest votes: how many each way and their weight (each vote weighs its author's reputation)."""

    harmless: int = 0
    malicious: int = 0
    harmless_weight: int = 0
    malicious_weight: int = 0

    @property
    def count(self) -> int:
        return self.harmless + self.malicious

    @property
    def balance(self) -> int:
        """Sum of the weighted values: above 0 leans harmless, below 0 malicious."""
        return self.harmless_weight + self.malicious_weight


def comments_of(answer: Mapping[str, Any] | None, limit: int) -> tuple[list[Comment], int]:
    """The newest ``limit`` comments of a ``/comments`` answer, and how many items could not be read."""
    items = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(items, list):
        return [], 0
    comments, skipped = [], 0
    for item in items:
        attrs = item.get("attributes") if isinstance(item, Mapping) else None
        if not isinstance(attrs, Mapping) or not isinstance(attrs.get("text"), str):
            skipped += 1
            continue
        votes = attrs.get("votes") if isinstance(attrs.get("votes"), Mapping) else {}
        comments.append(Comment(
            id=str(item.get("id") or ""),
            date=attrs.get("date"),
            text=attrs["text"],
            tags=tuple(_tags(attrs.get("tags"))),
            author=_author(item),
            positive=blocks.as_int(votes.get("positive")),
            negative=blocks.as_int(votes.get("negative")),
        ))
    comments.sort(key=lambda c: -(c.date if isinstance(c.date, int) and not isinstance(c.date, bool) else 0))
    return comments[:limit], skipped


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    tags = []
    for tag in value:
        text = tag.strip().lstrip("#").lower() if isinstance(tag, str) else ""
        if _TAG.match(text) and text not in tags:
            tags.append(text)
    return tags


def _author(item: Mapping[str, Any]) -> str | None:
    """The author's user id, present when the comments were asked ``relationships=author``."""
    relationships = item.get("relationships")
    author = relationships.get("author") if isinstance(relationships, Mapping) else None
    data = author.get("data") if isinstance(author, Mapping) else None
    ident = data.get("id") if isinstance(data, Mapping) else None
    return ident.strip()[:100] if isinstance(ident, str) and ident.strip() else None


def votes_of(answer: Mapping[str, Any] | None) -> tuple[Votes, int]:
    """The newest votes of a ``/votes`` answer, and how many items could not be read."""
    items = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(items, list):
        return Votes(), 0
    harmless = malicious = harmless_weight = malicious_weight = skipped = 0
    for item in items:
        attrs = item.get("attributes") if isinstance(item, Mapping) else None
        verdict = attrs.get("verdict") if isinstance(attrs, Mapping) else None
        value = attrs.get("value") if isinstance(attrs, Mapping) else None
        if verdict not in ("harmless", "malicious") or isinstance(value, bool) or not isinstance(value, int):
            skipped += 1
            continue
        # The sign follows the verdict; a value that contradicts it is read by its verdict.
        weight = abs(value) if verdict == "harmless" else -abs(value)
        if verdict == "harmless":
            harmless, harmless_weight = harmless + 1, harmless_weight + weight
        else:
            malicious, malicious_weight = malicious + 1, malicious_weight + weight
    return Votes(harmless, malicious, harmless_weight, malicious_weight), skipped


def community_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    if addons.vt_object(report) is None:
        return []
    settings = context.settings
    comments_answer, votes_answer = fetch(context, report, "comments"), fetch(context, report, "votes")
    comments, bad_comments = comments_of(comments_answer, settings["virustotal.community_max_comments"])
    votes, bad_votes = votes_of(votes_answer)
    for count, what in ((bad_comments, "comment(s)"), (bad_votes, "vote(s)")):
        if count:
            context.warn(f"{count} community {what} skipped: no text, verdict or value")
    tags = list(dict.fromkeys(tag for comment in comments for tag in comment.tags))
    if tags and settings["virustotal.community_max_labels"]:
        blocks.add_labels(context, addons.capped(
            context, tags, "virustotal.community_max_labels", "comment tags to label with"
        ))
    if not comments and not votes.count:
        return []
    attrs = blocks.attributes(report)
    parts = [_votes_text(votes, attrs.get("total_votes"))]
    parts += [_comment_text(comment) for comment in comments]
    page = blocks.gui_link(report)
    references = [
        {"source_name": "VirusTotal community", "url": f"{blocks.GUI_BASE}/user/{quote(author, safe='')}",
         "description": f"Comment author {author}"}
        for author in dict.fromkeys(comment.author for comment in comments if comment.author)
    ]
    if page:
        references.insert(0, {"source_name": "VirusTotal community", "url": f"{page}/community",
                              "description": "Comments and votes on VirusTotal"})
    return [context.factory.note(
        "VirusTotal Community", "\n\n".join(parts), [context.target_id], external_references=references
    )]


def _votes_text(votes: Votes, total: Any) -> str:
    if votes.count:
        text = (
            f"**Votes**: the newest {votes.count} weigh {votes.balance:+d} "
            f"({votes.harmless} harmless, {votes.harmless_weight:+d}; "
            f"{votes.malicious} malicious, {votes.malicious_weight:+d}). "
            "Each vote weighs its author's reputation."
        )
    else:
        text = "**Votes**: none."
    if isinstance(total, Mapping):
        text += (
            f" All votes ever: {blocks.as_int(total.get('harmless'))} harmless, "
            f"{blocks.as_int(total.get('malicious'))} malicious."
        )
    return text


def _comment_text(comment: Comment) -> str:
    head = f"### {blocks.date_text(comment.date)}" + (f" by {blocks.cell(comment.author)}" if comment.author else "")
    if comment.positive or comment.negative:
        head += f" (+{comment.positive}/-{comment.negative})"
    # The comment is the community's text: quoted, and no raw HTML reaches the note.
    body = addons.clip(comment.text.strip(), COMMENT_CHARS).replace("<", "&lt;").replace(">", "&gt;")
    return head + "\n\n" + "\n".join(f"> {line}" for line in body.splitlines())


def vote_reasons(context: Any, report: Mapping[str, Any]) -> list[ScoreReason]:
    votes, _skipped = votes_of(fetch(context, report, "votes"))
    if not votes.count:
        return []
    leaning = "benign" if votes.balance > 0 else "malicious" if votes.balance < 0 else "neutral"
    return [ScoreReason(
        "Community votes",
        f"the newest {votes.count} votes weigh {votes.balance:+d} "
        f"({votes.harmless} harmless, {votes.malicious} malicious)",
        leaning,
    )]

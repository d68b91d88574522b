"""VirusTotal's Livehunt ruleset endpoints, through the core client (quota, retries, typed errors)."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from vtframework.errors import NotFoundError

from vtframework_plugins.livehunt.ruleset import indicator_of, token

PATH = "/intelligence/hunting_rulesets"
#: Rulesets asked for per page (VirusTotal's collections give at most 40).
PAGE_SIZE = 40
PRIVILEGE = "Livehunt (premium)"


class HuntingRulesets:
    def __init__(self, client: Any) -> None:
        self.client = client

    def create(self, attributes: Mapping[str, Any], subject: str) -> dict[str, Any]:
        body = {"data": {"type": "hunting_ruleset", "attributes": dict(attributes)}}
        return self.client.post(PATH, json=body, subject=subject, privilege=PRIVILEGE)["data"]

    def patch(self, ruleset_id: str, attributes: Mapping[str, Any], subject: str) -> dict[str, Any]:
        body = {"data": {"type": "hunting_ruleset", "id": ruleset_id, "attributes": dict(attributes)}}
        return self.client.patch(f"{PATH}/{ruleset_id}", json=body, subject=subject, privilege=PRIVILEGE)["data"]

    def delete(self, ruleset_id: str, subject: str) -> bool:
        """Delete a ruleset; False when it was already gone."""
        try:
            self.client.delete(f"{PATH}/{ruleset_id}", subject=subject, privilege=PRIVILEGE)
        except NotFoundError:
            return False
        return True

    def add_editors(self, ruleset_id: str, editors: list[dict[str, str]], subject: str) -> None:
        self.client.post(
            f"{PATH}/{ruleset_id}/relationships/editors", json={"data": editors}, subject=subject, privilege=PRIVILEGE
        )

    def iter_all(self, filter_text: str | None = None) -> Iterator[dict[str, Any]]:
        """Every ruleset the key can see (matching ``filter_text``), following the cursor to the end."""
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if filter_text:
            params["filter"] = filter_text
        seen: set[str] = set()
        while True:
            # Always fresh: a cached page would hide a ruleset created a moment ago.
            page = self.client.get(PATH, params=params, subject="Livehunt rulesets", cache=False, privilege=PRIVILEGE)
            yield from page.get("data") or []
            cursor = (page.get("meta") or {}).get("cursor")
            if not cursor or cursor in seen:
                return
            seen.add(cursor)
            params = {**params, "cursor": cursor}

    def marked(self, indicator_id: str) -> list[dict[str, Any]]:
        """The rulesets carrying ``indicator_id``'s marker, oldest id first."""
        found = [r for r in self.iter_all(f"rules:{token(indicator_id)}")
                 if indicator_of((r.get("attributes") or {}).get("rules")) == indicator_id]
        return sorted(found, key=ruleset_order)


def ruleset_order(ruleset: Mapping[str, Any]) -> tuple[int, str]:
    """The order replicas agree on when choosing which of two duplicates to keep."""
    ident = str(ruleset.get("id"))
    return (int(ident), ident) if ident.isdigit() else (1 << 64, ident)

"""vtframework-hello adds its greeting to every enrichment (a real recorded answer, offline)."""

import vtframework_hello
from vtframework.testing import assert_valid_bundle, notes_by_abstract

WORD_DOC = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"  # shipped with vtframework


def test_every_enrichment_gets_the_greeting(vtf_enrich):
    result = vtf_enrich(WORD_DOC, plugin=vtframework_hello, env={"HELLO_GREETING": "Bonjour"})
    assert result.ok and not result.plugin_errors, result.message
    note = notes_by_abstract(result)["vtframework-hello"]
    assert note["content"] == f"Bonjour (StixFile {WORD_DOC})"
    assert note["object_marking_refs"] == list(result.observable.markings)
    assert note["object_refs"] == [result.observable.id]
    assert_valid_bundle(result)

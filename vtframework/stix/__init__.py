"""STIX 2.1: the factory every object comes from (``factory``), observables from values and patterns
(``observables``), and YARA rules cut out of rulesets with the Livehunt ruleset marker (``yara``)."""

"""STIX 2.1: the factory every object comes from (``factory``), and observables from values and patterns
(``observables``)."""

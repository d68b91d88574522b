"""The flows the core runs for plugins: enrichment (observable -> VirusTotal -> STIX) and sample downloads.

``enrich`` holds the :class:`~vtframework.pipeline.enrich.Pipeline`, ``blocks``
the building blocks type plugins share, ``download`` the verified sample download.
"""

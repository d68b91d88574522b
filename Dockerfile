# One image for the four connectors: enrichment, downloader, livehunt and notifications.
# `vtframework run` tells them apart by the environment of the original connector's
# service (VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY or CONNECTOR_TYPE=EXTERNAL_IMPORT ->
# notifications, VIRUSTOTAL_DOWNLOADER_API_KEY -> downloader, VIRUSTOTAL_LIVEHUNT_TOKEN or
# CONNECTOR_TYPE=STREAM -> livehunt, otherwise enrichment); VTF_PRESET overrides.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VTF_STATE_DIR=/var/lib/vtframework

WORKDIR /opt/vtframework
COPY pyproject.toml README.md ./
COPY vtframework ./vtframework
COPY plugins ./plugins
RUN pip install . \
    && useradd --system --home-dir /var/lib/vtframework --create-home vtframework

USER vtframework
VOLUME ["/var/lib/vtframework"]
ENTRYPOINT ["vtframework"]
CMD ["run"]

# One image for the four connectors: enrichment, downloader, livehunt and notifications.
# `vtframework run` tells them apart by the environment of the original connector's
# service (VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY or CONNECTOR_TYPE=EXTERNAL_IMPORT ->
# notifications, VIRUSTOTAL_DOWNLOADER_API_KEY -> downloader, VIRUSTOTAL_LIVEHUNT_TOKEN or
# CONNECTOR_TYPE=STREAM -> livehunt, otherwise enrichment); VTF_PRESET overrides.
#
# pycti must equal your OpenCTI platform's version: build for it with
#   docker build --build-arg PYCTI_VERSION=6.9.29 -t vtframework:6.9.29 .
# (see the README's table; `vtframework run --check` compares the two).
ARG PYCTI_VERSION=7.261026.0
FROM python:3.12-slim
ARG PYCTI_VERSION

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VTF_STATE_DIR=/var/lib/vtframework

WORKDIR /opt/vtframework
COPY pyproject.toml README.md ./
COPY vtframework ./vtframework
COPY plugins ./plugins
# The connector manager's manifests and configuration schemas, one folder per preset.
COPY __metadata__ ./__metadata__
# pycti 6.x imports python-magic, which needs libmagic; 7.x does not.
RUN case "${PYCTI_VERSION}" in \
        6.*) apt-get update \
             && apt-get install -y --no-install-recommends libmagic1 \
             && rm -rf /var/lib/apt/lists/* ;; \
    esac \
    && pip install . "pycti==${PYCTI_VERSION}" \
    && useradd --system --home-dir /var/lib/vtframework --create-home vtframework

USER vtframework
VOLUME ["/var/lib/vtframework"]
ENTRYPOINT ["vtframework"]
CMD ["run"]

"""Sample downloader: fetches a StixFile's sample from VirusTotal into an OpenCTI Artifact."""

from vtframework import hookimpl

from vtframework_plugins.downloader.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS

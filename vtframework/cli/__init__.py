"""The ``vtframework`` command line: core commands, plus those plugins add."""

from vtframework.cli.main import main

__all__ = ["main"]

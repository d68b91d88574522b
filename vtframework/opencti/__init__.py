"""The OpenCTI side: connector runtimes on pycti's helper, messages, artifacts, metrics.

Importing this package loads nothing heavy; each runtime module imports pycti
when it is used, so the command line starts without it.
"""

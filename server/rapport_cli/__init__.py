"""The ``rapport`` command line: server operations and an operator surface over the SDK."""

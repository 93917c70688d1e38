"""`pkictl`: the command-line adapter, the only package that imports click.

Commands parse arguments, call one service method and print. Errors are mapped to messages and exit codes in
one place, :func:`pki.cli.app.main`: 0 success, 1 refused or invalid (one line on stderr), 2 usage error.
Heavy modules are imported inside commands so that ``pkictl --help`` starts fast.
"""

from pki.cli.app import cli, main

__all__ = ["cli", "main"]

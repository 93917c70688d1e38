def with_shim(shim: object) -> str:
    """PYTHONPATH for a pkictl subprocess that loads ``shim``'s sitecustomize.py (a fault injected) and then
    this checkout's code (not whichever checkout the virtualenv's editable install points at)."""
    import os
    from pathlib import Path

    return os.pathsep.join([str(shim), str(Path(__file__).resolve().parents[2])])

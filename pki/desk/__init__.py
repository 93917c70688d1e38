"""The desk: what an operator's machine asks of the center, whether the center is this process (the local
desk, over the service) or a server (the remote desk, over HTTP). Commands call a desk and print."""

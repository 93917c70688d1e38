"""The real USB key with a method or two replaced by a test: a fault, or another desk's write landing while
the key works. Everything not replaced goes to the key itself."""

from __future__ import annotations

from tokens.usbkey import UsbKey


class OnKey:
    def __init__(self, device: UsbKey) -> None:
        self._device = device

    def __getattr__(self, name: str) -> object:
        return getattr(self._device, name)

"""cutover operations (registered below)."""

"""tokens operations (registered below)."""

"""certificates operations (registered below)."""

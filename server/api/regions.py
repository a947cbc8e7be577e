"""API: regions."""

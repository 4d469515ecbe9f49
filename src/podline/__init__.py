"""podline."""

"""Rows per store: asyncsess, the bare-client floor, and peers where they exist."""

"""Packaging: Dockerfiles, images and environments (imported only by the CLI)."""

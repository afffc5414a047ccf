"""OONI's public archive: layout, anonymous S3 sync, fast import."""

"""Batch scoring triggered by objects landing in S3."""

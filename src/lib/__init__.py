"""Shared plumbing: config, storage, tracking, errors. Steps import from here; nothing here imports a step."""

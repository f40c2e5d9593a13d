"""Durable: a self-hosted durable-execution engine."""

__version__ = "0.1.0"

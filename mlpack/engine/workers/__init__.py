"""Everything that crosses the process boundary: messages, framing, the worker and the pool."""

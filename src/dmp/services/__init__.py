"""Use cases. Each takes the caller's connection: the caller owns the transaction."""

"""Authentication: test PKI (IGC Santé stand-in), client assertions, access tokens."""

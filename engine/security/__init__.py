"""Users, roles, sign-in, and the hash-chained audit trail."""

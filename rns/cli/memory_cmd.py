"""`rns memory ...`: registers itself on the `rns` click group."""

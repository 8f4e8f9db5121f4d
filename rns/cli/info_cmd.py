"""`rns info`: registers itself on the `rns` click group."""

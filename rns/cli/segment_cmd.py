"""`rns segment`: registers itself on the `rns` click group."""

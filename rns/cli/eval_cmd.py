"""`rns eval`: registers itself on the `rns` click group."""

"""`rns add-support`: registers itself on the `rns` click group."""

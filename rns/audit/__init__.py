"""`rns memory audit`: which support examples help the photos that retrieve them, and which hurt.

One module per job: `truth.py` finds the support photos again and their ground truth, `loo.py` the
leave-one-out scoring, `report.py` scores, flags and reasons, `apply.py` records them in the memory,
`sheet.py` a contact sheet of the worst entries. `run.audit_memory` is the whole audit.
"""

"""Teaching rns: turning labelled examples into the support memory's prototypes, and reaching that memory.

Here live adding examples (`support`) and pairing images with masks by file name (`pairing`), pooling a mask's
patches into prototypes (`prototypes`), the mask and class-name conventions (`mask_conventions`), example ids
and fingerprints (`support_ids`, `fingerprints`), opening, exporting and listing a memory (`memory_access`,
`memory_export`, `memory_sources`) and the audit's retrieval weights stored with its entries
(`retrieval_weights`). It may import `rns.io`, `rns.backbone`, `rns.formats.confine`, `support_memory` and the
modules at the top of `rns`; never segment, run, evaluate, ui or cli.
"""

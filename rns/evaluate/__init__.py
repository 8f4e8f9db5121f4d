"""Scoring segmentations against ground truth: the confusion matrix and mIoU, and `rns eval` over a folder.

Here live the metric (`evaluation`: confusion matrix, IoU, the ignore label) and reading a labelled folder
and scoring a segmenter on it (`folder_eval`). It may import `rns.io`, `rns.teach` (the mask conventions and
the image/mask pairing) and the modules at the top of `rns`; it never imports the segmenter's modules (the
caller hands one in), run, ui or cli.
"""

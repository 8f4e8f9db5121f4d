"""Segmenting one photo: the `Segmenter` that joins backbone, support memory, adaptation and regions.

Here live the segmenter and its options (`pipeline`), the class list a user asks for (`requested_classes`) and
its label ids and prompts (`class_plan`), the check that background was taught before a lone class is asked
for (`background_evidence`) and the upsampling of patch scores to the photo's pixels (`upsample`). It may
import `rns.adapt`, `rns.backbone`, `rns.regions`, `rns.teach`, `rns.io`, `support_memory` and the modules at
the top of `rns`; never run, evaluate, audit, ui or cli (they import it).
"""

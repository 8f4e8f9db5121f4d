"""Folder runs: segmenting many photos into an output folder that resumes, locally or on Ray.

Here live the run itself (`runner`, `image_work`), what it reads (`inputs`) and how many images share a
backbone call (`batch_size`), its events and progress lines (`run_events`, `progress`), the per-image done
records and resume plan (`done_records`, `resume_plan`), the output-folder lock (`outlock`) and the Ray
version of the run (`ray_run`, `ray_worker`, `ray_session`). It may import `rns.segment`, `rns.io`,
`rns.teach`, `rns.backbone`, `rns.regions`, `support_memory` and the modules at the top of `rns`; never ui
or cli (they import it).
"""

"""Labels in and out of the tools people label and train with.

Readers (each returns an `ImportedSet`: class names and a stream of (image, index mask) items, 255 =
unlabelled, plus per-item problems):

- `coco.read_coco`: COCO instance files (polygons, RLE, uncompressed RLE, crowd regions);
- `labelme.read_labelme`: LabelMe / X-AnyLabeling JSON files;
- `colour_masks.read_colour_masks`: CVAT / VOC "segmentation mask" exports (labelmap.txt or VOC colours);
- `label_studio.read_label_studio`: Label Studio JSON exports (brush RLE, polygons, rectangles);
- `yolo.read_yolo`: YOLO segmentation datasets.

Every reader reads only files inside the folders the user named, links followed (`confine`), and takes
each value of a label file through `fields` (types, ranges, JSON depth, class-name length), so a bad
item is one problem line and the others are still read.

`teach.add_imported` adds an import to the support memory; `staging.staged_items` gives its items as
files for evaluation. Writers: `coco.coco_document` and `yolo.label_lines`, used for a whole run by
`run_export.export_run` (`rns segment --export coco|yolo`).

The libraries these need (pycocotools, OpenCV, label-studio-sdk, PyYAML) are the `formats` extra;
`rns.formats._deps` names it when one is missing. Nothing here imports them at module level.
"""

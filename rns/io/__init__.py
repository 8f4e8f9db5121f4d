"""Files in and out: reading photos and masks, writing a segmentation's outputs crash-safely.

Here live image/mask decoding (`imageio`), the output writers and their file names (`outputs`,
`output_specs`, `palette`, `legend_font`, `rle`), crash-safe writes (`atomic`) and the one-line errors of a
failed write (`output_errors`). It may import only the standard library, numpy/Pillow and the modules at
the top of `rns` (`errors`, `segmentation`); every other part of rns may import it.
"""

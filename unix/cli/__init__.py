"""Console commands (``unix-<verb>``, declared in setup.cfg) that do not need fairseq in process."""

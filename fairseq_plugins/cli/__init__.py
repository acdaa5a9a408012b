"""Console commands (``unix-<verb>``, declared in setup.cfg) that need fairseq in process."""

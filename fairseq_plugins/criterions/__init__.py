"""fairseq plugin modules."""

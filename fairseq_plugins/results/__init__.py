"""The results tables of the examples, from trained checkpoints or kept fairseq-generate outputs.

One module per task (:mod:`~fairseq_plugins.results.caption`, :mod:`~fairseq_plugins.results.mmt`, :mod:`~fairseq_plugins.results.vqa`,
:mod:`~fairseq_plugins.results.pretrain`, :mod:`~fairseq_plugins.results.mmt_protocol`,
:mod:`~fairseq_plugins.results.crosslingual`), each with ``add_arguments(parser)``
and ``run(args)``; :mod:`~fairseq_plugins.results.common` holds what they share (running fairseq-generate,
reading its summary line, writing the markdown table and its JSON). The command is ``unix-results
TASK ...`` (:mod:`fairseq_plugins.cli.results`). fairseq runs only as a subprocess: nothing here imports it.
"""

"""The results tables of the examples, from trained checkpoints or kept fairseq-generate outputs.

One module per task (:mod:`~unix.results.caption`, :mod:`~unix.results.mmt`, :mod:`~unix.results.vqa`,
:mod:`~unix.results.pretrain`, :mod:`~unix.results.mmt_protocol`), each with ``add_arguments(parser)``
and ``run(args)``; :mod:`~unix.results.common` holds what they share (running fairseq-generate,
reading its summary line, writing the markdown table and its JSON). The command is ``unix-results
TASK ...`` (:mod:`unix.cli.results`). fairseq runs only as a subprocess: nothing here imports it.
"""

"""The speed benchmarks: training, batching, generation and precision, each one kind of
``unix-benchmark KIND ...`` (:mod:`fairseq_plugins.cli.benchmark`).

One module per kind (:mod:`~fairseq_plugins.benchmark.train`, :mod:`~fairseq_plugins.benchmark.caption`,
:mod:`~fairseq_plugins.benchmark.generate`, :mod:`~fairseq_plugins.benchmark.precision`), each with
``add_arguments(parser)`` and ``run(args)``; :mod:`~fairseq_plugins.benchmark.timing` holds what they
share (timing loops, GPU sync, autocast, the report files, the machine's description). They live
beside the fairseq plugins because most of them build fairseq tasks, models and generators;
fairseq is imported only where a kind needs it.
"""

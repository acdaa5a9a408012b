"""Task ``unix_vqa``: image + question -> answer text, generated with beam search.

Data: what ``fairseq-preprocess -s question -t answer`` writes with the one shared ``dict.txt``,
plus per split an image list ``<split>.<image-list-suffix>`` aligned with the questions (every
question needs an image). Training targets hold one answer; evaluation targets may hold the
answers of several annotators joined by ``<sep>`` (their validation *loss* then covers the
whole joined string; use ``--eval-metric accuracy``). The answer-language tag (``__en__``) is put in
front of every question. ``unix-prepare-easy-vqa`` writes this layout; see
``examples/vqa/README.md``.

Options beyond ``unix_mmt``'s: ``--constraint-answers FILE`` (closed-set decoding: beam search
only produces answers of the list, see :mod:`fairseq_plugins.generation.trie_generator`) and
``--balance-answers`` (answer-balanced training draws, :mod:`unix.data.answer_balance`).
``--eval-metric accuracy`` logs ``accuracy``, the VQA accuracy in percent (``{"beam": 5}`` unless
``--eval-args``); the deprecated ``--eval-accuracy*`` flags map onto it.
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from fairseq_plugins.generation.best_stop import NOT_PLAIN_BEAM, positive
from fairseq_plugins.generation.trie_generator import (BestStopTrieGenerator, TrieConstrainedSequenceGenerator,
                                                       load_answer_trie)
from fairseq_plugins.tasks.base import UnixImageTask, UnixImageTaskConfig, beam_stop_field
from unix.data.answer_balance import AnswerTemplater, answer_balance_weights, balance_summary
from unix.generation.beam_search import STOP_RULES
from unix.metrics.references import SEP

logger = logging.getLogger(__name__)


@dataclass
class UnixVQAConfig(UnixImageTaskConfig):
    """Options of ``unix_vqa``: fairseq's translation options, the shared image options, and these."""

    source_lang: Optional[str] = field(default="question", metadata={
        "help": "file suffix of the questions", "argparse_alias": "-s"})
    target_lang: Optional[str] = field(default="answer", metadata={
        "help": "file suffix of the answers", "argparse_alias": "-t"})
    answer_lang: str = field(default="en", metadata={
        "help": "language of the answers: its tag (__en__) is put in front of every question"})
    constraint_answers: Optional[str] = field(default=None, metadata={
        "help": "closed-set decoding: answer list, one answer a line in sentencepiece pieces "
                "(answers.spm.txt of unix-prepare-easy-vqa); beam search then only produces "
                "these answers, and every training answer must be in it"})
    balance_answers: bool = field(default=False, metadata={
        "help": "re-draw the training questions each epoch (with replacement) so that within each "
                "question template (the question with every training answer's words replaced by a "
                "placeholder) every answer is equally frequent; batches are then in random order "
                "(see unix.data.answer_balance)"})
    beam_stop: ChoiceEnum(STOP_RULES) = beam_stop_field("best")  # fairseq's rule returns junk short answers
    fairseq_beam_stop: bool = field(default=False, metadata={
        "help": "deprecated (goes in the next release): --beam-stop fairseq"})
    eval_accuracy: bool = field(default=False, metadata={
        "help": "deprecated (goes in the next release): --eval-metric accuracy"})
    eval_accuracy_args: Optional[str] = field(default=None, metadata={"help": "deprecated: --eval-args"})
    eval_accuracy_post_process: Optional[str] = field(default="sentencepiece", metadata={
        "help": "deprecated: --eval-post-process"})
    eval_accuracy_print_samples: bool = field(default=False, metadata={"help": "deprecated: --eval-print-samples"})


# generation options that closed-set decoding cannot honour -> "is it switched on?"
_NOT_WITH_CLOSED_SET = {
    **NOT_PLAIN_BEAM, "match_source_len": bool, "prefix_size": positive, "no_repeat_ngram_size": positive,
    "min_len": lambda v: v is not None and v > 1,
}


@register_task("unix_vqa", dataclass=UnixVQAConfig)
class UnixVQATask(UnixImageTask):
    """Generative visual question answering (image + question -> answer text)."""

    task_name = "unix_vqa"
    image_required = True
    sample_noun = "question"
    missing_image = "question without an image (empty line); every unix_vqa question needs one"
    beam_stop_default = "best"
    eval_args_default = '{"beam": 5}'
    eval_unk = ("<unk>", "<unk>")

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.answer_trie = load_answer_trie(cfg.constraint_answers, tgt_dict) if cfg.constraint_answers else None
        self.train_sample_weights = None  # (N,) with --balance-answers, read by get_batch_iterator

    def tag_lang(self):
        return self.cfg.answer_lang if self.cfg.lang_tag else None

    # -- data ----------------------------------------------------------------------------------
    def prepare_pair(self, split, dataset, prefix):
        if split == self.cfg.train_subset:
            answers = self.training_answers(dataset)
            self.check_training_answers(answers, f"{prefix}.{self.cfg.target_lang}")
            if self.cfg.balance_answers:
                self.train_sample_weights = self.answer_balance_weights(dataset, answers)
        return dataset

    def training_answers(self, dataset):
        """The training targets as token tuples without the final ``eos``, one per question."""
        eos = self.tgt_dict.eos()
        answers = []
        for i in range(len(dataset.tgt)):
            tokens = dataset.tgt[i].tolist()
            answers.append(tuple(tokens[:-1] if tokens and tokens[-1] == eos else tokens))
        return answers

    def check_training_answers(self, answers, where: str) -> None:
        """Every training target is one answer, and one of the answer list when there is one.

        Args:
            answers: :meth:`training_answers` of the split.
            where: the binarized target file, for the message.

        Raises:
            ValueError: naming the binarized file and the line (= question) at fault.
        """
        sep = self.tgt_dict.index(SEP)
        sep = None if sep == self.tgt_dict.unk() else sep
        bad_sep, bad_answer = [], []
        for i, tokens in enumerate(answers):
            if sep is not None and sep in tokens:
                bad_sep.append((i, tokens))
            elif self.answer_trie is not None and tokens not in self.answer_trie:
                bad_answer.append((i, tokens))
        text = lambda tokens: self.tgt_dict.string(tokens, self.eval_post_process)  # noqa: E731
        if bad_sep:
            i, tokens = bad_sep[0]
            raise ValueError(f"{where}: line {i + 1}: training answer {text(tokens)!r} joins "
                             f"several answers with {SEP}; train on one answer per question "
                             f"({len(bad_sep)} such lines)")
        if bad_answer:
            i, tokens = bad_answer[0]
            raise ValueError(f"{where}: line {i + 1}: training answer {text(tokens)!r} is not "
                             f"in the answer list {self.cfg.constraint_answers} ({len(bad_answer)} such "
                             f"lines); add the answers to the list or drop those questions")

    def answer_balance_weights(self, dataset, answers):
        """(N,) sampling weights balancing the answers (:meth:`training_answers`) within each question template."""
        templater = AnswerTemplater(set(answers))
        templates = [templater(dataset.src[i].tolist()) for i in range(len(dataset.src))]
        weights = answer_balance_weights(templates, answers)
        logger.info("--balance-answers: %s", balance_summary(templates, answers, weights))
        return weights

    # -- generation ----------------------------------------------------------------------------
    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """fairseq's generator; with ``--constraint-answers``, its closed-set subclass.

        Plain beam search (free or closed-set) uses the stopping rule of
        :mod:`fairseq_plugins.generation.best_stop` unless ``--beam-stop fairseq``.
        """
        if self.answer_trie is None or getattr(args, "score_reference", False):
            return super().build_generator(models, args, seq_gen_cls, extra_gen_cls_kwargs, prefix_allowed_tokens_fn)
        for name, switched_on in _NOT_WITH_CLOSED_SET.items():
            if switched_on(getattr(args, name, None)):
                raise ValueError(f"--{name.replace('_', '-')} cannot be combined with --constraint-answers "
                                 "(closed-set decoding is beam search over the answer list)")
        if prefix_allowed_tokens_fn is not None or seq_gen_cls is not None:
            raise ValueError("a prefix_allowed_tokens_fn or another generator class cannot be combined "
                             "with --constraint-answers")
        extra = dict(extra_gen_cls_kwargs or {}, answer_trie=self.answer_trie)
        cls = BestStopTrieGenerator if self.beam_stop == "best" else TrieConstrainedSequenceGenerator
        return super().build_generator(models, args, seq_gen_cls=cls, extra_gen_cls_kwargs=extra)

"""Commonsense prompts byte for byte (PAPER.md §3b) and the authors' decoding and checkpoint choice in Table 1."""
from __future__ import annotations

from randlora.data import commonsense as cs
from randlora.utils.config import compose_config

S16 = " " * 16
RECORD = {"instruction": "Is the sky blue?", "input": "", "output": "the correct answer is true", "answer": "true"}
WITH_INPUT = dict(RECORD, input="Look up.")

# The authors' finetune.py generate_prompt (commit c7a6515), lines 428-445, as Python evaluates them.
TRAIN_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                  "the request.  \n\n" + S16 + "### Instruction:\n" + S16 + "Is the sky blue?\n" + S16 + "\n"
                  + S16 + "### Response:\n" + S16 + "the correct answer is true")
TRAIN_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                    "context. Write a response that appropriately completes the request. \n\n" + S16
                    + "### Instruction:\n" + S16 + "Is the sky blue?\n" + S16 + "\n" + S16 + "### Input:\n" + S16
                    + "Look up.\n" + S16 + "\n" + S16 + "### Response:\n" + S16 + "the correct answer is true")
# commonsense_evaluate.py generate_prompt (= LLM-Adapters'), lines 169-186.
EVAL_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request. \n\n" + S16 + "### Instruction:\n" + S16 + "Is the sky blue?\n\n" + S16
                 + "### Response:\n" + S16)
EVAL_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                   "context. Write a response that appropriately completes the request.\n\n" + S16
                   + "### Instruction:\n" + S16 + "Is the sky blue?\n\n" + S16 + "### Input:\n" + S16
                   + "Look up.\n\n" + S16 + "### Response:\n" + S16)


def test_training_prompt_is_the_authors_finetune_string():
    assert cs.prompt(RECORD, with_answer=True) == TRAIN_NO_INPUT
    assert cs.prompt(WITH_INPUT, with_answer=True) == TRAIN_WITH_INPUT


def test_evaluation_prompt_is_the_authors_evaluate_string():
    assert cs.prompt(RECORD, with_answer=False) == EVAL_NO_INPUT
    assert cs.prompt(WITH_INPUT, with_answer=False) == EVAL_WITH_INPUT


def test_masked_user_prompt_is_the_training_string_without_output():
    assert cs.train_prompt(RECORD, "") == TRAIN_NO_INPUT.removesuffix("the correct answer is true")


def test_table1_decodes_with_four_beams_and_keeps_the_best_validation_loss():
    cfg = compose_config(["experiment=table1_commonsense/randlora_efficient"])
    assert (cfg.task.num_beams, cfg.task.max_new_tokens) == (4, 32)
    assert cfg.task.val_size == 120 and cfg.task.split_seed == 42 and cfg.task.train_on_inputs is True
    # eval_step = save_step = 200 optimizer steps = 800 batches of 4; load_best_model_at_end on eval loss
    assert cfg.trainer.val_check_interval == 200 * cfg.optim.accumulate_grad_batches
    assert cfg.trainer.check_val_every_n_epoch is None and cfg.task.val_generate is False
    assert (cfg.callbacks.adapter_checkpoint.monitor, cfg.callbacks.adapter_checkpoint.mode) == ("val/loss", "min")
    assert compose_config(["task=commonsense"]).task.num_beams == 1  # greedy: the named cheap option

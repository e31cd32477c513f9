"""The reranker's loss on the transformers Trainer, computed from the same next-token logits the
[rerank] stage scores with (`next_token_logits`, left-padded prompts):

- listwise: cross-entropy over the candidate letters' logits (A, B, ... up to the list's size)
  at the answer position; softmax over those letters is what inference ranks by;
- pointwise: score = logit(Yes) - logit(No) per prompt, cross-entropy over each group's scores
  with the gold's prompt as the target (the 1st-place team's recipe).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import Trainer

from eedi_utils.rerank.backends import left_pad, next_token_logits
from eedi_utils.train.reranker.examples import ListwiseExample, PointwiseGroup


class ListwiseCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[ListwiseExample]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([e.input_ids for e in examples], self.pad_id)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "n_choices": torch.tensor([e.n_choices for e in examples]),
            "labels": torch.tensor([e.label for e in examples]),
        }


class PointwiseCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, groups: Sequence[PointwiseGroup]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([p for g in groups for p in g.prompts], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "groups": torch.tensor(len(groups))}


def listwise_loss(logits: torch.Tensor, choice_ids: Sequence[int], batch: dict) -> torch.Tensor:
    """Cross-entropy over each prompt's first `n_choices` letter logits."""
    choices = logits[:, list(choice_ids)].float()
    outside = (
        torch.arange(len(choice_ids), device=logits.device)[None, :]
        >= batch["n_choices"].to(logits.device)[:, None]
    )
    choices = choices.masked_fill(outside, float("-inf"))
    return torch.nn.functional.cross_entropy(choices, batch["labels"].to(logits.device))


def pointwise_loss(logits: torch.Tensor, yes_no: Sequence[int], batch: dict) -> torch.Tensor:
    """Cross-entropy over each group's logit(Yes) - logit(No), the gold's prompt first."""
    scores = (logits[:, yes_no[0]] - logits[:, yes_no[1]]).float()
    grouped = scores.reshape(int(batch["groups"]), -1)
    target = torch.zeros(grouped.shape[0], dtype=torch.long, device=logits.device)
    return torch.nn.functional.cross_entropy(grouped, target)


class ChoiceTrainer(Trainer):
    """transformers' Trainer with the listwise or pointwise loss over a few token ids."""

    def __init__(self, *args, mode: str, token_ids: Sequence[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.mode, self.token_ids = mode, list(token_ids)
        self.model_accepts_loss_kwargs = False  # the loss is a batch mean: the Trainer scales it

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = next_token_logits(model, inputs["input_ids"], inputs["attention_mask"])
        if self.mode == "listwise":
            loss = listwise_loss(logits, self.token_ids, inputs)
        else:
            loss = pointwise_loss(logits, self.token_ids, inputs)
        return (loss, {"logits": logits}) if return_outputs else loss

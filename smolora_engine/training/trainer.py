"""The trainer: SFTTrainer with our loss, its arguments, and the LoRA configuration.

Speed (measured by bench/train_throughput.py against SmoLoRA's recipe): no
gradient checkpointing, batch 1 without padding, and the loss computed from the
LM head at the trained positions only (loss.py), instead of full-vocabulary
logits (plus TRL's entropy and accuracy metrics over them) at every position;
a packed run's eval loss from packed rows (packed_eval.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..project import Project

# What the padding-free collator sends about a packed row's samples, for varlen attention
# (flash-attention on CUDA, per-sample sdpa elsewhere: attention.py), and what our collator adds: the length
# of the prefix its samples share (shared_prefix.py)
PACKED_BOUNDS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
ROW_KEYS = (*PACKED_BOUNDS, "shared_prefix")


def make_trainer_class():
    """SFTTrainer with a loss computed from the LM head at the trained positions only."""
    import torch
    import torch.nn.functional as F
    from transformers import Trainer
    from transformers.trainer_utils import EvalLoopOutput
    from trl import SFTTrainer

    from .loss import frozen_head_cross_entropy_sum, head_is_frozen_linear
    from .packed_eval import packed_eval_loss
    from .row_padding import computed_tokens
    from .shared_prefix import tokens_saved

    class SmoloraTrainer(SFTTrainer):
        fast_loss = True
        packed_eval = True  # a packed run's eval loss from packed rows (False: the HF loop, one sample per batch)
        tokens_seen = 0

        def _causal_lm(self, model):
            inner = self.accelerator.unwrap_model(model)
            if hasattr(inner, "get_base_model"):
                inner = inner.get_base_model()
            return inner

        def _head_loss_fits(self, lm) -> bool:
            """Whether the loss may come from the decoder's hidden states and the head: not for models that
            change their logits after the head (Gemma 2's soft cap, Cohere's logit_scale, Granite's division
            by logits_scaling), nor under DDP, which must see its own forward."""
            config = lm.config
            return (self.fast_loss and self.accelerator.num_processes == 1 and hasattr(lm, "get_decoder")
                    and not getattr(config, "final_logit_softcapping", None)
                    and not getattr(config, "logit_scale", None) and getattr(config, "logits_scaling", 1) == 1)

        def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                            metric_key_prefix="eval"):
            """A packed run's eval loss from packed rows (packed_eval.py): the same mean over samples."""
            lm = self._causal_lm(self.model)
            dataset = getattr(dataloader, "dataset", None)
            if (not self.packed_eval or not self.args.padding_free or self.args.eval_batch_size != 1 or self.compute_metrics is not None
                    or not self._head_loss_fits(lm) or dataset is None or not hasattr(dataset, "__len__")):
                return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                               metric_key_prefix)
            self.model.eval()  # left so, as the HF loop leaves it: the next training step turns it back
            loss, samples = packed_eval_loss(lm, self.data_collator, dataset,
                                             self.args.per_device_train_batch_size, self.args.device)
            return EvalLoopOutput(predictions=None, label_ids=None, metrics={f"{metric_key_prefix}_loss": loss},
                                  num_samples=samples)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:  # the data's tokens: no row padding, and each sample with its prefix
                self.tokens_seen += computed_tokens(inputs) + tokens_saved(inputs)
            lm = self._causal_lm(model)
            if not self._head_loss_fits(lm):
                inputs = {k: v for k, v in inputs.items()
                          if k in ("input_ids", "attention_mask", "labels", "position_ids", *ROW_KEYS)}
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            bounds = {k: inputs[k] for k in ROW_KEYS if k in inputs}  # packed rows' sample bounds
            hidden = lm.get_decoder()(
                input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                position_ids=inputs.get("position_ids"), use_cache=False, **bounds,
            ).last_hidden_state
            target = labels[:, 1:]
            keep = target != -100
            head = lm.get_output_embeddings()
            if head_is_frozen_linear(head):
                loss_sum = frozen_head_cross_entropy_sum(hidden[:, :-1][keep], head, target[keep])
            else:  # a trained head (modules_to_save, LoRA on lm_head) needs its own gradients
                loss_sum = F.cross_entropy(head(hidden[:, :-1][keep]).float(), target[keep], reduction="sum")
            if num_items_in_batch is not None:
                denominator = torch.as_tensor(num_items_in_batch, device=loss_sum.device).clamp(min=1)
            else:
                denominator = keep.sum().clamp(min=1)
            loss = loss_sum / denominator
            return (loss, {"loss": loss}) if return_outputs else loss

    return SmoloraTrainer


def training_args(project: Project, folder: Path, device: str, recipe, has_eval: bool):
    """SFTConfig for the project's settings as the recipe feeds them (recipe.py): packed rows or
    batches, checkpointing, and bf16/fp16 mixed precision on CUDA (off CUDA the weights themselves
    are in the chosen dtype and the adapter in float32)."""
    from trl import SFTConfig

    t = project.training
    dtype, packing = recipe.dtype, recipe.packing
    # transformers 5.23 renamed gradient_checkpointing (the old name still works, with a FutureWarning).
    renamed = "activation_checkpointing" in SFTConfig.__dataclass_fields__
    checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": recipe.checkpointing}
    if recipe.checkpointing and recipe.checkpoint_every > 1:  # only every n-th layer (planned where supported)
        checkpointing["activation_checkpointing_kwargs"] = {"every_n_layers": recipe.checkpoint_every}
    return SFTConfig(
        output_dir=str(folder / "checkpoints"),
        per_device_train_batch_size=packing.micro_batch,
        # Eval one sample at a time when packed, so the eval loss is the same mean over samples as unpacked.
        per_device_eval_batch_size=1 if packing.packed else t.batch_size,
        gradient_accumulation_steps=packing.accum,
        padding_free=packing.packed,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        eval_strategy="steps" if has_eval and t.eval_steps > 0 else "no",
        eval_steps=t.eval_steps if t.eval_steps > 0 else None,
        seed=t.seed,
        data_seed=t.seed,
        **checkpointing,
        bf16=dtype == "bfloat16" and device == "cuda",
        fp16=dtype == "float16" and device == "cuda",
        use_cpu=device == "cpu",
        max_length=None if packing.packed else t.max_length,  # the data is cut to max_length already
        report_to="none",
        logging_nan_inf_filter=False,
        disable_tqdm=True,
        prediction_loss_only=True,
        save_only_model=False,
        dataloader_pin_memory=device == "cuda",
        ddp_backend="gloo" if device == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_find_unused_parameters=False,
        model_init_kwargs=None,
    )


def lora_config(project: Project):
    from peft import LoraConfig

    lora = project.lora
    targets = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                      use_dora=lora.use_dora, use_rslora=lora.use_rslora, bias="none", task_type="CAUSAL_LM")

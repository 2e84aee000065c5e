"""SmoLoRA's API over this engine, for people coming from that library:

    trainer = SmoLoRA("smollm2-135m-instruct", "./my_text_data", text_field="text", output_dir="./out")
    trainer.train()          # LoRA training -> out/adapter_checkpoint
    trainer.save()           # merged model  -> out/final_merged
    model, tokenizer = trainer.load_model("./out/final_merged")
    print(trainer.inference("Write a review of a spa."))

Differences: nothing is downloaded (models and datasets must be local or cached),
bad rows are reported instead of skipped silently, the device is cuda, then mps,
then cpu, and training uses smolora's faster defaults (see the README).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from .project import DataSettings, Project


class SmoLoRA:
    def __init__(self, base_model_name: str, dataset_name: str, text_field: str = "text",
                 output_dir: str = "./fine_tuned_model", max_steps: int = 500):
        from .device import choose_device
        from .models import load_model

        self.base_model_name = base_model_name
        self.dataset_name = dataset_name
        self.text_field = text_field
        self.output_dir = output_dir
        self.project = Project(name="smolora")
        self.project.model.base = base_model_name
        self.project.training.max_steps = max_steps
        self.project.training.save_steps = max(1, max_steps)
        choice = self.choice = choose_device()
        self.device = choice.device
        self.model, self.tokenizer = load_model(base_model_name, device=choice.device, dtype=choice.dtype)
        self.model.config.use_cache = False
        self.dataset = None  # set a datasets.Dataset here to train on it instead of dataset_name
        self.adapter_checkpoint: str | None = None
        self.merged_model_path: str | None = None

    def _rendered(self):
        from .data import prepare
        from .data.render import render_sample
        from .data.shapes import Sample

        if self.dataset is not None:
            texts = [t for t in self.dataset[self.text_field] if isinstance(t, str) and t.strip()]
            return [render_sample(Sample(f"row {i}", text=t), self.tokenizer, self.project.training.max_length)
                    for i, t in enumerate(texts)]
        settings = DataSettings(path=str(self.dataset_name), columns={"text": self.text_field}, eval_ratio=0)
        return prepare(settings, self.tokenizer, self.project.training.max_length).train

    def train(self) -> None:
        from datasets import Dataset
        from peft import get_peft_model
        from transformers import set_seed

        from .data.prefix import shared_prefix_length
        from .training.apply_recipe import prepare_model, prepare_trainer
        from .training.recipe import plan_run
        from .training.trainer import lora_config, make_trainer_class, training_args

        print(f"[{datetime.now()}] Starting training...")
        rows = self._rendered()
        dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})
        set_seed(self.project.training.seed)
        model = get_peft_model(self.model, lora_config(self.project))
        longest = max(len(r.input_ids) for r in rows)
        shared = shared_prefix_length([(r.input_ids, r.labels) for r in rows])
        recipe, _estimate, _free = plan_run(self.project, self.choice, longest, model.config, shared)
        prepare_model(model, recipe)
        args = training_args(self.project, Path(self.output_dir), self.device, recipe, has_eval=False)
        args.save_strategy = "no"
        trainer = make_trainer_class()(model=model, args=args, train_dataset=dataset,
                                       processing_class=self.tokenizer)
        prepare_trainer(trainer, recipe)
        trainer.train()
        self.trainer = trainer
        self.adapter_checkpoint = os.path.join(self.output_dir, "adapter_checkpoint")
        trainer.model.save_pretrained(self.adapter_checkpoint)
        self.tokenizer.save_pretrained(self.adapter_checkpoint)
        print(f"[{datetime.now()}] Training finished.")

    def save(self) -> None:
        from .merge import merge_adapter

        if self.adapter_checkpoint is None:
            raise RuntimeError("train() first: there is no adapter to merge")
        print(f"[{datetime.now()}] Starting model merge...")
        result = merge_adapter(self.base_model_name, Path(self.adapter_checkpoint),
                               Path(self.output_dir) / "final_merged")
        self.merged_model_path = result["path"]
        print(f"[{datetime.now()}] Model merge finished (max logit difference {result['max_abs_logit_diff']:.2e}).")

    def load_model(self, model_path: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        print(f"[{datetime.now()}] Loading model from {model_path}...")
        self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True).to(self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        print(f"[{datetime.now()}] Model loaded.")
        return self.model, self.tokenizer

    def inference(self, prompt: str, max_new_tokens: int = 200, do_sample: bool = True,
                  temperature: float = 1.0) -> str:
        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        outputs = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      temperature=temperature, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(outputs[0], skip_special_tokens=True)

"""SmoLoRA's API: train, save (merge), load_model, inference, on a tiny model and a text folder."""

from smolora_engine import SmoLoRA


def test_smolora_api_end_to_end(tiny_model_dir, tmp_path):
    data = tmp_path / "texts"
    data.mkdir()
    (data / "a.txt").write_text("\n".join(f"line number {i} of the story" for i in range(40)))
    out = tmp_path / "out"
    trainer = SmoLoRA(str(tiny_model_dir), str(data), output_dir=str(out), max_steps=3)
    trainer.train()
    assert (out / "adapter_checkpoint" / "adapter_config.json").is_file()
    trainer.save()
    assert (out / "final_merged" / "model.safetensors").is_file()
    model, tokenizer = trainer.load_model(str(out / "final_merged"))
    assert type(model).__name__ == "LlamaForCausalLM"
    text = trainer.inference("line", max_new_tokens=5, do_sample=False)
    assert text.replace(" ", "").startswith("line") and len(text.replace(" ", "")) > len("line")


def test_merge_check_agrees(tiny_model_dir, tmp_path):
    from smolora_engine.merge import merge_adapter

    trainer = SmoLoRA(str(tiny_model_dir), "unused", output_dir=str(tmp_path), max_steps=2)
    from datasets import Dataset

    trainer.dataset = Dataset.from_dict({"text": [f"sample {i}" for i in range(20)]})
    trainer.train()
    result = merge_adapter(str(tiny_model_dir), tmp_path / "adapter_checkpoint", tmp_path / "merged")
    assert result["max_abs_logit_diff"] < 1e-3

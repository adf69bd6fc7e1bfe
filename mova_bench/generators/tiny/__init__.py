"""mova-tiny: a small learned joint video+audio generator with MOVA's shape, trained on a CPU.

A video tower and an audio tower joined by a bridge (cross-attention both ways), a text encoder
trained from scratch on hashed character n-grams, rectified flow matching with classifier-free
guidance. It generates in a compact latent space (each tower: a scene token and 8 event slots;
see :mod:`.latent`) that the procedural world's renderer decodes into frames and a waveform,
the way a VAE decoder turns MOVA's latents into pixels and samples. It is trained on the
procedural world's own plans (:mod:`.train`), so the benchmark's reference world is its data.

Modules: ``latent`` (the latent layout, encoder of world plans, decoder to a renderable world),
``text`` (tokenizer), ``model_np`` (numpy network and sampler: inference needs no torch),
``torch_model`` (the same network in torch, for training), ``train`` (the training script),
``safetensors_io`` (the checkpoint format, read and written without torch), ``generator`` (the
``mova-tiny`` adapter), ``prompts`` (training prompts).
"""

from mova_bench.generators.tiny.generator import MovaTinyGenerator

__all__ = ["MovaTinyGenerator"]

"""``laion-clap``: LAION-CLAP text–audio alignment (``clap_score[laion-clap]``) and its audio
embedding (``fd_audio[laion-clap]``, ``kid_audio[laion-clap]``).

Conventions (laion-clap 1.1.7's ``CLAP_Module`` with ``use_tensor=True``; av-benchmark,
JavisBench and stable-audio-metrics score with the raw cosine):

* Checkpoint (parameter ``checkpoint``): ``630k-audioset-fusion`` (default: MOVA's table,
  METRICS.md), ``630k-audioset`` (HTSAT-tiny, no fusion), ``music`` and ``music-speech``
  (HTSAT-base, no fusion; fadtk and av-benchmark). Weights entries ``clap-<checkpoint>``.
* Network: laion-clap's own ``CLAP`` class (``clap_module.create_model(amodel, "roberta",
  enable_fusion, fusion_type="aff_2d")``), imported as laion-clap itself imports it (its package
  folder on ``sys.path``, then ``clap_module``) **without** importing ``laion_clap`` (whose import
  builds three Hugging Face tokenizers from the network). ``CLAP.__init__`` calls
  ``RobertaModel.from_pretrained('roberta-base')``, a download whose weights the checkpoint then
  overwrites: during construction that name is replaced by a stand-in that builds
  ``RobertaModel`` from the roberta-base configuration (vocabulary 50,265, 514 positions, type
  vocabulary 1, layer-norm eps 1e-5, pad/bos/eos 1/0/2, 12 layers × 768, GELU), so nothing is
  downloaded.
* Checkpoint container: ``{'state_dict': {'module.<key>': tensor}, ...}`` read with
  ``weights_only=True``; the ``module.`` prefix is removed and
  ``text_branch.embeddings.position_ids`` dropped (a non-persistent buffer since transformers
  4.31, as laion-clap's ``load_state_dict`` does); then a key/shape check naming every mismatch
  and ``load_state_dict(strict=True)``.
* Text: RoBERTa byte-level BPE built from the weights entries ``roberta-base-vocab``
  (vocab.json) and ``roberta-base-merges`` (merges.txt), never from the hub; ``len(tokenizer)``
  must be 50,265 (transformers 5.x given a wrong argument or offline silently builds a 5-token
  tokenizer that maps every text to ``<s></s>``: refused). Padding to 77 tokens, truncation at 77
  (``CLAP_Module.tokenizer``).
* Audio: mono (channel mean, by the decoder), 48 kHz (soxr HQ, :meth:`audio_at`), **no int16
  round trip** (``use_tensor=True`` skips it; the file-list path quantises). 10 s window =
  480,000 samples. Shorter: repeated ``floor(480000/len)`` times, then zero-padded (laion-clap
  ``repeatpad``). Longer (``crop``): ``"start"`` (default) keeps the first 10 s; ``"seeded"``
  picks the offset with ``numpy.random.default_rng(seed)`` — laion-clap crops at random with the
  global RNG, so its scores of clips longer than 10 s are not reproducible. Fusion checkpoint,
  longer clips: the log-mel of the whole clip (torch STFT, 1024 window/FFT, hop 480, periodic
  Hann, centred with reflect padding, power 2, 64 HTK-mel bands 50–14,000 Hz without
  normalisation, ``10·log10(max(x, 1e-10))``: torchaudio's ``MelSpectrogram`` +
  ``AmplitudeToDB(top_db=None)`` as laion-clap's ``get_mel``) is shrunk to 1001 frames (bilinear,
  antialiased: torchvision ``Resize``) and three 1001-frame chunks are taken, one from each third
  of the possible starts: with ``crop="start"`` the first start of each third, with ``"seeded"`` a
  seeded choice (laion-clap: random). Clips of at most 10 s (e.g. MOVA's 8.04 s) involve no
  choice: the fusion input is four copies of the repeat-padded clip's log-mel.
* Outputs: ``embedding`` (512,) the L2-normalised audio embedding, ``clap_score`` () the cosine
  of audio and text embeddings (no ×100), ``has_text`` () 1/0 (NaN score without a prompt),
  ``audio_seconds`` (), ``cropped`` () 1/0 and ``checkpoint`` () its name (for the metric's record).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mova_bench.errors import MovaBenchError
from mova_bench.features.base import TorchBackbone, cached_text_embeddings, load_tensors
from mova_bench.features.openclip import check_state_dict

SAMPLE_RATE = 48000
MAX_LEN = 480000  # 10 s
WINDOW = 1024
HOP = 480
N_MELS = 64
F_MIN, F_MAX = 50.0, 14000.0
CHUNK_FRAMES = MAX_LEN // HOP + 1  # 1001, as laion-clap
TEXT_MAX_LEN = 77
ROBERTA_VOCAB = 50265
#: roberta-base's configuration (the hub config.json of roberta-base)
ROBERTA_CONFIG = dict(
    vocab_size=ROBERTA_VOCAB, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=514,
    type_vocab_size=1, initializer_range=0.02, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
)
POSITION_IDS_KEY = "text_branch.embeddings.position_ids"
CROPS = ("start", "seeded")


@dataclass(frozen=True)
class Checkpoint:
    weights: str
    amodel: str
    fusion: bool
    description: str


CHECKPOINTS: dict[str, Checkpoint] = {
    "630k-audioset": Checkpoint("clap-630k-audioset", "HTSAT-tiny", False, "HTSAT-tiny, LAION-630k + AudioSet"),
    "630k-audioset-fusion": Checkpoint("clap-630k-audioset-fusion", "HTSAT-tiny", True,
                                       "HTSAT-tiny with feature fusion, LAION-630k + AudioSet (MOVA)"),
    "music": Checkpoint("clap-music", "HTSAT-base", False, "HTSAT-base, music + AudioSet (fadtk)"),
    "music-speech": Checkpoint("clap-music-speech", "HTSAT-base", False, "HTSAT-base, music + speech + AudioSet (av-benchmark)"),
}
DEFAULT_CHECKPOINT = "630k-audioset-fusion"
TOKENIZER_WEIGHTS = ("roberta-base-vocab", "roberta-base-merges")

_IMPORT_LOCK = threading.Lock()


def import_clap_module() -> Any:
    """laion-clap's ``clap_module`` package, imported the way ``laion_clap/__init__`` makes it
    importable (its folder on ``sys.path``) but without running ``laion_clap/__init__`` (which
    builds tokenizers from the hub at import). Nothing connects to the network."""
    with _IMPORT_LOCK:
        if "clap_module" in sys.modules:
            return sys.modules["clap_module"]
        spec = importlib.util.find_spec("laion_clap")
        if spec is None or not spec.submodule_search_locations:
            raise MovaBenchError("laion-clap is not installed", fix="pip install 'mova-bench[clap]'")
        folder = str(list(spec.submodule_search_locations)[0])
        added = folder not in sys.path
        if added:
            sys.path.append(folder)
        try:
            import clap_module  # type: ignore[import-not-found]
        finally:
            if added and folder in sys.path:
                sys.path.remove(folder)
        return clap_module


@contextlib.contextmanager
def offline_roberta(model_module: Any, config: dict[str, Any] | None = None):
    """While inside, ``RobertaModel.from_pretrained(...)`` as seen by ``model_module`` (laion-clap's
    ``clap_module.model``) builds ``RobertaModel`` from :data:`ROBERTA_CONFIG` instead of
    downloading roberta-base (its weights are overwritten by the checkpoint anyway)."""
    from transformers import RobertaConfig, RobertaModel

    cfg = RobertaConfig(**(config or ROBERTA_CONFIG))

    class _OfflineRoberta(RobertaModel):
        @classmethod
        def from_pretrained(cls, *args: Any, **kwargs: Any):  # noqa: ARG003 - same signature, no download
            return RobertaModel(cfg)

    old = model_module.RobertaModel
    model_module.RobertaModel = _OfflineRoberta
    try:
        yield cfg
    finally:
        model_module.RobertaModel = old


def build_tokenizer(vocab_path: str | Path, merges_path: str | Path) -> Any:
    """RoBERTa byte-level BPE tokenizer from local vocab.json + merges.txt (transformers 4.x or
    5.x). Raises :class:`MovaBenchError` unless it has 50,265 tokens."""
    import inspect

    from transformers import RobertaTokenizer

    params = inspect.signature(RobertaTokenizer.__init__).parameters
    if "vocab_file" in params:  # transformers 4.x (slow tokenizer reading the files)
        tok = RobertaTokenizer(vocab_file=str(vocab_path), merges_file=str(merges_path))
    else:  # transformers 5.x: vocab dict + merges list (file-name keywords are silently ignored)
        try:
            vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MovaBenchError(f"{vocab_path}: not a RoBERTa vocab.json ({exc})",
                                 fix="mova-bench weights fetch roberta-base-vocab") from None
        merges = []
        for line in Path(merges_path).read_text(encoding="utf-8").splitlines():
            if line.startswith("#version") or not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise MovaBenchError(f"{merges_path}: line {line!r} is not a BPE merge 'a b'",
                                     fix="mova-bench weights fetch roberta-base-merges")
            merges.append((parts[0], parts[1]))
        tok = RobertaTokenizer(vocab=vocab, merges=merges)
    check_tokenizer(tok, f"{vocab_path} + {merges_path}")
    return tok


def check_tokenizer(tok: Any, source: str = "the tokenizer") -> None:
    """Refuse a RoBERTa tokenizer without roberta-base's 50,265 tokens (e.g. the 5-token one that
    transformers 5.x builds offline, which turns every text into ``<s></s>``)."""
    n = len(tok)
    if n != ROBERTA_VOCAB:
        raise MovaBenchError(
            f"CLAP text tokenizer from {source} has {n} tokens, expected {ROBERTA_VOCAB} (roberta-base); "
            "with fewer every prompt would encode to the same few ids and every CLAP score would be meaningless",
            fix="mova-bench weights fetch roberta-base-vocab && mova-bench weights fetch roberta-base-merges "
            "(and check that vocab.json and merges.txt are roberta-base's)",
        )


def tokenize(tok: Any, texts: list[str]) -> dict[str, Any]:
    """``CLAP_Module.tokenizer``: pad to 77, truncate at 77, PyTorch tensors."""
    return dict(tok(texts, padding="max_length", truncation=True, max_length=TEXT_MAX_LEN, return_tensors="pt"))


def read_clap_state_dict(path: str | Path) -> dict[str, Any]:
    """The model tensors of a laion-clap checkpoint (see the module docstring)."""
    try:
        ckpt = load_tensors(path)
    except Exception as exc:  # noqa: BLE001 - one clear error for any unreadable container
        raise MovaBenchError(f"{path}: not a laion-clap checkpoint this loader reads ({type(exc).__name__}: {exc})",
                             fix="fetch the checkpoint again (mova-bench weights fetch clap-630k-audioset-fusion)") from None
    state = ckpt["state_dict"] if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict) else ckpt
    if not isinstance(state, dict) or not state:
        raise MovaBenchError(f"{path}: expected {{'state_dict': {{'module.<key>': tensor}}}}, got {type(ckpt).__name__}",
                             fix="use a laion-clap checkpoint (e.g. 630k-audioset-fusion-best.pt)")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    state.pop(POSITION_IDS_KEY, None)
    return state


def create_clap_model(checkpoint: str, *, roberta_config: dict[str, Any] | None = None) -> Any:
    """laion-clap's ``CLAP`` architecture of ``checkpoint`` (a :data:`CHECKPOINTS` name) with its
    initial (random) values, built without any download."""
    ck = CHECKPOINTS[checkpoint]
    cm = import_clap_module()
    import clap_module.model as model_module  # type: ignore[import-not-found]

    with offline_roberta(model_module, roberta_config):
        kw: dict[str, Any] = {"enable_fusion": ck.fusion}
        if ck.fusion:
            kw["fusion_type"] = "aff_2d"
        model, _cfg = cm.create_model(ck.amodel, "roberta", precision="fp32", device="cpu", **kw)
    return model


def build_clap(checkpoint: str, weights: str | Path, device: Any = "cpu") -> Any:
    """laion-clap's ``CLAP`` for ``checkpoint`` with ``weights`` loaded strictly."""
    ck = CHECKPOINTS[checkpoint]
    model = create_clap_model(checkpoint)
    state = read_clap_state_dict(weights)
    check_state_dict(state, model, f"LAION-CLAP checkpoint {weights} for {checkpoint} ({ck.amodel}"
                     f"{', fusion' if ck.fusion else ''})",
                     fix=f"use the {checkpoint} checkpoint (mova-bench weights fetch {ck.weights}), or set the "
                     "laion-clap parameter checkpoint to the file's variant")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def clap_bundle(model: Any, tokenizer: Any) -> Any:
    """The module :meth:`LaionClap.build` returns: the CLAP model and its tokenizer."""
    import torch

    class ClapBundle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.clap = model
            self.tokenizer = tokenizer

    return ClapBundle()


# -- audio preprocessing (own torch code, laion-clap's get_audio_features arithmetic) -----------


def repeat_pad(audio: Any, max_len: int = MAX_LEN) -> Any:
    """laion-clap ``repeatpad``: repeat ``floor(max_len/len)`` times, then zero-pad to ``max_len``."""
    import torch

    n = int(audio.shape[0])
    if n == 0:
        raise MovaBenchError("the clip has no audio samples to embed", fix="check the clip's audio stream")
    if n >= max_len:
        return audio
    out = audio.repeat(max_len // n)
    return torch.nn.functional.pad(out, (0, max_len - out.shape[0]))


def mel_filterbank(n_freqs: int = WINDOW // 2 + 1, f_min: float = F_MIN, f_max: float = F_MAX, n_mels: int = N_MELS,
                   sample_rate: int = SAMPLE_RATE) -> Any:
    """(n_freqs, n_mels) HTK-mel triangles without normalisation, as torchaudio's
    ``melscale_fbanks(..., norm=None, mel_scale="htk")`` (float32)."""
    import math

    import torch

    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min = 2595.0 * math.log10(1.0 + f_min / 700.0)
    m_max = 2595.0 * math.log10(1.0 + f_max / 700.0)
    m_pts = torch.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up))


def log_mel(audio: Any) -> Any:
    """(T, 64) log-mel of a 48 kHz waveform: laion-clap's ``get_mel`` (torchaudio
    ``MelSpectrogram`` + ``AmplitudeToDB(top_db=None)``), in plain torch."""
    import torch

    window = torch.hann_window(WINDOW, device=audio.device)
    spec = torch.stft(audio, n_fft=WINDOW, hop_length=HOP, win_length=WINDOW, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True).abs().pow(2.0)
    mel = torch.matmul(spec.transpose(-1, -2), mel_filterbank().to(audio.device))
    return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))


def shrink_mel(mel: Any, frames: int = CHUNK_FRAMES) -> Any:
    """``torchvision.transforms.Resize([frames, 64])`` of a (T, 64) mel: bilinear, antialiased."""
    import torch

    return torch.nn.functional.interpolate(mel[None, None], size=[frames, mel.shape[1]], mode="bilinear",
                                           align_corners=False, antialias=True)[0, 0]


def audio_input(audio: Any, *, fusion: bool, crop: str = "start", seed: int = 0) -> dict[str, Any]:
    """The per-clip input dict of ``CLAP.get_audio_embedding`` (``waveform``, ``longer`` and, for
    fusion, ``mel_fusion``) from a (N,) float32 48 kHz tensor, deterministically (see the module
    docstring)."""
    import torch

    n = int(audio.shape[0])
    rng = np.random.default_rng(seed) if crop == "seeded" else None
    sample: dict[str, Any] = {}
    if n > MAX_LEN:
        longer = False
        if fusion:
            mel = log_mel(audio)
            total = mel.shape[0]
            if total == CHUNK_FRAMES:
                sample["mel_fusion"] = torch.stack([mel] * 4)
            else:
                ranges = np.array_split(np.arange(0, total - CHUNK_FRAMES + 1), 3)
                ranges = [r if len(r) else np.array([0]) for r in ranges]
                starts = [int(r[0]) if rng is None else int(rng.choice(r)) for r in ranges]
                chunks = [mel[s:s + CHUNK_FRAMES] for s in starts]
                sample["mel_fusion"] = torch.stack([shrink_mel(mel), *chunks])
                longer = True
        overflow = n - MAX_LEN
        start = 0 if rng is None else int(rng.integers(0, overflow + 1))
        wave = audio[start:start + MAX_LEN]
    else:
        wave = repeat_pad(audio)
        longer = False
        if fusion:
            mel = log_mel(wave)
            sample["mel_fusion"] = torch.stack([mel] * 4)
    sample["longer"] = torch.tensor([longer])
    sample["waveform"] = wave
    return sample


class _CheckpointWeights:
    """``weights`` of a :class:`LaionClap` instance follow its ``checkpoint`` parameter; on the
    class it is the default checkpoint's."""

    def __get__(self, obj: Any, owner: Any) -> tuple[str, ...]:
        ck = DEFAULT_CHECKPOINT if obj is None else obj.params["checkpoint"]
        return (CHECKPOINTS[ck].weights, *TOKENIZER_WEIGHTS)


class LaionClap(TorchBackbone):
    """LAION-CLAP audio and text towers; per-clip cosine of audio and prompt embeddings."""

    name: ClassVar[str] = "laion-clap"
    version: ClassVar[str] = "1"
    modality: ClassVar[str] = "text-audio"
    kind: ClassVar[str] = "embedding"
    display_name: ClassVar[str] = "LAION-CLAP"
    description: ClassVar[str] = ("LAION-CLAP (default 630k-audioset-fusion, as MOVA): 512-d audio embedding of a "
                                  "10 s window at 48 kHz (repeat-padded; longer clips cropped deterministically), "
                                  "CLAP score = cosine(prompt, audio), no x100")
    weights = _CheckpointWeights()  # type: ignore[assignment]
    extra: ClassVar[str] = "clap"
    requires: ClassVar[tuple[str, ...]] = ("torch", "laion_clap", "transformers")
    audio_rate: ClassVar[int | None] = SAMPLE_RATE
    uses_text: ClassVar[bool] = True
    frame_level: ClassVar[bool] = False
    metric_names: ClassVar[dict[str, str]] = {"clap_score": "CLAP score", "fd_audio": "FAD"}
    #: extraction without a prompt works (embedding only, ``has_text`` 0): a harness may run it on
    #: clips without text so that ``fd_audio[laion-clap]`` covers them
    text_optional: ClassVar[bool] = True
    dim: ClassVar[int] = 512

    def __init__(self, **params: Any):
        super().__init__(**params)
        ck = self.params["checkpoint"]
        if ck not in CHECKPOINTS:
            from mova_bench.registry import did_you_mean

            raise MovaBenchError(f"laion-clap: checkpoint={ck!r} is not a LAION-CLAP checkpoint.{did_you_mean(str(ck), list(CHECKPOINTS))}",
                                 fix=f"use one of {', '.join(CHECKPOINTS)} (default {DEFAULT_CHECKPOINT}, MOVA's)")
        if self.params["crop"] not in CROPS:
            raise MovaBenchError(f"laion-clap: crop={self.params['crop']!r} is not a crop of clips longer than 10 s",
                                 fix="use crop='start' (first 10 s, the default) or crop='seeded' (offset from seed)")
        try:
            self.params["seed"] = int(self.params["seed"])
        except (TypeError, ValueError):
            raise MovaBenchError(f"laion-clap: seed={self.params['seed']!r} is not an integer", fix="give e.g. seed=0") from None

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        # remove_dc: subtract the clip's mean before embedding (av-benchmark's audio loader does; laion-clap does not)
        return {"checkpoint": DEFAULT_CHECKPOINT, "crop": "start", "seed": 0, "remove_dc": False}

    @property
    def fusion(self) -> bool:
        return CHECKPOINTS[self.params["checkpoint"]].fusion

    def preprocessing(self) -> dict[str, Any]:
        ck = CHECKPOINTS[self.params["checkpoint"]]
        return {
            **super().preprocessing(), "amodel": ck.amodel, "fusion": ck.fusion, "sample_rate": SAMPLE_RATE,
            "window_samples": MAX_LEN, "shorter": "repeat floor(480000/len) then zero-pad", "int16_round_trip": False,
            "longer": ("first 10 s" if self.params["crop"] == "start" else f"seeded offset (seed {self.params['seed']})")
            + ("; fusion: shrunk mel + 3 chunks, first start of each third" if ck.fusion and self.params["crop"] == "start"
               else "; fusion: shrunk mel + 3 chunks, seeded" if ck.fusion else ""),
            "mel": "torch stft 1024/480 periodic hann, reflect, power 2, 64 htk mel 50-14000 Hz, 10log10(max(x,1e-10))",
            "text": f"roberta-base BPE ({ROBERTA_VOCAB} tokens), pad/truncate {TEXT_MAX_LEN}",
            "score": "cosine(audio, text) of L2-normalised projections, no x100",
        }

    def build(self, paths: dict[str, Path], device: Any) -> Any:
        ck = CHECKPOINTS[self.params["checkpoint"]]
        tok = build_tokenizer(paths["roberta-base-vocab"], paths["roberta-base-merges"])
        return clap_bundle(build_clap(self.params["checkpoint"], paths[ck.weights], device), tok)

    def _text_embedding(self, text: str) -> Any:
        """The text embedding of one prompt, cached."""
        return cached_text_embeddings(self, [text], self._embed_texts)[0]

    def _embed_texts(self, texts: list[str]) -> list[Any]:
        """One text embedding per text, with one pass (each padded to 77 tokens)."""
        tokens = {k: v.to(self.device) for k, v in tokenize(self.model.tokenizer, texts).items()}
        embs = self.model.clap.get_text_embedding(tokens).float()
        return [embs[i] for i in range(len(texts))]

    def audio_embeddings(self, waves: list[np.ndarray]) -> Any:
        """(n, 512) L2-normalised audio embeddings of 48 kHz mono waveforms."""
        import torch

        inputs = [audio_input(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)), fusion=self.fusion,
                              crop=self.params["crop"], seed=self.params["seed"]) for w in waves]
        return self.model.clap.get_audio_embedding(inputs).float()

    def embed(self, clip: Any) -> dict[str, Any]:
        audio = self._audio(clip)
        return self._outputs(audio, self.audio_embeddings([audio])[0], clip.prompt_text)

    def embed_batch(self, clips: list[Any]) -> list[dict[str, Any]]:
        """The clips' 10 s windows through the audio tower together (``batch_size`` clips per
        forward pass, default all; every window has the same shape, and fusion's local branch runs
        only on the rows of longer clips) and the prompts not embedded yet through the text tower
        in one pass (each padded to 77 tokens); each clip's outputs equal its own :meth:`embed`'s."""
        import torch

        audios = [self._audio(c) for c in clips]  # a clip without audio raises: the harness isolates it
        cached_text_embeddings(self, [str(c.prompt_text) for c in clips if c.prompt_text is not None and str(c.prompt_text).strip()],
                               self._embed_texts)
        step = max(1, int(self.batch_size or len(audios) or 1))
        embs = torch.cat([self.audio_embeddings(audios[i : i + step]) for i in range(0, len(audios), step)]) if audios else []
        return [self._outputs(a, e, c.prompt_text) for a, e, c in zip(audios, embs, clips)]

    def _audio(self, clip: Any) -> np.ndarray:
        audio = np.asarray(clip.audio_at(SAMPLE_RATE), dtype=np.float32)
        if audio.size == 0:
            raise MovaBenchError(f"{self.name}: the clip has no audio to embed", fix="check the clip's audio stream")
        if self.params["remove_dc"]:
            audio = (audio - audio.mean(dtype=np.float64)).astype(np.float32)
        return audio

    def _outputs(self, audio: np.ndarray, emb: Any, text: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"embedding": emb, "audio_seconds": np.float64(audio.size / SAMPLE_RATE),
                               "cropped": np.int8(audio.size > MAX_LEN), "checkpoint": np.array(self.params["checkpoint"])}
        if text is None or not str(text).strip():
            out.update(clap_score=np.float32(np.nan), has_text=np.int8(0))
            return out
        txt = self._text_embedding(str(text))
        out.update(clap_score=np.float32(float((emb * txt).sum())), has_text=np.int8(1))
        return out

from __future__ import annotations

import pytest

from mova_bench import registry
from mova_bench.cards import load_card
from mova_bench.errors import ConfigError, UnknownNameError
from mova_bench.registry import Registry
from mova_bench.suites import load_suite


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownNameError) as exc:
        registry.metrics.get("fd_vidoe")
    msg = str(exc.value)
    assert "'fd_video'" in msg and "Did you mean" in msg and "mova-bench list metrics" in msg


def test_duplicate_registration_rejected_and_lazy_entries_import_on_use():
    r: Registry = Registry("thing")
    r.register("a", "json:dumps")
    with pytest.raises(ConfigError, match="already registered"):
        r.register("a", "json:loads")
    import json

    assert r.get("a") is json.dumps
    r.register("a", "json:loads", replace=True)
    assert r.get("a") is json.loads


def test_bad_import_spec_is_a_config_error():
    r: Registry = Registry("thing")
    r.register("b", "json:no_such_attr")
    with pytest.raises(ConfigError, match="no attribute 'no_such_attr'"):
        r.get("b")


def test_entry_point_plugins_are_loaded(monkeypatch):
    calls = []

    class EP:
        def load(self):
            return lambda reg: calls.append(reg) or reg.generators.register("plugin_model", "json:dumps", replace=True)

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [EP()] if group == registry.ENTRY_POINT_GROUP else [])
    assert "plugin_model" in registry.generators.names()
    assert calls and calls[0] is registry


def test_unknown_model_and_suite_name_the_choices():
    with pytest.raises(UnknownNameError, match="Did you mean 'procedural'"):
        load_card("procedurall")
    with pytest.raises(UnknownNameError, match="Did you mean 'thunderstorm_set'"):
        load_suite("thunderstorm_sett")


def test_mova_alias_resolves_to_360p():
    card = load_card("mova")
    assert card.name == "mova-360p"
    assert (card.generation.width, card.generation.height, card.generation.num_frames) == (640, 352, 193)


@pytest.mark.parametrize(
    "body, field",
    [
        ("version: '1'\nprompts: [{id: a, text: t}]\n", "name"),
        ("name: s\nprompts: [{id: a, text: t}]\n", "version"),
        ("name: s\nversion: '1'\n", "prompts"),
        ("name: s\nversion: '1'\nprompts: [{id: a}]\n", "prompts.0.text"),
        ("name: s\nversion: '1'\nprompts: [{id: 'bad id!', text: t}]\n", "prompts.0.id"),
        ("name: s\nversion: '1'\ndefaults: {fps: -3}\nprompts: [{id: a, text: t}]\n", "defaults.fps"),
        ("name: s\nversion: '1'\ndefaults: {fsp: 24}\nprompts: [{id: a, text: t}]\n", "defaults.fsp"),
        ("name: s\nversion: '1'\nprompts: [{id: a, text: t, expected_offset_ms: [500, 100]}]\n", "prompts.0.expected_offset_ms"),
        ("name: s\nversion: '1'\nreference: {kind: stats}\nprompts: [{id: a, text: t}]\n", "reference"),
        ("name: s\nversion: '1'\nprompts: [{id: a, text: t}, {id: a, text: u}]\n", "duplicate prompt id"),
    ],
)
def test_suite_schema_errors_name_file_and_field(tmp_path, body, field):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError) as exc:
        load_suite(str(f))
    msg = str(exc.value)
    assert str(f) in msg and field in msg


def test_suite_minimal_and_include(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\nversion: '2'\ndefaults: {fps: 30, width: 320}\nprompts: [{id: a, text: alpha}, {id: b, text: beta}]\n"
    )
    (tmp_path / "child.yaml").write_text(
        "name: child\nversion: '1'\ninclude: base.yaml\ndefaults: {width: 160}\nprompts: [{id: b, text: BETA}, {id: c, text: gamma}]\n"
    )
    s = load_suite(str(tmp_path / "child.yaml"))
    assert s.name == "child" and s.defaults.fps == 30 and s.defaults.width == 160
    assert [p.id for p in s.prompts] == ["a", "b", "c"] and s.prompt("b").text == "BETA"
    assert s.defaults.duration_s == 4.0  # untouched default


def test_suite_include_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nversion: '1'\ninclude: b.yaml\nprompts: [{id: x, text: t}]\n")
    (tmp_path / "b.yaml").write_text("name: b\nversion: '1'\ninclude: a.yaml\nprompts: [{id: y, text: t}]\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_suite(str(tmp_path / "a.yaml"))


def test_fingerprint_changes_with_content(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: s\nversion: '1'\nprompts: [{id: a, text: t}]\n")
    a = load_suite(str(f)).fingerprint()
    f.write_text("name: s\nversion: '1'\nprompts: [{id: a, text: t2}]\n")
    assert load_suite(str(f)).fingerprint() != a


def test_generator_rejects_unknown_parameter_and_bad_types():
    from mova_bench.generators.mova import MovaGenerator

    with pytest.raises(ConfigError, match="guidance_scale"):
        MovaGenerator(guidance_scal=3)
    with pytest.raises(ConfigError, match="not a valid int"):
        MovaGenerator(num_inference_steps="many")
    g = MovaGenerator(guidance_scale="7.5")
    assert g.params["guidance_scale"] == 7.5


def test_mova_request_validation_before_gpu_work():
    from mova_bench.generators.mova import validate_mova_request

    validate_mova_request(193, 640, 352)
    with pytest.raises(ConfigError, match="num_frames=96.*193"):
        validate_mova_request(96, 640, 352)
    with pytest.raises(ConfigError, match="height=350.*multiple of 16"):
        validate_mova_request(193, 640, 350)


def test_mova_without_package_is_missing_dependency():
    from mova_bench.errors import MissingDependencyError
    from mova_bench.generators.mova import MovaGenerator

    card = load_card("mova")
    g = MovaGenerator(card_defaults=card.defaults, card=card)
    with pytest.raises(MissingDependencyError) as exc:
        g.check_available()
    msg = str(exc.value)
    assert "OpenMOSS/MOVA" in msg and "hf download OpenMOSS-Team/MOVA-360p" in msg


def test_mova_white_first_frame_fallback_is_recorded(tmp_path):
    from PIL import Image

    from mova_bench.generators.base import ClipRequest
    from mova_bench.generators.mova import MovaGenerator

    req = ClipRequest("a__s0", "a", "t", 1, 0, 8.0, 24.0, 48000, 640, 352)
    img, source = MovaGenerator.first_frame(req)
    assert source == "white_fallback" and img.size == (640, 352) and img.getpixel((5, 5)) == (255, 255, 255)
    p = tmp_path / "f.png"
    Image.new("RGB", (64, 32), (10, 20, 30)).save(p)
    img, source = MovaGenerator.first_frame(ClipRequest("a__s0", "a", "t", 1, 0, 8.0, 24.0, 48000, 640, 352, first_frame=str(p)))
    assert source == "suite" and img.getpixel((0, 0)) == (10, 20, 30)


def test_validate_command_checks_suites_and_cards(tmp_path, capsys):
    from mova_bench.cli import main

    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "suite thunderstorm_set" in out and "model mova-360p" in out
    card = tmp_path / "mine.yaml"
    card.write_text("name: mine\nadapter: procedural\nresources: {gpus: lots}\n")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nversion: '1'\nprompts: [{id: a}]\n")
    assert main(["validate", str(card), str(suite)]) == 2
    err = capsys.readouterr().err
    assert "resources.gpus" in err and "prompts.0.text" in err and str(card) in err


def test_demo_suite_yields_at_least_ten_clips_with_disjoint_reference_seeds():
    from mova_bench.pipeline import REFERENCE_SEED_BASE, build_requests

    suite = load_suite("thunderstorm_set")
    card = load_card("procedural")
    reqs = build_requests(suite, card, seed=suite.defaults.seed, samples_per_prompt=suite.defaults.samples_per_prompt)
    assert len(reqs) >= 10 and len({r.clip_id for r in reqs}) == len(reqs)
    assert len({r.seed for r in reqs}) == len(reqs) and max(r.seed for r in reqs) < REFERENCE_SEED_BASE
    distant = [p for p in suite.prompts if p.expected_offset_ms and p.expected_offset_ms[0] >= 800]
    assert distant and suite.defaults.sync_max_lag_ms >= max(p.expected_offset_ms[1] for p in distant)

"""Settings of eval and predict: flags generated from the dataclasses, one validation in the
library naming the Python parameter, the command line naming the flag."""

import dataclasses

import pytest

from fcnlib.cli import build_parser, main
from fcnlib.cli.flags import flag
from fcnlib.config import ConfigError as RecipeError
from fcnlib.config import TrainConfig
from fcnlib.data.registry import DATASETS, downloadable
from fcnlib.settings import ConfigError, EvalSettings, PredictSettings


def _options(command: str) -> dict[str, str]:
    """dest -> option strings of one sub-command's parser."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {a.dest: a.option_strings for a in sub._actions}


@pytest.mark.parametrize("command, cls", [("eval", EvalSettings), ("predict", PredictSettings)])
def test_every_setting_has_its_flag_and_default(command, cls):
    options = _options(command)
    for f in dataclasses.fields(cls):
        assert flag(f.name) in options[f.name], f.name
    args = build_parser().parse_args([command, "x.pt", "y.png"] if command == "predict" else [command])
    assert {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)} == dataclasses.asdict(cls())


def test_shared_settings_are_defined_once():
    for name in ("device", "amp", "workers"):
        train = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
        ev = next(f for f in dataclasses.fields(EvalSettings) if f.name == name)
        assert (train.default, dict(train.metadata)["help"]) == (ev.default, dict(ev.metadata)["help"])
    assert RecipeError is ConfigError


def test_choices_come_from_the_registry():
    options = {a.dest: a for a in next(a for a in build_parser()._actions if a.dest == "command")
               .choices["eval"]._actions}
    assert tuple(options["data"].choices) == tuple(DATASETS)
    assert downloadable() == ("voc", "sbd", "camvid")


def test_the_former_predict_flag_is_an_alias():
    args = build_parser().parse_args(["predict", "x.pt", "y.png", "--scales", "1", "1.5"])
    assert args.scale == [1.0, 1.5]
    assert "--scales" in _options("predict")["scale"]


@pytest.mark.parametrize("settings, message", [
    (EvalSettings(batch_size=0), "`batch_size` must be >= 1, got 0"),
    (EvalSettings(limit=-1), "`limit` must be >= 1, got -1"),
    (EvalSettings(workers=-2), "`workers` must be >= 0, got -2"),
    (EvalSettings(scale=[1.0, float("nan")]), "`scale` must be positive finite numbers, got 1.0 nan"),
    (EvalSettings(data="coco"), "`data` must be one of voc, sbd, trainaug, camvid, folder, shapes"),
])
def test_eval_settings_name_the_python_parameter(settings, message):
    with pytest.raises(ConfigError) as error:
        settings.validate()
    assert str(error.value).startswith(message), str(error.value)


def test_predict_settings_fill_from_the_card_then_the_defaults():
    card = {"mode": "scaled", "train_size": 240, "scales": [1.0, 1.25], "flip": True}
    got = PredictSettings(train_size=300).resolved(card)
    assert (got.mode, got.train_size, got.scale, got.flip, got.overlap) == ("scaled", 300, [1.0, 1.25], True, 128)
    plain = PredictSettings(tile=64).resolved()
    assert plain.predict_kwargs() == {"scale": (1.0,), "mode": "auto", "train_size": 512, "tile": 64,
                                      "overlap": 16, "flip": False, "max_image_pixels": 100_000_000}
    with pytest.raises(ConfigError, match=r"`overlap` must lie in 0\.\.63 \(below `tile` 64\), got 64"):
        PredictSettings(tile=64, overlap=64).resolved()


def test_the_command_line_names_the_flag(capsys):
    assert main(["eval", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "fcnlib: error: --batch-size must be >= 1, got 0"
    assert main(["predict", "x.pt", "y.png", "--tile", "8", "--overlap", "9"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fcnlib: error: --overlap must lie in 0..7 (below --tile 8), got 9")

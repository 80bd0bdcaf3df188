from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.devices import DeviceError, resolve_device
from greenprune.tasks import TrainConfig


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_and_cpu(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert TrainConfig(device="auto").resolved_device() == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA"])
def test_cuda_without_cuda_is_one_clear_error(no_cuda, spec):
    with pytest.raises(DeviceError, match=rf"device '{spec}': CUDA is not available here: .*use --device cpu"):
        resolve_device(spec)


def test_cuda_index_beyond_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match=r"'cuda:3': this machine has 1 CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("spec", ["gpu", "", "cpu0", "meta", "cuda:x"])
def test_unknown_device_lists_the_choices(spec):
    with pytest.raises(DeviceError, match=r"expected auto \| cpu \| cuda \| cuda:N \| mps"):
        resolve_device(spec)


def test_train_config_uses_the_same_check(no_cuda):
    with pytest.raises(DeviceError, match="'cuda'"):
        TrainConfig(device="cuda").resolved_device()


@pytest.mark.parametrize("verb", ["eval", "finetune"])
@pytest.mark.parametrize("device,expect", [("cuda", "CUDA is not available"), ("gpu", "is not a device")])
def test_cli_bad_device_is_one_line_before_loading(no_cuda, monkeypatch, tmp_path, verb, device, expect):
    import greenprune.models

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before --device was checked")

    monkeypatch.setattr(greenprune.models, "load_model", never)
    result = CliRunner().invoke(app, [verb, "tiny-bert", "--task", "defect", "--device", device,
                                      "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    assert expect in " ".join(result.output.split())
    assert not (tmp_path / "r.json").exists()
